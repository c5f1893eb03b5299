"""A geartrain server subprocess on a free port, and `geartrain manager` runs against it."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from managertools import GEARTRAIN, ManagerRun, StartManager, config_text

from servers import GearmanServer, start_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GearmanServer]:
    workdir = tmp_path / "server"
    workdir.mkdir()
    running = start_server("geartrain", workdir)
    try:
        yield running
    finally:
        running.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def run_manager(server: GearmanServer, tmp_path: Path) -> Iterator[StartManager]:
    """Start `geartrain manager` on a config body (its [manager] table comes from ``settings``), with the test's
    environment or ``env``."""
    runs: list[ManagerRun] = []

    def start(body: str, env: dict[str, str] | None = None, **settings: float) -> ManagerRun:
        config_path = tmp_path / f"manager-{len(runs)}.toml"
        log_path = tmp_path / f"manager-{len(runs)}.log"
        config_path.write_text(config_text(server, body, **settings))
        with (tmp_path / f"manager-{len(runs)}.err").open("wb") as stderr:
            process = subprocess.Popen(
                [*GEARTRAIN, "manager", str(config_path), "--log-file", str(log_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=env,
            )
        run = ManagerRun(process, config_path, log_path, server, settings)
        runs.append(run)
        return run

    yield start
    for run in runs:
        if run.process.poll() is None:
            run.process.send_signal(signal.SIGTERM)
            try:
                run.process.wait(15)
            except subprocess.TimeoutExpired:
                run.process.kill()
                run.process.wait(5)
        run.started()
        leftovers = [pid for pid in run.seen_pids if _alive(pid)]
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        assert not leftovers, f"worker processes outlived their manager: {leftovers}\n{run.log()}"
