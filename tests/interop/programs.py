"""Running the third-party programs of the interop tests (gearman, gearadmin, php, perl), always with timeouts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from background import RUN_TIMEOUT, BackgroundProgram, ProgramGroup
from servers import GearmanServer, require_program

SCRIPTS = Path(__file__).resolve().parent / "scripts"


def run(
    cmd: list[str], *, input: str | None = None, stdin: Path | None = None, timeout: float = RUN_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run a program to completion. Without input or stdin it reads /dev/null, so it can never wait on a tty."""
    if stdin is not None:
        with stdin.open("rb") as stream:
            return subprocess.run(cmd, stdin=stream, capture_output=True, timeout=timeout, text=True)
    if input is None:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, text=True)
    return subprocess.run(cmd, input=input, capture_output=True, timeout=timeout, text=True)


def gearman_cmd(server: GearmanServer, *args: str) -> list[str]:
    return [require_program("gearman"), "-h", server.host, "-p", str(server.port), *args]


def gearadmin(server: GearmanServer, *args: str) -> subprocess.CompletedProcess[str]:
    return run([require_program("gearadmin"), "-h", server.host, "-p", str(server.port), *args])


def php_cmd(server: GearmanServer, script: str, *args: str) -> list[str]:
    return [require_program("php-gearman"), str(SCRIPTS / script), server.host, str(server.port), *args]


def perl_cmd(server: GearmanServer, script: str, *args: str) -> list[str]:
    return [require_program("perl-gearman"), str(SCRIPTS / script), server.host, str(server.port), *args]


def run_json(cmd: list[str], timeout: float = RUN_TIMEOUT) -> Any:
    """Run a helper script that prints one JSON document; fail with its output if it does not exit 0."""
    result = run(cmd, timeout=timeout)
    assert result.returncode == 0, f"{cmd} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


class Child(BackgroundProgram):
    """A third-party program in the background; its output read as text (invalid bytes replaced)."""

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def json(self) -> Any:
        return json.loads(self.stdout)

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


class Children(ProgramGroup[Child]):
    """Background programs of one test, in the test's own environment."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, Child)

    def spawn(self, name: str, cmd: list[str]) -> Child:
        return self._launch(name, cmd, None)
