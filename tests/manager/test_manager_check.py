"""`geartrain manager --check` imports callables and finds programs; geartrain's own programs do not need PATH."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from managertools import GEARTRAIN, HERE, StartManager, python_group

from geartrain import SyncClient
from geartrain.manager.programs import own_program, program_problem, resolve_command
from servers import GearmanServer

# A PATH without the virtualenv (nor anything else that might hold a `geartrain`): where wc and sh live.
BARE_PATH = "/usr/bin:/bin"


def without_venv_on_path() -> dict[str, str]:
    env = dict(os.environ, PATH=BARE_PATH)
    env.pop("VIRTUAL_ENV", None)
    return env


def check(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GEARTRAIN, "manager", "--check", str(path)], capture_output=True, text=True, timeout=60, env=env
    )


def test_check_reports_every_group_that_cannot_start(tmp_path: Path) -> None:
    not_executable = tmp_path / "worker.sh"
    not_executable.write_text("#!/bin/sh\n")
    path = tmp_path / "workers.toml"
    path.write_text(
        'servers = ["127.0.0.1:4730"]\n\n'
        + python_group("good", "pid")
        + python_group("noattr", "no_such_function")
        + '[groups.nomodule]\ncallable = "no_such_module_for_geartrain:work"\n\n'
        + '[groups.missing]\ncommand = "no-such-program-for-geartrain -w"\n\n'
        + f'[groups.notexec]\ncommand = "{not_executable} --serve"\n\n'
        + f'[groups.nocwd]\ncommand = "wc -l"\ncwd = "{tmp_path / "gone"}"\n\n'
        + '[groups.ours]\ncommand = "geartrain work --drain wc -- wc -l"\n'
    )
    result = check(path)
    assert result.returncode == 2, result
    assert result.stdout == "" and "Traceback" not in result.stderr
    prefix = f"geartrain manager: {path}: groups."
    assert result.stderr.splitlines() == [
        f"{prefix}noattr.callable: cannot load jobs:no_such_function: "
        "AttributeError: module 'jobs' has no attribute 'no_such_function'",
        f"{prefix}nomodule.callable: cannot load no_such_module_for_geartrain:work: "
        "ModuleNotFoundError: No module named 'no_such_module_for_geartrain'",
        f"{prefix}missing.command: 'no-such-program-for-geartrain' is not found on PATH ({os.environ['PATH']})",
        f"{prefix}notexec.command: '{not_executable}' is not executable",
        f"{prefix}nocwd.cwd: no such directory: {tmp_path / 'gone'}",
    ]


def test_check_imports_with_the_groups_environment_and_directory(tmp_path: Path) -> None:
    """The callable is imported where its processes would run: PYTHONPATH from the group's env, or its cwd."""
    path = tmp_path / "workers.toml"
    path.write_text(
        f'[groups.bycwd]\ncallable = "jobs:reverse"\ncwd = "{HERE}"\n\n'
        + python_group("byenv", "reverse", functions=["a", "b"])
        + '[groups.shell]\ncommand = ["sh", "-c", "exit 0"]\n'
    )
    result = check(path)
    assert (result.returncode, result.stderr) == (0, ""), result
    assert result.stdout.splitlines()[1] == "byenv: 1 x jobs:reverse -> a b (servers localhost:4730)"


def test_own_programs_come_from_this_installation() -> None:
    scripts = sysconfig.get_path("scripts")
    for name in ("geartrain", "gearman", "gearadmin"):
        program = own_program(name)
        assert program == (os.path.join(scripts, name),) or program == (sys.executable, "-m", program[-1]), program
    assert own_program("python3") == (sys.executable,) and own_program("python") == (sys.executable,)
    assert own_program("wc") is None and own_program("/usr/bin/gearman") is None
    assert resolve_command(("wc", "-l")) == ("wc", "-l")
    assert resolve_command(("python3", "w.py")) == (sys.executable, "w.py")


def test_program_problems(tmp_path: Path) -> None:
    script = tmp_path / "w.sh"
    script.write_text("#!/bin/sh\n")
    env = {"PATH": str(tmp_path)}
    assert program_problem("w.sh", env, None) == f"'w.sh' is not found on PATH ({tmp_path})"
    assert program_problem("./w.sh", env, str(tmp_path)) == "'./w.sh' is not executable"
    script.chmod(0o755)
    assert program_problem("w.sh", env, None) is None
    assert program_problem("./w.sh", env, str(tmp_path)) is None  # relative to the group's cwd
    assert program_problem(str(tmp_path), env, None) == f"{str(tmp_path)!r} is a directory"
    assert program_problem("./nope", env, str(tmp_path)) == "'./nope': no such file"


def test_the_documented_command_group_runs_without_the_venv_on_path(
    server: GearmanServer, run_manager: StartManager, tmp_path: Path
) -> None:
    """docs/manager.md's `command = "geartrain work --drain wc -- wc -l"`, with a PATH that has no geartrain."""
    group = '[groups.wc]\ncommand = "geartrain work --drain wc -- wc -l"\n'
    env = without_venv_on_path()
    path = tmp_path / "check.toml"
    path.write_text(f'servers = ["{server.address}"]\n{group}')
    checked = check(path, env)
    assert (checked.returncode, checked.stderr) == (0, ""), checked

    manager = run_manager(group, env=env)
    manager.wait_workers("wc", 1)
    with SyncClient(server.address) as client:
        assert client.do("wc", b"a\nb\nc\n").strip() == b"3"
    cmdline = Path(f"/proc/{manager.pid_of('wc#1')}/cmdline").read_bytes().split(b"\0")
    # A script runs as "python /venv/bin/geartrain work ...", the fallback as "python -m geartrain work ...".
    assert os.fsencode(sys.executable) in cmdline or os.fsencode(own_program("geartrain")[0]) in cmdline, cmdline
    assert "cannot start" not in manager.log()
