"""The job life cycle (issue 15) on real server processes and every store: a failing background job is retried
after its backoff and then dead; the dead job and a pause outlive a kill -9; `dead retry` runs it again."""

from __future__ import annotations

import time
from pathlib import Path

from test_store_holder import Server, shared  # noqa: F401  (the fixture: every store with a server, and SQLite)

from databases import Backend
from geartrain.protocol.packets import PacketType as P
from servers import GearmanSocket, admin_raw, wait_until

POLICY = """
[functions.flaky]
retries = 1
backoff = "fixed"
backoff_base = "1s"
"""


def fail_one(worker: GearmanSocket) -> bytes:
    """Grab the next job (waiting for it) and fail it with an exception; returns its handle."""
    while True:
        worker.send(P.GRAB_JOB)
        reply = worker.recv()
        if reply.type == P.JOB_ASSIGN:
            handle = reply.body.split(b"\0")[0]
            worker.send(P.WORK_EXCEPTION, handle, b"it broke")
            return handle
        worker.send(P.PRE_SLEEP)
        worker.expect(P.NOOP, timeout=10)


def dead_handles(address: str) -> list[bytes]:
    return [line.split(b"\t")[0] for line in admin_raw(address, "dead list").splitlines() if line != b"."]


def test_a_dead_job_and_a_pause_survive_a_kill_9_and_the_job_runs_again_on_retry(
    shared: Backend,  # noqa: F811
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    flags = ("--store", shared.url, "--policy-file", str(policy))
    server = Server(*flags).wait_ready()
    try:
        with GearmanSocket(server.address) as client, GearmanSocket(server.address, timeout=15) as worker:
            client.send(P.SUBMIT_JOB_BG, b"flaky", b"u1", b"payload")
            handle = client.expect(P.JOB_CREATED).body
            worker.send(P.CAN_DO, b"flaky")
            started = time.monotonic()
            assert fail_one(worker) == handle
            assert fail_one(worker) == handle  # the retry, after its one-second backoff
            assert time.monotonic() - started >= 0.9
            wait_until(lambda: dead_handles(server.address) == [handle], timeout=10, message="the job to be dead")
        assert admin_raw(server.address, "pause other") == b"OK\r\n"
        time.sleep(0.5)  # stored in the next batch (an admin reply does not wait for the store)
        server.proc.kill()
        server.proc.wait(10)
    finally:
        server.stop()
    restarted = Server(*flags).wait_ready()
    try:
        assert dead_handles(restarted.address) == [handle]  # replayed with its handle
        listed = admin_raw(restarted.address, "dead list").split(b"\n")[0].split(b"\t")
        assert listed[1:4] == [b"flaky", b"u1", b"2"] and listed[5] == b"it broke"
        assert admin_raw(restarted.address, "paused") == b"other\n.\n"
        with GearmanSocket(restarted.address, timeout=15) as worker:
            worker.send(P.CAN_DO, b"flaky")
            assert admin_raw(restarted.address, "dead retry all") == b"OK 1\n"
            worker.send(P.PRE_SLEEP)
            worker.expect(P.NOOP, timeout=10)  # queued once the store holds it again
            worker.send(P.GRAB_JOB)
            assigned = worker.expect(P.JOB_ASSIGN).body.split(b"\0")
            assert assigned[0] == handle and assigned[2] == b"payload"
            worker.send(P.WORK_COMPLETE, handle, b"")
            worker.send(P.GRAB_JOB)
            worker.expect(P.NO_JOB)
        assert dead_handles(restarted.address) == []
    finally:
        restarted.stop()
    final = Server(*flags).wait_ready()  # nothing comes back: the retried job finished, the dead one is gone
    try:
        assert dead_handles(final.address) == []
        assert b"flaky\t" not in admin_raw(final.address, "status")  # no job of it came back
    finally:
        final.stop()


def test_cron_fires_each_instant_once_across_a_kill_9(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[[cron]]\nfunction = "tick"\nschedule = "@every 1s"\npayload = "t"\n')
    flags = ("--store", f"sqlite://{tmp_path / 'queue.db'}", "--policy-file", str(policy))
    uniques: list[bytes] = []

    def run_some(server: Server, count: int) -> None:
        with GearmanSocket(server.address, timeout=15) as worker:
            worker.send(P.CAN_DO, b"tick")
            while len(uniques) < count:
                worker.send(P.GRAB_JOB_UNIQ)
                reply = worker.recv()
                if reply.type == P.NO_JOB:
                    worker.send(P.PRE_SLEEP)
                    worker.expect(P.NOOP, timeout=10)
                    continue
                handle, _, unique, data = reply.body.split(b"\0", 3)
                assert data == b"t"
                uniques.append(unique)
                worker.send(P.WORK_COMPLETE, handle, b"")

    server = Server(*flags).wait_ready()
    try:
        run_some(server, 3)
        time.sleep(0.3)
        server.proc.kill()
        server.proc.wait(10)
    finally:
        server.stop()
    time.sleep(2.5)  # firings missed while it is down are skipped (catch_up = "skip", the default)
    restarted = Server(*flags).wait_ready()
    try:
        run_some(restarted, 6)
        assert b"tick\t" in admin_raw(restarted.address, "cron list")
    finally:
        restarted.stop()
    assert len(set(uniques)) == len(uniques), uniques  # no instant fired twice
    instants = [int(unique.rsplit(b":", 1)[1]) for unique in uniques]
    assert instants == sorted(instants)


def test_a_backoff_and_a_jobs_trace_context_survive_a_kill_9(
    shared: Backend,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A job waiting out a backoff when the server dies waits out the rest after the restart (not at once), its
    attempts count on, and its metadata (here a trace context) comes back with it."""
    policy = tmp_path / "policy.toml"
    policy.write_text('[functions.flaky]\nretries = 3\nbackoff = "fixed"\nbackoff_base = "4s"\n')
    flags = ("--store", shared.url, "--policy-file", str(policy))
    trace = b"traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    server = Server(*flags).wait_ready()
    try:
        with GearmanSocket(server.address) as client, GearmanSocket(server.address, timeout=15) as worker:
            client.send(P.OPTION_REQ, b"geartrain-meta")
            client.expect(P.OPTION_RES)
            client.send(P.SUBMIT_JOB_BG, b"flaky", b"u1", b"%d:%spayload" % (len(trace), trace))
            handle = client.expect(P.JOB_CREATED).body
            worker.send(P.CAN_DO, b"flaky")
            assert fail_one(worker) == handle
            failed_at = time.monotonic()
            worker.sync()
        time.sleep(0.5)  # the side record is stored in the next batch
        server.proc.kill()
        server.proc.wait(10)
    finally:
        server.stop()
    restarted = Server(*flags).wait_ready()
    try:
        with GearmanSocket(restarted.address, timeout=15) as worker:
            worker.send(P.OPTION_REQ, b"geartrain-meta")
            worker.expect(P.OPTION_RES)
            worker.send(P.CAN_DO, b"flaky")
            worker.send(P.GRAB_JOB)
            assert worker.recv().type == P.NO_JOB  # still waiting out its backoff
            worker.send(P.PRE_SLEEP)
            worker.expect(P.NOOP, timeout=15)
            assert time.monotonic() - failed_at >= 3.9  # the four seconds from the failure, not from the restart
            worker.send(P.GRAB_JOB)
            _, _, data = worker.expect(P.JOB_ASSIGN).body.split(b"\0", 2)
            meta = b"attempt=2\n" + trace
            assert data == b"%d:%spayload" % (len(meta), meta)  # its second attempt, its trace context
    finally:
        restarted.stop()
