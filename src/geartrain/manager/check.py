"""``geartrain manager --check`` beyond the syntax: would each group's processes start at all?

Parsing (:mod:`geartrain.manager.config`) proves that the file is well formed. This proves more, at the cost of
one short Python process per Python group: that each callable imports, with the environment and working directory
its processes get (a group's ``env`` often sets ``PYTHONPATH``, so importing it in the manager would prove
nothing), and that each command's program exists and is executable there. Without it a misspelt module passes
the check and becomes a worker restarted for ever.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable

from geartrain.manager.child import EXIT_IMPORT
from geartrain.manager.config import GroupConfig, ManagerConfig
from geartrain.manager.process import LaunchSpec, describe_exit, launch_spec
from geartrain.manager.programs import program_problem

IMPORT_TIMEOUT = 30.0  # seconds for all the callables to import (they are imported at the same time)


def check_config(config: ManagerConfig, where: str) -> list[str]:
    """One line per problem, ``FILE: groups.NAME.KEY: what is wrong``, in the file's order; empty when every
    group can start."""
    deadline = time.monotonic() + IMPORT_TIMEOUT
    pending: list[Callable[[], str | None]] = []
    for group in config.groups.values():
        pending.append(_check_group(group, f"{where}: groups.{group.name}", deadline))
    return [problem for finish in pending if (problem := finish()) is not None]


def _check_group(group: GroupConfig, prefix: str, deadline: float) -> Callable[[], str | None]:
    """Start checking ``group``; the function returned waits for the answer (so the imports run side by side)."""
    spec = launch_spec(group, 1)
    if spec.cwd is not None and not os.path.isdir(spec.cwd):
        problem = f"{prefix}.cwd: no such directory: {spec.cwd}"
        return lambda: problem
    if not group.is_python:
        found = program_problem(spec.argv[0], spec.env, spec.cwd)
        return lambda: None if found is None else f"{prefix}.command: {found}"
    return _start_import(spec, f"{prefix}.callable: cannot load {group.callable}", deadline)


def _start_import(spec: LaunchSpec, failed: str, deadline: float) -> Callable[[], str | None]:
    try:
        process = subprocess.Popen(
            [*spec.argv, "--check"],
            env=spec.env,
            cwd=spec.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        problem = f"{failed}: cannot start {spec.argv[0]}: {exc}"
        return lambda: problem

    def finish() -> str | None:
        try:
            out, err = process.communicate(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return f"{failed}: the import did not finish within {IMPORT_TIMEOUT:g}s"
        if process.returncode == 0:
            return None
        reason = _last_line(out) if process.returncode == EXIT_IMPORT else ""
        if not reason:  # it did not get as far as saying why: the interpreter's own complaint, if any
            reason = f"the check ended ({describe_exit(process.returncode)}) {_last_line(err)}".strip()
        return f"{failed}: {reason}"

    return finish


def _last_line(output: bytes) -> str:
    lines = output.decode(errors="replace").strip().splitlines()
    return lines[-1].strip() if lines else ""
