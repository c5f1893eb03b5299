"""Helpers for the manager tests: a `geartrain manager` run and the config text the tests write."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

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
    settings: dict[str, float] = field(default_factory=dict)  # the [manager] table, kept on every rewrite
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

    def client_ids(self, function: str) -> list[str]:
        """The client ids of the workers serving ``function``, sorted (rows read "FD IP CLIENT-ID : FUNCTIONS")."""
        rows = [line.split(" : ", 1) for line in admin(self.server, "workers").splitlines() if " : " in line]
        return sorted(left.split()[2] for left, functions in rows if function in functions.split())

    def status(self, *slots: str) -> list[str]:
        """SIGUSR1, then the lines of the status report it logged (without their "status: " prefix), once the
        summary and a line for each of ``slots`` are there."""
        before = self._status_lines()
        self.send(signal.SIGUSR1)

        def report() -> list[str] | None:
            lines = self._status_lines()[len(before) :]
            done = lines and all(any(line.startswith(f"{slot}: ") for line in lines) for slot in slots)
            return lines if done else None

        return wait_until(report, message=f"a status report with {slots} (log:\n{self.log()})")

    def _status_lines(self) -> list[str]:
        return [line.split(" status: ", 1)[1] for line in self.log().splitlines() if " status: " in line]

    def wait_workers(self, function: str, count: int) -> None:
        wait_until(
            lambda: self.workers_serving(function) == count,
            message=f"{count} workers for {function} (log:\n{self.log()})",
        )

    def write_config(self, body: str) -> None:
        self.config_path.write_text(config_text(self.server, body, **self.settings))

    def send(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout)


class StartManager(Protocol):
    """The run_manager fixture."""

    def __call__(self, body: str, env: dict[str, str] | None = None, **settings: float) -> ManagerRun: ...


def config_text(server: GearmanServer, body: str, **settings: float) -> str:
    """The servers and a [manager] table with short backoffs (``settings`` add to it or override), then ``body``."""
    table = {"backoff_initial": 0.05, "backoff_max": 0.5, **settings}
    manager = "".join(f"{key} = {value}\n" for key, value in table.items())
    return f'servers = ["{server.address}"]\n\n[manager]\n{manager}\n{body}'


def python_group(name: str, target: str, **settings: object) -> str:
    """A [groups.NAME] table for a function of tests/manager/jobs.py."""
    lines = [f"[groups.{name}]", f'callable = "jobs:{target}"', f'env = {{ PYTHONPATH = "{HERE}" }}']
    lines += [f"{key} = {value!r}".replace("'", '"') for key, value in settings.items()]
    return "\n".join(lines) + "\n\n"
