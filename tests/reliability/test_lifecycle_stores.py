"""Every feature of the job life cycle (issue 15) on a real server process and each store (memory, SQLite, MySQL,
PostgreSQL, Redis); and, on each durable store, a kill -9 in the middle of a policy timeout, of a pause and of cron
firings: nothing acknowledged is lost, nothing runs or fires twice.

The backoff and the dead set across a kill -9 are in test_lifecycle_restart.py; the same on two nodes in
tests/cluster/."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_store_holder import Server, shared  # noqa: F401  (the fixture: every store with a server, and SQLite)

from databases import BACKENDS, SERVER_STORES, STORES, Backend, require_service
from geartrain.protocol.packets import PacketType as P
from servers import GearmanSocket, admin_raw, wait_until

TOUR = """
[functions.flaky]
retries = 1
backoff = "fixed"
backoff_base = "1s"
timeout = "2s"
result_ttl = "1h"
[functions.kept]
result_ttl = "1h"
[functions.limited]
concurrency = 1
rate = "2/s"
[[cron]]
function = "tick"
schedule = "@every 1s"
payload = "t"
unique = "tick-{epoch}"
priority = "high"
"""


@pytest.fixture(params=STORES)
def every_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    name: str = request.param
    if name in SERVER_STORES:
        require_service(name)
    yield from BACKENDS[name](tmp_path)


def store_url(backend: Backend) -> str:
    return "memory" if backend.name == "memory" else backend.url


def admin_json(address: str, command: str) -> dict[str, object]:
    reply = admin_raw(address, command)
    assert reply.startswith(b"{"), reply
    loaded = json.loads(reply)
    assert isinstance(loaded, dict)
    return loaded


def status_row(address: str, function: str) -> list[str] | None:
    for line in admin_raw(address, "status").decode().splitlines():
        fields = line.split("\t")
        if fields[0] == function:
            return fields[1:]
    return None


def grab_now(worker: GearmanSocket, ptype: int = P.GRAB_JOB) -> list[bytes] | None:
    """One grab: the assignment's arguments, or None (NO_JOB)."""
    worker.send(ptype)
    reply = worker.recv()
    while reply.type == P.NOOP:
        reply = worker.recv()
    if reply.type == P.NO_JOB:
        return None
    return reply.body.split(b"\0", 3 if ptype == P.GRAB_JOB_UNIQ else 2)


def get_status(address: str, handle: bytes) -> list[bytes]:
    with GearmanSocket(address) as client:
        client.send(P.GET_STATUS, handle)
        return client.expect(P.STATUS_RES).body.split(b"\0")[1:]


def check_timeout_disconnect_dead_and_result(address: str) -> bytes:
    """`flaky`: a heartbeat extends the 2 s timeout; the job is taken back when they stop (its worker's late result
    refused), retried after 1 s, its second worker disconnects: dead after 2 attempts, its end kept as a result."""
    with GearmanSocket(address) as client:
        client.send(P.SUBMIT_JOB_BG, b"flaky", b"f1", b"payload")
        handle = client.expect(P.JOB_CREATED).body
    with GearmanSocket(address, timeout=15) as worker:
        worker.send(P.CAN_DO, b"flaky")
        assert worker.grab().args[0] == handle
        started = time.monotonic()
        time.sleep(1.5)
        worker.send(P.WORK_STATUS, handle, b"1", b"2")  # a heartbeat: 2 s from now again
        worker.sync()
        time.sleep(1.0)  # 2.5 s after the start, 1 s after the heartbeat: still its worker's
        assert get_status(address, handle) == [b"1", b"1", b"1", b"2"]  # known, running
        wait_until(lambda: get_status(address, handle)[1] == b"0", timeout=10, message="the job to be taken back")
        assert time.monotonic() - started >= 3.4  # 2 s after the heartbeat, not 2 s after the start
        worker.send(P.WORK_COMPLETE, handle, b"late")
        refused = worker.expect(P.ERROR)
        assert refused.body.startswith(b"JOB_NOT_FOUND"), refused
    with GearmanSocket(address, timeout=15) as second:
        second.send(P.CAN_DO, b"flaky")
        assert second.grab().args[0] == handle  # its retry, under its handle
    # The second worker left while running it: the job is dead with its two attempts.
    wait_until(lambda: b"flaky" in admin_raw(address, "dead list"), timeout=10, message="the job to be dead")
    shown = admin_json(address, f"dead show {handle.decode()}")
    assert (shown["attempts"], shown["error"], shown["data"], shown["unique"]) == (
        2,
        "worker disconnected",
        "payload",
        "f1",
    )
    kept = admin_json(address, f"result {handle.decode()}")
    assert (kept["status"], kept["data"]) == ("failed", "worker disconnected")
    assert get_status(address, handle) == [b"1", b"0", b"1", b"1"]  # known, finished
    return handle


