"""Kept results on a cluster whose node died before they expired (issue 15): the leader deletes them from the
cluster's table (or prefix) once past their time, and leaves the others."""

from __future__ import annotations

from pathlib import Path

from harness import Node, Queue
from test_cluster_lifecycle import LEASE, grab_uniq

from geartrain.protocol.packets import PacketType as P
from servers import GearmanSocket, admin, wait_until

KEPT = '[functions.brief]\nresult_ttl = "3s"\n\n[functions.kept]\nresult_ttl = "600s"\n'


def test_the_leader_deletes_results_kept_by_a_dead_node_once_expired(
    queue: Queue, nodes: list[Node], tmp_path: Path
) -> None:
    """n0 keeps the results of two jobs (3 s and 600 s) and is killed (-9) before either expires: the 3 s one is
    deleted from the store by the leader (n1 once n0's leader lease lapsed) after it expired; the other stays, and
    n1 still answers with it."""
    policy = tmp_path / "policy.toml"
    policy.write_text(KEPT)
    n0, n1 = (Node(queue.url, name, tmp_path, LEASE, "--policy-file", str(policy)).start() for name in ("n0", "n1"))
    nodes += [n0, n1]
    handles: dict[bytes, bytes] = {}
    with GearmanSocket(n0.address, timeout=15) as worker, GearmanSocket(n0.address) as client:
        for function in (b"brief", b"kept"):
            worker.send(P.CAN_DO, function)
            client.send(P.SUBMIT_JOB_BG, function, function + b"-1", b"x")
            handles[function] = client.expect(P.JOB_CREATED).body
        for _ in handles:
            grabbed = grab_uniq(worker, 15)
            assert grabbed is not None
            worker.send(P.WORK_COMPLETE, grabbed[0], b"done")
        worker.send(P.ECHO_REQ, b"sync")
        assert worker.recv().type == P.ECHO_RES
    for function in handles:
        wait_until(lambda function=function: queue.count(b"gt:result:" + function) == 1, timeout=2, message="results")
    n0.kill9()
    assert queue.count(b"gt:result:brief") == 1, "expired before its node was killed: nothing left to test"
    wait_until(lambda: queue.count(b"gt:result:brief") == 0, timeout=3 + 6 * LEASE, message="the leader's sweep")
    assert queue.count(b"gt:result:kept") == 1
    assert admin(n1.address, f"result {handles[b'kept'].decode()}").startswith("{")
    assert admin(n1.address, f"result {handles[b'brief'].decode()}").strip() == "ERR UNKNOWN_JOB"
