"""Graceful drain on a real server process with the SQLite store: SIGTERM (with --sigterm graceful) and SIGUSR1.

Running jobs finish and their clients get the results, submits are refused with a clear ERROR, the process exits
0, and a restart on the same database serves every job that was still queued: nothing acknowledged is lost.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from serverproc import ServerProcess

from geartrain.protocol.packets import PacketType as P
from servers import GearmanSocket, admin_raw, wait_until

DRAINING = [b"QUEUE_ERROR", b"Server is shutting down (graceful drain): job not accepted"]
QUEUED = 20


def _refuses_connections(address: str) -> bool:
    try:
        admin_raw(address, "version", timeout=1)
    except OSError:
        return True
    return False


def _run_all(address: str, function: bytes) -> list[bytes]:
    """Take every queued job of ``function`` with one worker; return their workloads in the order run."""
    ran: list[bytes] = []
    with GearmanSocket(address) as worker:
        worker.send(P.CAN_DO, function)
        while _queued(address, function):
            handle, _, data = worker.request(P.GRAB_JOB, reply=P.JOB_ASSIGN).args
            ran.append(data)
            worker.send(P.WORK_COMPLETE, handle, b"")
            worker.sync()
    return ran


def _queued(address: str, function: bytes) -> bool:
    for line in admin_raw(address, "status").split(b"\n"):
        fields = line.split(b"\t")
        if fields[0] == function:
            return int(fields[1]) > int(fields[2])
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_drain_finishes_running_jobs_keeps_queued_ones_and_exits_zero(tmp_path: Path, signum: int) -> None:
    database = f"sqlite://{tmp_path}/queue.db"
    flags = ("--store", database, "--sigterm", "graceful", "--drain-timeout", "60")
    server = ServerProcess(tmp_path / "first.log", *flags)
    try:
        with (
            GearmanSocket(server.address) as client,
            GearmanSocket(server.address) as submitter,
            GearmanSocket(server.address) as worker,
            GearmanSocket(server.address) as bg_worker,
        ):
            # A background job and a foreground job running, QUEUED background jobs waiting behind them.
            bg_worker.send(P.CAN_DO, b"bg")
            running_bg = submitter.submit("bg", b"running-bg", ptype=P.SUBMIT_JOB_BG)
            assert bg_worker.request(P.GRAB_JOB, reply=P.JOB_ASSIGN).args[0] == running_bg.encode()
            queued = [f"queued-{i}".encode() for i in range(QUEUED)]
            for data in queued:
                submitter.submit("bg", data, ptype=P.SUBMIT_JOB_BG)
            worker.send(P.CAN_DO, b"fg")
            handle = client.submit("fg", b"question")
            assert worker.request(P.GRAB_JOB, reply=P.JOB_ASSIGN).args == [handle.encode(), b"fg", b"question"]

            server.signal(signum)
            wait_until(lambda: _refuses_connections(server.address), message="the listener to close")
            assert server.alive()
            # Submits on an open connection get a clear error; workers get no queued job meanwhile.
            submitter.send(P.SUBMIT_JOB_BG, b"bg", b"", b"too late")
            assert submitter.expect(P.ERROR).args == DRAINING
            bg_worker.send(P.WORK_COMPLETE, running_bg.encode(), b"")
            assert bg_worker.request(P.GRAB_JOB, reply=P.NO_JOB).type == P.NO_JOB
            assert server.alive()  # the foreground job still runs

            worker.send(P.WORK_STATUS, handle.encode(), b"1", b"2")
            worker.send(P.WORK_COMPLETE, handle.encode(), b"answer")
            assert client.expect(P.WORK_STATUS).args == [handle.encode(), b"1", b"2"]
            assert client.expect(P.WORK_COMPLETE).args == [handle.encode(), b"answer"]
            assert server.wait(30) == 0
    finally:
        server.stop()
    assert "graceful shutdown" in server.log()

    restarted = ServerProcess(tmp_path / "second.log", *flags)
    try:
        assert sorted(_run_all(restarted.address, b"bg")) == sorted(queued)  # not the finished one, none lost
    finally:
        assert restarted.stop() == 0


def test_drain_deadline_stops_with_a_job_still_running_and_the_job_survives(tmp_path: Path) -> None:
    database = f"sqlite://{tmp_path}/queue.db"
    server = ServerProcess(tmp_path / "first.log", "--store", database, "--drain-timeout", "0.5")
    try:
        with GearmanSocket(server.address) as client, GearmanSocket(server.address) as worker:
            client.submit("stuck", b"never finished", ptype=P.SUBMIT_JOB_BG)
            worker.send(P.CAN_DO, b"stuck")
            worker.request(P.GRAB_JOB, reply=P.JOB_ASSIGN)
            server.signal(signal.SIGUSR1)
            assert server.wait(30) == 0
    finally:
        server.stop()
    assert "drain deadline" in server.log()
    restarted = ServerProcess(tmp_path / "second.log", "--store", database)
    try:
        assert _run_all(restarted.address, b"stuck") == [b"never finished"]
    finally:
        restarted.stop()


def test_sigterm_stops_at_once_by_default(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server.log", "--store", f"sqlite://{tmp_path}/queue.db")
    try:
        with GearmanSocket(server.address) as client, GearmanSocket(server.address) as worker:
            client.submit("f", b"x", ptype=P.SUBMIT_JOB_BG)
            worker.send(P.CAN_DO, b"f")
            worker.request(P.GRAB_JOB, reply=P.JOB_ASSIGN)
            server.signal(signal.SIGTERM)
            assert server.wait(30) == 0  # without waiting for the running job
    finally:
        server.stop()


def test_a_second_sigterm_during_a_drain_stops_at_once(tmp_path: Path) -> None:
    database = f"sqlite://{tmp_path}/queue.db"
    server = ServerProcess(tmp_path / "server.log", "--store", database, "--sigterm", "graceful")
    try:
        with GearmanSocket(server.address) as client, GearmanSocket(server.address) as worker:
            client.submit("slow", b"x", ptype=P.SUBMIT_JOB_BG)
            worker.send(P.CAN_DO, b"slow")
            worker.request(P.GRAB_JOB, reply=P.JOB_ASSIGN)
            server.signal(signal.SIGTERM)
            wait_until(lambda: _refuses_connections(server.address), message="the drain to start")
            assert server.alive()  # draining: the job still runs
            server.signal(signal.SIGTERM)
            assert server.wait(30) == 0
    finally:
        server.stop()
    restarted = ServerProcess(tmp_path / "second.log", "--store", database)
    try:
        assert _run_all(restarted.address, b"slow") == [b"x"]  # it was cut off, and runs again
    finally:
        restarted.stop()
