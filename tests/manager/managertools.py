"""Helpers for the manager tests: a `geartrain manager` run and the config text the tests write."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from servers import GearmanServer, admin, wait_until

HERE = Path(__file__).resolve().parent
GEARTRAIN = [sys.executable, "-m", "geartrain"]
STARTED = re.compile(r" (\S+): started, pid (\d+)$", re.MULTILINE)


@dataclass
class ManagerRun:
    """A `geartrain manager` subprocess; its log is a file the test reads."""

    process: subprocess.Popen[bytes]
    config_path: Path
    log_path: Path
    server: GearmanServer
    seen_pids: set[int] = field(default_factory=set)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def started(self) -> list[tuple[str, int]]:
        """(slot, pid) for every process start logged so far, oldest first."""
        found = [(slot, int(pid)) for slot, pid in STARTED.findall(self.log())]
        self.seen_pids.update(pid for _, pid in found)
        return found

    def pid_of(self, slot: str) -> int:
        """The process id most recently started for ``slot`` (e.g. ``"rev#1"``)."""
        pids = [pid for name, pid in self.started() if name == slot]
        assert pids, f"{slot} never started:\n{self.log()}"
        return pids[-1]

    def wait_log(self, text: str, count: int = 1) -> None:
        wait_until(lambda: self.log().count(text) >= count, message=f"{count} x {text!r} in the manager log")

    def workers_serving(self, function: str) -> int:
        return sum(1 for line in admin(self.server, "workers").splitlines() if line.endswith(f" {function}"))

    def wait_workers(self, function: str, count: int) -> None:
        wait_until(
            lambda: self.workers_serving(function) == count,
            message=f"{count} workers for {function} (log:\n{self.log()})",
        )

    def write_config(self, body: str) -> None:
        self.config_path.write_text(config_text(self.server, body))

    def send(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout)


def config_text(server: GearmanServer, body: str) -> str:
    return f'servers = ["{server.address}"]\n\n[manager]\nbackoff_initial = 0.05\nbackoff_max = 0.5\n\n{body}'


def python_group(name: str, target: str, **settings: object) -> str:
    """A [groups.NAME] table for a function of tests/manager/jobs.py."""
    lines = [f"[groups.{name}]", f'callable = "jobs:{target}"', f'env = {{ PYTHONPATH = "{HERE}" }}']
    lines += [f"{key} = {value!r}".replace("'", '"') for key, value in settings.items()]
    return "\n".join(lines) + "\n\n"
