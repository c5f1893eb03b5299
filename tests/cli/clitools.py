"""Running our command line tools (the venv's `gearman`, `gearadmin`, `geartrain`) and the C ones side by side.

Careful: /usr/bin/gearman and /usr/bin/gearadmin are libgearman's tools; ours are next to the test interpreter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from background import RUN_TIMEOUT, BackgroundProgram, ProgramGroup
from servers import GearmanServer, require_program

SCRIPTS = Path(__file__).resolve().parent / "scripts"
_MODULES = {
    "gearman": "geartrain.cli.gearman",
    "gearadmin": "geartrain.cli.gearadmin",
    "geartrain": "geartrain.cli.main",
    "gearmand": "geartrain.cli.gearmand",
}


def ours(name: str) -> list[str]:
    """Our `gearman`, `gearadmin`, `geartrain` or `gearmand` (the running venv's console script if there is one)."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", f"import sys; from {_MODULES[name]} import main; sys.exit(main())"]


def _is_c_program(path: str) -> bool:
    with open(path, "rb") as stream:
        return stream.read(4) == b"\x7fELF"


def theirs(name: str) -> list[str]:
    """libgearman's `gearman` or `gearadmin` (skips the test when missing, fails under CI).

    With the venv's bin directory on PATH, `gearman` finds our console script first: look past it.
    """
    found = require_program(name)
    if _is_c_program(found):
        return [found]
    ours_dir = Path(sys.executable).parent.resolve()
    path = os.pathsep.join(
        d for d in os.environ.get("PATH", "").split(os.pathsep) if d and Path(d).resolve() != ours_dir
    )
    for candidate in (shutil.which(name, path=path), f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK) and _is_c_program(candidate):
            return [candidate]
    reason = f"libgearman's {name} not found (only {found}, which is not the C program)"
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def at(server: GearmanServer) -> list[str]:
    return ["-h", server.host, "-p", str(server.port)]


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment without GEARMAN_SERVER (it would win over -h/-p), plus `extra`."""
    env = {key: value for key, value in os.environ.items() if key != "GEARMAN_SERVER"}
    env.update(extra or {})
    return env


def run(
    cmd: list[str], *, input: bytes | None = None, env: dict[str, str] | None = None, timeout: float = RUN_TIMEOUT
) -> subprocess.CompletedProcess[bytes]:
    """Run to completion with a timeout; without `input`, stdin is /dev/null (never a terminal)."""
    return subprocess.run(
        cmd,
        input=input,
        stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True,
        timeout=timeout,
        env=environment(env),
    )


def outcome(result: subprocess.CompletedProcess[bytes], program: list[str]) -> tuple[int, bytes, bytes]:
    """(exit status, stdout, stderr), with the program's path shortened to its name (the tools print argv[0])."""
    path = program[0].encode()
    name = Path(program[0]).name.encode()
    return result.returncode, result.stdout.replace(path, name), result.stderr.replace(path, name)


class Background(BackgroundProgram):
    """One of our tools (or a helper script) in the background; its output read as bytes."""

    @property
    def stdout(self) -> bytes:
        return self.stdout_path.read_bytes()

    @property
    def stderr(self) -> bytes:
        return self.stderr_path.read_bytes()


class Programs(ProgramGroup[Background]):
    """Background programs of one test, in the test's environment without GEARMAN_SERVER (see `environment`)."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, Background)

    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> Background:
        return self._launch(name, cmd, environment(env))
