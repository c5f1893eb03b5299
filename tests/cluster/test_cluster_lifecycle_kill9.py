"""The job life cycle on a two-node cluster with a node killed (-9) in the middle of it (issue 15): a policy
timeout (with its WORK_STATUS heartbeat), cron firings (the leader killed) and a pause. Nothing acknowledged is
lost; nothing runs or fires twice. The backoff case is test_cluster_retries.py."""

from __future__ import annotations

import time
from pathlib import Path

from harness import Node, Queue
from test_cluster_lifecycle import LEASE, grab_uniq, is_leader, paused

from geartrain.protocol.packets import PacketType as P
from servers import GearmanSocket, admin, wait_until

TIMEOUT_POLICY = '[functions.slow]\nretries = 1\ntimeout = "2s"\nbackoff = "fixed"\nbackoff_base = "1s"\n'


def test_a_policy_timeout_takes_a_job_back_and_a_node_killed_mid_timeout_loses_nothing(
    queue: Queue, nodes: list[Node], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(TIMEOUT_POLICY)
    n0, n1 = (Node(queue.url, name, tmp_path, LEASE, "--policy-file", str(policy)).start() for name in ("n0", "n1"))
    nodes += [n0, n1]
    with GearmanSocket(n0.address) as client, GearmanSocket(n0.address, timeout=15) as worker:
        worker.send(P.CAN_DO, b"slow")
        client.send(P.SUBMIT_JOB_BG, b"slow", b"t1", b"x")
        first = client.expect(P.JOB_CREATED).body
        grabbed = grab_uniq(worker, 15)
        assert grabbed == (first, b"t1")
        started = time.monotonic()
        time.sleep(1.5)
        worker.send(P.WORK_STATUS, first, b"1", b"2")  # a heartbeat: 2 s from now again
        retried = grab_uniq(worker, 10)  # taken back after the timeout, queued again after its 1 s backoff
        assert retried == (first, b"t1")
        assert time.monotonic() - started >= 4.4  # 1.5 s + the 2 s timeout + the 1 s backoff
        worker.send(P.WORK_COMPLETE, first, b"")
        worker.sync()
        # The second job: its node dies (kill -9) in the middle of the policy timeout.
        client.send(P.SUBMIT_JOB_BG, b"slow", b"t2", b"x")
        second = client.expect(P.JOB_CREATED).body
        assert grab_uniq(worker, 15) == (second, b"t2")
        worker.send(P.WORK_STATUS, second, b"1", b"2")
        worker.sync()
    n0.kill9()
    runs: list[bytes] = []
    with GearmanSocket(n1.address, timeout=30) as worker:
        worker.send(P.CAN_DO, b"slow")
        claimed = grab_uniq(worker, 6 * LEASE)  # once n0's lease lapsed
        assert claimed is not None and claimed[1] == b"t2"
        runs.append(claimed[1])
        worker.send(P.WORK_COMPLETE, claimed[0], b"")
        worker.sync()
        assert grab_uniq(worker, 4) is None  # once, not twice; t1 did not come back
    wait_until(lambda: queue.count(b"slow") == 0, timeout=10, message="the table to be empty")
    assert admin(n1.address, "dead list") == ".\n"


def test_cron_fires_each_instant_once_when_the_leader_is_killed(
    queue: Queue, nodes: list[Node], tmp_path: Path
) -> None:
    """The leader dies (kill -9) while an `@every 1s` entry fires: the other node takes the lead and fires on;
    the killed node restarted follows. No instant fires twice, every job fired runs."""
    policy = tmp_path / "policy.toml"
    policy.write_text('[[cron]]\nfunction = "tick"\nschedule = "@every 1s"\n')
    for name in ("n0", "n1"):
        nodes.append(Node(queue.url, name, tmp_path, LEASE, "--policy-file", str(policy)).start())
    leader = wait_until(lambda: next((node for node in nodes if is_leader(node)), None), timeout=20, message="a leader")
    survivor = next(node for node in nodes if node is not leader)
    instants: list[int] = []

    def collect(worker: GearmanSocket, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        goal = len(instants) + count
        while len(instants) < goal:
            assert time.monotonic() < deadline, f"only {instants}"
            grabbed = grab_uniq(worker, deadline - time.monotonic())
            if grabbed is None:
                continue
            instants.append(int(grabbed[1].rsplit(b":", 1)[1]))
            worker.send(P.WORK_COMPLETE, grabbed[0], b"")

    with GearmanSocket(survivor.address, timeout=30) as worker:  # the worker is on the node that lives
        worker.send(P.CAN_DO, b"tick")
        collect(worker, 3, 15)
        leader.kill9()
        collect(worker, 4, 10 * LEASE)  # the firings the leader stored, then the new leader's
        wait_until(lambda: is_leader(survivor), timeout=5, message="the survivor to lead")
        leader.start()  # back, as a follower
        collect(worker, 3, 15)
        worker.sync()
    assert len(set(instants)) == len(instants), f"an instant fired twice: {instants}"
    assert instants == sorted(instants), instants
    assert not is_leader(leader)


def test_a_pause_outlives_the_node_that_made_it_and_its_jobs_run_once_after_the_resume(
    queue: Queue, nodes: list[Node], tmp_path: Path
) -> None:
    """n0 pauses a function, takes submits for it and is killed (-9): n1 still holds the function (its jobs stay
    in the table, claimed by nobody); n0 restarted still lists the pause; a resume there runs each job once."""
    policy = tmp_path / "policy.toml"
    policy.write_text("[functions.held]\nretries = 0\n")
    n0, n1 = (Node(queue.url, name, tmp_path, LEASE, "--policy-file", str(policy)).start() for name in ("n0", "n1"))
    nodes += [n0, n1]
    assert admin(n0.address, "pause held").strip() == "OK"
    wait_until(lambda: paused(n1) == ["held"], timeout=10, message="n1 to see the pause")
    uniques = [b"h%d" % n for n in range(3)]
    with GearmanSocket(n0.address) as client:
        for unique in uniques:
            client.send(P.SUBMIT_JOB_BG, b"held", unique, b"x")
            assert client.recv().type == P.JOB_CREATED
    n0.kill9()
    ran: list[bytes] = []
    with GearmanSocket(n1.address, timeout=30) as worker:
        worker.send(P.CAN_DO, b"held")
        assert grab_uniq(worker, 3 * LEASE) is None, "a job of a paused function ran"  # n0's lease lapsed meanwhile
        assert paused(n1) == ["held"]
        n0.start()
        assert paused(n0) == ["held"]
        assert queue.count(b"held") == 3
        assert admin(n0.address, "resume held").strip() == "OK"
        deadline = time.monotonic() + 20
        while len(ran) < 3 and time.monotonic() < deadline:
            grabbed = grab_uniq(worker, deadline - time.monotonic())
            if grabbed is not None:
                ran.append(grabbed[1])
                worker.send(P.WORK_COMPLETE, grabbed[0], b"")
        assert grab_uniq(worker, 2) is None
    assert sorted(ran) == uniques  # each once
    wait_until(lambda: queue.count(b"held") == 0, timeout=10, message="the table to be empty")