def check_kept_result(address: str) -> bytes:
    with GearmanSocket(address) as client, GearmanSocket(address) as worker:
        client.send(P.SUBMIT_JOB_BG, b"kept", b"k1", b"x")
        handle = client.expect(P.JOB_CREATED).body
        worker.send(P.CAN_DO, b"kept")
        assert worker.grab().args[0] == handle
        worker.send(P.WORK_COMPLETE, handle, b"the result")
        worker.sync()
    kept = admin_json(address, f"result {handle.decode()}")
    assert (kept["status"], kept["data"]) == ("complete", "the result")
    assert get_status(address, handle) == [b"1", b"0", b"1", b"1"]
    return handle


def check_pause_concurrency_and_rate(address: str) -> None:
    """`limited`: paused, it takes submits and hands out nothing; resumed, one runs at a time (concurrency = 1)
    and at most 2 start per second after the burst of 2 (rate = "2/s")."""
    assert admin_raw(address, "pause limited") == b"OK\r\n"
    with GearmanSocket(address) as client:
        for n in range(5):
            client.send(P.SUBMIT_JOB_BG, b"limited", b"l%d" % n, b"x")
            client.expect(P.JOB_CREATED)
    with GearmanSocket(address, timeout=15) as worker, GearmanSocket(address, timeout=15) as other:
        for peer in (worker, other):
            peer.send(P.CAN_DO, b"limited")
        assert grab_now(worker) is None and grab_now(other) is None  # paused
        assert admin_raw(address, "paused") == b"limited\n.\n"
        assert admin_raw(address, "resume limited") == b"OK\r\n"
        starts: list[float] = []
        while len(starts) < 5:
            assigned = grab_now(worker)
            if assigned is None:
                time.sleep(0.05)
                continue
            starts.append(time.monotonic())
            assert grab_now(other) is None  # concurrency = 1: one running at a time
            worker.send(P.WORK_COMPLETE, assigned[0], b"")
            worker.sync()
    # A burst of 2, then one start per half second: the fifth no earlier than 1.5 s after the first.
    assert starts[4] - starts[0] >= 1.4, starts


def check_cron(address: str) -> None:
    """`tick` fires every second with its unique template and at high priority: ahead of a job queued before it."""
    with GearmanSocket(address) as client:
        client.send(P.SUBMIT_JOB_BG, b"tick", b"manual", b"m")
        client.expect(P.JOB_CREATED)
    wait_until(lambda: int((status_row(address, "tick") or ["0"])[0]) >= 2, timeout=10, message="a cron firing")
    with GearmanSocket(address, timeout=15) as worker:
        worker.send(P.CAN_DO, b"tick")
        assigned = grab_now(worker, P.GRAB_JOB_UNIQ)
        assert assigned is not None
        handle, _, unique, data = assigned
        assert unique.startswith(b"tick-") and data == b"t", assigned  # high priority: first
        fired = int(unique.removeprefix(b"tick-"))
        assert abs(fired - time.time()) < 10
        worker.send(P.WORK_COMPLETE, handle, b"")
    rows = admin_raw(address, "cron list").decode().splitlines()
    assert rows[0].split("\t")[:3] == ["tick", "@every 1s", "UTC"] and rows[-1] == "."


