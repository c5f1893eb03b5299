"""A retry on a cluster (issue 15): a job that failed on one node and is claimed by another (its node died while
the job waited out its backoff) keeps its attempt count, and waits out the rest of the backoff there."""

from __future__ import annotations

import json
import time
from pathlib import Path

from harness import Node, Queue
from test_cluster_lifecycle import LEASE, grab_uniq

from geartrain.protocol.meta import OPTION, split_meta
from geartrain.protocol.packets import PacketType as P
from servers import GearmanSocket, admin, wait_until

FLAKY = '[functions.flaky]\nretries = 2\nbackoff = "fixed"\nbackoff_base = "3s"\n'


def attempt_of_next(worker: GearmanSocket, timeout: float) -> tuple[bytes, bytes]:
    """The next job handed to ``worker`` (which took the geartrain-meta option): its handle and its metadata."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.send(P.GRAB_JOB_UNIQ)
        reply = worker.recv()
        if reply.type == P.JOB_ASSIGN_UNIQ:
            handle, _, _, data = reply.body.split(b"\0", 3)
            return handle, split_meta(data)[0]
        time.sleep(0.1)
    raise AssertionError(f"no job within {timeout} s")


def test_a_retry_claimed_by_another_node_counts_its_attempts_on(
    queue: Queue, nodes: list[Node], tmp_path: Path
) -> None:
    """n0's worker fails a job and n0 is killed (-9) while the job waits out its backoff: n1 claims it, its worker
    is told `attempt=2`, and after two more failures (retries = 2) the job is dead with 3 attempts."""
    policy = tmp_path / "policy.toml"
    policy.write_text(FLAKY)
    n0, n1 = (Node(queue.url, name, tmp_path, LEASE, "--policy-file", str(policy)).start() for name in ("n0", "n1"))
    nodes += [n0, n1]
    with GearmanSocket(n0.address, timeout=15) as worker, GearmanSocket(n0.address) as client:
        worker.send(P.CAN_DO, b"flaky")
        client.send(P.SUBMIT_JOB_BG, b"flaky", b"f1", b"x")
        created = client.recv()
        assert created.type == P.JOB_CREATED
        grabbed = grab_uniq(worker, 15)
        assert grabbed is not None and grabbed[0] == created.body
        worker.send(P.WORK_FAIL, created.body)
        wait_until(lambda: queue.attempts(b"flaky", b"f1") == 1, timeout=10, message="the attempt to be stored")
    n0.kill9()
    with GearmanSocket(n1.address, timeout=30) as worker:
        worker.send(P.OPTION_REQ, OPTION)
        assert worker.recv().type == P.OPTION_RES
        worker.send(P.CAN_DO, b"flaky")
        for attempt in (2, 3):
            handle, meta = attempt_of_next(worker, 6 * LEASE)
            assert handle == created.body and meta.startswith(b"attempt=%d" % attempt), meta
            worker.send(P.WORK_FAIL, handle)
        assert grab_uniq(worker, 4) is None, "retried beyond its policy"
    shown = json.loads(admin(n1.address, f"dead show {created.body.decode()}"))
    assert shown["attempts"] == 3 and shown["unique"] == "f1"


def test_a_failed_attempt_is_in_the_jobs_row_before_its_node_can_die(
    queue: Queue, nodes: list[Node], tmp_path: Path
) -> None:
    """A failed attempt goes into the job's row in the store batch that follows the failure, not at the next poll
    (once a second): each of two jobs failed one after the other on n0 has its attempt in the table within 0.3 s
    (a poll could write at most one of them in that time), and with n0 killed (-9) at once n1's worker is told
    `attempt=2` for both."""
    policy = tmp_path / "policy.toml"
    policy.write_text(FLAKY)
    n0, n1 = (Node(queue.url, name, tmp_path, LEASE, "--policy-file", str(policy)).start() for name in ("n0", "n1"))
    nodes += [n0, n1]
    uniques = (b"g1", b"g2")
    with GearmanSocket(n0.address, timeout=15) as worker, GearmanSocket(n0.address) as client:
        worker.send(P.CAN_DO, b"flaky")
        for unique in uniques:
            client.send(P.SUBMIT_JOB_BG, b"flaky", unique, b"x")
            assert client.recv().type == P.JOB_CREATED
        handles: dict[bytes, bytes] = {}
        while len(handles) < len(uniques):  # both held by the worker before either fails
            grabbed = grab_uniq(worker, 15)
            assert grabbed is not None
            handles[grabbed[1]] = grabbed[0]
        for unique in uniques:
            worker.send(P.WORK_FAIL, handles[unique])
            wait_until(
                lambda unique=unique: queue.attempts(b"flaky", unique) == 1,
                timeout=0.3,
                message=f"the attempt of {unique!r} in its row",
            )
    n0.kill9()
    with GearmanSocket(n1.address, timeout=30) as worker:
        worker.send(P.OPTION_REQ, OPTION)
        assert worker.recv().type == P.OPTION_RES
        worker.send(P.CAN_DO, b"flaky")
        attempts: dict[bytes, bytes] = {}
        for _ in uniques:
            handle, meta = attempt_of_next(worker, 6 * LEASE)
            attempts[handle] = meta.split(b"\n")[0]
            worker.send(P.WORK_COMPLETE, handle, b"")
        assert attempts == {handles[unique]: b"attempt=2" for unique in uniques}
