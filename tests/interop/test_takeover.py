"""Taking over a queue the C gearmand wrote: gearmand queues background jobs in its store and stops; geartrain,
started on the same table, runs every one of them (in order, with priorities) and leaves the table empty."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from geartrain.protocol.packets import PacketType as P
from servers import GearmanSocket, admin_raw, free_port, require_program, wait_until

pytestmark = pytest.mark.interop


@dataclass
class Backend:
    """How to point gearmand and geartrain at the same queue table."""

    name: str
    gearmand_args: list[str]
    store_url: str
    cleanup: Callable[[], None]


def _start(command: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([*command, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    address = f"127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{command[0]} exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            return admin_raw(address, "version", timeout=1).startswith(b"OK")
        except OSError:
            return False

    wait_until(ready, timeout=30, message=f"{command[0]} start")
    return proc, address


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> Iterator[Backend]:
    db = tmp_path / "gearmand-queue.db"
    yield Backend(
        "libsqlite3",
        ["-q", "libsqlite3", "--libsqlite3-db", str(db), "--libsqlite3-table", "gearman_queue"],
        f"sqlite://{db}",
        lambda: None,
    )


def _takeover(backend: Backend) -> None:
    gearmand = require_program("gearmand")
    proc, address = _start(
        [
            gearmand,
            "--listen",
            "127.0.0.1",
            "--log-file",
            "none",
            "--threads",
            "1",
            "--config-file",
            "/dev/null",
            *backend.gearmand_args,
        ]
    )
    submitted = [
        (P.SUBMIT_JOB_LOW_BG, b"low"),
        (P.SUBMIT_JOB_BG, b"normal-1"),
        (P.SUBMIT_JOB_HIGH_BG, b"high"),
        (P.SUBMIT_JOB_BG, b"normal-2"),
        (P.SUBMIT_JOB_BG, b"bin\0ary"),
    ]
    try:
        with GearmanSocket(address) as client:
            for index, (ptype, data) in enumerate(submitted):
                client.request(ptype, b"takeover", f"u{index}".encode(), data, reply=P.JOB_CREATED)
    finally:
        _stop(proc)
    geartrain = [sys.executable, "-m", "geartrain", "server", "--store", backend.store_url, "--log-file", "none"]
    proc, address = _start(geartrain)
    try:
        assert admin_raw(address, "status") == b"takeover\t5\t0\t0\n.\n"
        ran = []
        with GearmanSocket(address) as worker:
            worker.send(P.CAN_DO, b"takeover")
            for _ in submitted:
                job = worker.request(P.GRAB_JOB_UNIQ, reply=P.JOB_ASSIGN_UNIQ)
                handle, _, unique, data = job.body.split(b"\0", 3)
                ran.append((unique, data))
                worker.send(P.WORK_COMPLETE, handle, b"")
            worker.request(P.GRAB_JOB, reply=P.NO_JOB)
        # The high job first; the rest in the order gearmand stored them (its binary payloads stay whole here only
        # if gearmand stored them whole: its sqlite plugin binds data as a blob).
        assert ran[0] == (b"u2", b"high")
        assert [data for _, data in ran[1:]] == [b"normal-1", b"normal-2", b"bin\0ary", b"low"]
    finally:
        _stop(proc)
    proc, address = _start(geartrain)  # everything done is gone from the table
    try:
        assert admin_raw(address, "status") in (b".\n", b"takeover\t0\t0\t0\n.\n")
    finally:
        _stop(proc)
        backend.cleanup()


def test_takeover_of_gearmand_sqlite_queue(sqlite_backend: Backend) -> None:
    _takeover(sqlite_backend)