def test_every_life_cycle_feature_on_a_real_server(every_store: Backend, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(TOUR)
    flags = ("--store", store_url(every_store), "--policy-file", str(policy))
    server = Server(*flags).wait_ready()
    try:
        address = server.address
        dead = check_timeout_disconnect_dead_and_result(address)
        kept = check_kept_result(address)
        check_pause_concurrency_and_rate(address)
        check_cron(address)
        # Run-time policy: in force at once and shown.
        assert admin_raw(address, "policy set kept retries=2 timeout=30s") == b"OK\r\n"
        shown = admin_json(address, "policy show kept")
        assert shown["functions"]["kept"]["overrides"] == {"retries": 2, "timeout": "30s"}  # type: ignore[index]
        # The dead job retried: queued again under its handle, and it runs.
        assert admin_raw(address, "dead retry flaky") == b"OK 1\n"
        with GearmanSocket(address, timeout=15) as worker:
            worker.send(P.CAN_DO, b"flaky")
            assert worker.grab().args[0] == dead
            worker.send(P.WORK_COMPLETE, dead, b"at last")
            worker.sync()
        wait_until(lambda: admin_json(address, f"result {dead.decode()}")["data"] == "at last", timeout=10)
        assert admin_raw(address, "dead list") == b".\n"
        if every_store.name == "memory":
            return
        time.sleep(0.5)  # the last records are stored in the next batch
        server.proc.kill()
        server.proc.wait(10)
        server = Server(*flags).wait_ready()
        # The kept results and the run-time policy outlive the kill -9; nothing came back to run.
        assert admin_json(server.address, f"result {kept.decode()}")["data"] == "the result"
        assert admin_json(server.address, f"result {dead.decode()}")["data"] == "at last"
        shown = admin_json(server.address, "policy show kept")
        assert shown["functions"]["kept"]["overrides"] == {"retries": 2, "timeout": "30s"}  # type: ignore[index]
        for function in ("flaky", "kept", "limited"):
            assert status_row(server.address, function) in (None, ["0", "0", "0"]), function
    finally:
        server.stop()


def test_a_kill_9_in_the_middle_of_a_timeout_and_of_a_pause_loses_nothing_and_runs_nothing_twice(
    shared: Backend,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A job running under a policy timeout and jobs held by a pause when the server dies: after the restart the
    function is still paused and holds them all; resumed, each runs once, the one that was running included (its
    attempt never ended: it is no failure), and none is dead."""
    policy = tmp_path / "policy.toml"
    policy.write_text('[functions.slow]\nretries = 1\ntimeout = "3s"\nbackoff = "fixed"\nbackoff_base = "1s"\n')
    flags = ("--store", shared.url, "--policy-file", str(policy))
    uniques = [b"s%d" % n for n in range(4)]
    server = Server(*flags).wait_ready()
    try:
        with GearmanSocket(server.address) as client, GearmanSocket(server.address, timeout=15) as worker:
            client.send(P.SUBMIT_JOB_BG, b"slow", uniques[0], b"x")
            client.expect(P.JOB_CREATED)
            worker.send(P.CAN_DO, b"slow")
            running = worker.grab().args[0]
            worker.send(P.WORK_STATUS, running, b"1", b"3")
            assert admin_raw(server.address, "pause slow") == b"OK\r\n"
            for unique in uniques[1:]:
                client.send(P.SUBMIT_JOB_BG, b"slow", unique, b"x")
                client.expect(P.JOB_CREATED)  # acknowledged once stored
            worker.sync()
            time.sleep(0.5)  # the pause record is stored in the next batch
            server.proc.kill()  # 1 s into the 3 s timeout
            server.proc.wait(10)
    finally:
        server.stop()
    restarted = Server(*flags).wait_ready()
    try:
        assert admin_raw(restarted.address, "paused") == b"slow\n.\n"
        assert status_row(restarted.address, "slow") == ["4", "0", "0"]
        ran: list[bytes] = []
        with GearmanSocket(restarted.address, timeout=15) as worker:
            worker.send(P.CAN_DO, b"slow")
            time.sleep(4)  # past any timeout: a held job is not a running one, nothing times out or dies
            assert grab_now(worker) is None
            assert admin_raw(restarted.address, "dead list") == b".\n"
            assert admin_raw(restarted.address, "resume slow") == b"OK\r\n"
            while len(ran) < 4:
                assigned = grab_now(worker, P.GRAB_JOB_UNIQ)
                if assigned is None:
                    worker.send(P.PRE_SLEEP)
                    worker.expect(P.NOOP, timeout=10)
                    continue
                ran.append(assigned[2])
                worker.send(P.WORK_COMPLETE, assigned[0], b"")
            worker.sync()
            assert grab_now(worker) is None
        assert sorted(ran) == uniques  # each once
        assert admin_raw(restarted.address, "dead list") == b".\n"
        time.sleep(0.5)  # the deletions are stored in the next batch
        restarted.proc.kill()
        restarted.proc.wait(10)
    finally:
        restarted.stop()
    final = Server(*flags).wait_ready()  # nothing comes back
    try:
        assert status_row(final.address, "slow") in (None, ["0", "0", "0"])
        assert admin_raw(final.address, "paused") == b".\n"
    finally:
        final.stop()


def test_cron_fires_each_instant_once_across_a_kill_9_on_every_durable_store(
    shared: Backend,  # noqa: F811
    tmp_path: Path,
) -> None:
    """An `@every 1s` entry with `catch_up = "once"`: killed -9 and restarted 2.5 s later, the server fires one
    missed instant at once, then goes on from the present; no instant fires twice, and no job fired is lost."""
    policy = tmp_path / "policy.toml"
    policy.write_text('[[cron]]\nfunction = "tick"\nschedule = "@every 1s"\ncatch_up = "once"\n')
    flags = ("--store", shared.url, "--policy-file", str(policy))
    instants: list[int] = []

    def run_some(server: Server, count: int) -> None:
        with GearmanSocket(server.address, timeout=15) as worker:
            worker.send(P.CAN_DO, b"tick")
            while len(instants) < count:
                assigned = grab_now(worker, P.GRAB_JOB_UNIQ)
                if assigned is None:
                    worker.send(P.PRE_SLEEP)
                    worker.expect(P.NOOP, timeout=10)
                    continue
                instants.append(int(assigned[2].rsplit(b":", 1)[1]))
                worker.send(P.WORK_COMPLETE, assigned[0], b"")
            worker.sync()

    server = Server(*flags).wait_ready()
    try:
        run_some(server, 2)
        # A firing or two more is stored but not run: the restart must give those jobs back, not fire them again.
        time.sleep(1.6)
        server.proc.kill()
        server.proc.wait(10)
        killed = time.time()
    finally:
        server.stop()
    time.sleep(2.5)
    restarted = Server(*flags).wait_ready()
    try:
        run_some(restarted, 8)
    finally:
        restarted.stop()
    assert len(set(instants)) == len(instants), instants  # no instant twice
    assert instants == sorted(instants)
    gaps = [later - earlier for earlier, later in itertools.pairwise(instants)]
    # Every instant up to the kill ran (the stored ones too), one missed instant fired at start, then the present:
    # exactly one gap, of the seconds the server was down.
    assert len([gap for gap in gaps if gap > 1]) == 1, instants
    skipped_from = next(earlier for earlier, later in itertools.pairwise(instants) if later - earlier > 1)
    assert skipped_from >= int(killed) - 1, (instants, killed)
