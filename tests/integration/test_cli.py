"""The `gearmand` entry point and `geartrain server` as real processes: flags, pid file, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from geartrain.protocol.packets import PacketType as P
from servers import GearmanSocket, admin_raw, free_port, wait_until

GEARMAND = [sys.executable, "-c", "import sys; from geartrain.cli.gearmand import main; sys.exit(main())"]
GEARTRAIN = [sys.executable, "-m", "geartrain"]


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30, **kwargs)  # type: ignore[call-overload,no-any-return]


class Process:
    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [*args, "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        self.address = f"127.0.0.1:{self.port}"
        wait_until(self._answers, timeout=15, message="server start")

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited early: {self.proc.stderr.read() if self.proc.stderr else ''!r}")
        try:
            return admin_raw(self.address, "version", timeout=1).startswith(b"OK ")
        except OSError:
            return False

    def wait(self, timeout: float = 10) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.kill()


def test_help_lists_every_gearmand_flag() -> None:
    result = _run([*GEARMAND, "--help"])
    assert result.returncode == 0
    for flag in (
        "--port",
        "--listen",
        "--job-retries",
        "--round-robin",
        "--worker-wakeup",
        "--job-handle-prefix",
        "--log-file",
        "--pid-file",
        "--daemon",
        "--verbose",
        "--keepalive",
        "--keepalive-idle",
        "--backlog",
        "--threads",
        "--max-packet-size",
        "--global-priority",
    ):
        assert flag in result.stdout, flag


def test_version_flag() -> None:
    result = _run([*GEARMAND, "-V"])
    assert result.returncode == 0
    assert "gearmand 1.1.20 compatible" in result.stdout


def test_bad_verbose_level_is_an_error() -> None:
    result = _run([*GEARMAND, "--verbose", "LOUD", "--check-args"])
    assert result.returncode == 2
    assert "invalid verbose level" in result.stderr


def test_unsupported_store_is_a_clear_error() -> None:
    result = _run([*GEARTRAIN, "server", "--store", "nosuch://x", "--port", "0"])
    assert result.returncode == 2
    assert "unknown store" in result.stderr


def test_pid_file_written_and_removed_and_term_exits_zero(processes: list[Process], tmp_path: Path) -> None:
    pid_file = tmp_path / "gearmand.pid"
    server = Process([*GEARMAND, "--listen", "127.0.0.1", "--log-file", "none", "--pid-file", str(pid_file)])
    processes.append(server)
    assert int(pid_file.read_text()) == server.proc.pid
    assert admin_raw(server.address, "getpid") == f"OK {server.proc.pid}\n".encode()
    server.proc.send_signal(signal.SIGTERM)
    assert server.wait() == 0
    assert not pid_file.exists()


def test_usr1_drains_gracefully(processes: list[Process]) -> None:
    # The memory queue: queued jobs still go to workers during the drain (with a store they stay stored for the
    # next start instead: tests/reliability/test_drain.py).
    server = Process([*GEARTRAIN, "server", "--log-file", "none", "--store", "memory"])
    processes.append(server)
    with GearmanSocket(server.address) as client, GearmanSocket(server.address) as worker:
        handle = client.submit("g", b"x", ptype=P.SUBMIT_JOB_BG)
        worker.send(P.CAN_DO, b"g")
        worker.sync()
        server.proc.send_signal(signal.SIGUSR1)
        assert worker.request(P.GRAB_JOB, reply=P.JOB_ASSIGN).args[0] == handle.encode()
        assert server.proc.poll() is None  # a job is still running: keep going
        worker.send(P.WORK_COMPLETE, handle.encode(), b"")
        assert server.wait() == 0


def test_handle_prefix_and_environment_settings(processes: list[Process]) -> None:
    server = Process([*GEARTRAIN, "server", "--job-handle-prefix", "JH"], env={"GEARTRAIN_JOB_RETRIES": "1"})
    processes.append(server)
    with GearmanSocket(server.address) as client:
        handle = client.submit("e", b"x")
        assert handle == "JH:1"
        with GearmanSocket(server.address) as worker:  # one lost assignment is the limit set by the environment
            worker.send(P.CAN_DO, b"e")
            worker.request(P.GRAB_JOB, reply=P.JOB_ASSIGN)
        assert client.expect(P.WORK_FAIL).body == b"JH:1"


@pytest.mark.parametrize(
    ("flags", "expected"), [([], "event loop: uvloop "), (["--no-uvloop"], "asyncio's (--no-uvloop)")]
)
def test_the_log_says_which_event_loop_runs(
    processes: list[Process], tmp_path: Path, flags: list[str], expected: str
) -> None:
    pytest.importorskip("uvloop", reason="the dev install has uvloop; without it the server runs asyncio's loop")
    log = tmp_path / "server.log"
    server = Process([*GEARTRAIN, "server", "--store", "memory", "--verbose", "INFO", "--log-file", str(log), *flags])
    processes.append(server)
    assert expected in log.read_text()
