"""Where a command's program is found: geartrain's own programs come from the manager's installation, not PATH.

``command = "geartrain work --drain wc -- wc -l"`` is the documented way to write a command group, and it has to
work when geartrain lives in a virtualenv that is not on the PATH the manager was started with (a systemd unit, a
crontab, a plain ``/srv/venv/bin/geartrain manager ...``). So a command whose first word is one of geartrain's
programs, or ``python``, runs the one installed beside the interpreter running the manager. When the script is not
there (a checkout run with ``python -m geartrain``), the same program is run as a module of this interpreter.
A full path (``/usr/bin/gearman``, libgearman's tool) is left alone, and so is every other name.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig

# The console scripts of pyproject.toml that make sense in a worker command, and the module each runs as.
OWN_PROGRAMS = {
    "geartrain": "geartrain",
    "gearman": "geartrain.cli.gearman",
    "gearadmin": "geartrain.cli.gearadmin",
}
PYTHON_NAMES = frozenset({"python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"})


def script_directories() -> list[str]:
    """Where this installation's scripts are: the install scheme's ``scripts`` path, then the interpreter's own
    directory (the same in a virtualenv; they differ for some system and user installs)."""
    found: list[str] = []
    for directory in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        if directory and directory not in found:
            found.append(directory)
    return found


def own_program(name: str) -> tuple[str, ...] | None:
    """The words that run geartrain's program ``name`` (or this Python) from this installation; None when
    ``name`` is not one of them."""
    if name in PYTHON_NAMES:
        return (sys.executable,)
    module = OWN_PROGRAMS.get(name)
    if module is None:
        return None
    for directory in script_directories():
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return (candidate,)
    return (sys.executable, "-m", module)


def resolve_command(command: tuple[str, ...]) -> tuple[str, ...]:
    """``command`` with its program replaced by this installation's when it is one of geartrain's (see above)."""
    if not command:
        return command
    own = own_program(command[0])
    return command if own is None else (*own, *command[1:])


def program_problem(program: str, env: dict[str, str], cwd: str | None) -> str | None:
    """Why ``program`` (the first word of a resolved command) cannot be executed, or None when it can: a name
    is looked up on the PATH of the environment it will run with, a path is taken relative to ``cwd``."""
    if os.sep not in program:
        search = os.pathsep.join(os.get_exec_path(env))
        if shutil.which(program, path=search) is None:
            return f"{program!r} is not found on PATH ({search or 'empty'})"
        return None
    path = program if os.path.isabs(program) or cwd is None else os.path.join(cwd, program)
    if not os.path.exists(path):
        return f"{program!r}: no such file"
    if os.path.isdir(path):
        return f"{program!r} is a directory"
    if not os.access(path, os.X_OK):
        return f"{program!r} is not executable"
    return None
