"""The job life cycle on a cluster (issue 15): a cron entry fires once per firing across the nodes, submitted by
the leader alone (a firing whose job ended at once is not submitted again by a later node)."""

from __future__ import annotations

import time
from pathlib import Path

from harness import Node, Queue

from geartrain.protocol.packets import PacketType as P
from servers import GearmanSocket, wait_until

LEASE = 3.0


def submitted(node: Node, function: str) -> int:
    view = node.api("functions")
    assert isinstance(view, dict)
    return sum(int(f["submitted"]) for f in view["functions"] if f["name"] == function)  # type: ignore[attr-defined, index]


def is_leader(node: Node) -> bool:
    info = node.api("cluster")
    return isinstance(info, dict) and bool(info["this"]["leader"])  # type: ignore[index]


def test_cron_fires_once_per_firing_from_the_leader_only(queue: Queue, nodes: list[Node], tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[[cron]]\nfunction = "tick"\nschedule = "@every 1s"\npayload = "t"\n')
    for name in ("n0", "n1"):
        nodes.append(Node(queue.url, name, tmp_path, LEASE, "--policy-file", str(policy)).start())
    wait_until(lambda: any(is_leader(node) for node in nodes), timeout=20, message="a leader")
    uniques: list[bytes] = []
    with GearmanSocket(nodes[1].address, timeout=15) as worker:  # a worker on one node only, either may lead
        worker.send(P.CAN_DO, b"tick")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            worker.send(P.GRAB_JOB_UNIQ)
            reply = worker.recv()
            if reply.type == P.NO_JOB:
                time.sleep(0.1)
                continue
            handle, _, unique, data = reply.body.split(b"\0", 3)
            assert data == b"t"
            uniques.append(unique)
            worker.send(P.WORK_COMPLETE, handle, b"")
    assert len(uniques) >= 3, uniques
    assert len(set(uniques)) == len(uniques), f"a firing ran twice: {uniques}"
    leader = next(node for node in nodes if is_leader(node))
    follower = next(node for node in nodes if node is not leader)
    assert submitted(follower, "tick") == 0 and submitted(leader, "tick") >= len(uniques) - 1
