"""The job life cycle on a cluster (issue 15): a cron entry fires once per firing across the nodes, submitted by
the leader alone (a firing whose job ended at once is not submitted again by a later node)."""

from __future__ import annotations

import time
from pathlib import Path

from harness import Node, Queue

from geartrain.protocol.packets import PacketType as P
from servers import GearmanSocket, admin, wait_until

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


def paused(node: Node) -> list[str]:
    return [line for line in admin(node.address, "paused").splitlines() if line != "."]


def grab(worker: GearmanSocket) -> bytes | None:
    """One GRAB_JOB: the handle handed out, or None (NO_JOB)."""
    worker.send(P.GRAB_JOB)
    reply = worker.recv()
    return None if reply.type == P.NO_JOB else reply.body.split(b"\0", 1)[0]


def test_a_pause_on_one_node_holds_the_function_on_every_node(queue: Queue, nodes: list[Node], tmp_path: Path) -> None:
    """`pause` is the cluster's: node 0 pauses, node 1 (whose worker serves the function) stops handing its jobs
    out and lists it as paused; `resume` on node 0 lets them run on node 1."""
    policy = tmp_path / "policy.toml"
    policy.write_text("[functions.slow]\nretries = 0\n")
    for name in ("n0", "n1"):
        nodes.append(Node(queue.url, name, tmp_path, LEASE, "--policy-file", str(policy)).start())
    assert admin(nodes[0].address, "pause slow").strip() == "OK"
    wait_until(lambda: paused(nodes[1]) == ["slow"], timeout=10, message="node 1 to see the pause")
    with GearmanSocket(nodes[0].address) as client:
        for n in range(3):
            client.send(P.SUBMIT_JOB_BG, b"slow", b"u%d" % n, b"x")
            assert client.recv().type == P.JOB_CREATED
    with GearmanSocket(nodes[1].address, timeout=15) as worker:
        worker.send(P.CAN_DO, b"slow")
        deadline = time.monotonic() + 2 * LEASE
        while time.monotonic() < deadline:  # claims included: a paused function's jobs stay in the table
            assert grab(worker) is None, "a job of a paused function was handed out"
            time.sleep(0.2)
        assert admin(nodes[1].address, "resume slow").strip() == "OK"  # either node may resume it
        wait_until(lambda: paused(nodes[0]) == [], timeout=10, message="node 0 to see the resume")
        done = 0
        deadline = time.monotonic() + 15
        while done < 3 and time.monotonic() < deadline:
            handle = grab(worker)
            if handle is None:
                time.sleep(0.1)
                continue
            worker.send(P.WORK_COMPLETE, handle, b"")
            done += 1
        assert done == 3


def test_a_job_claimed_by_another_node_keeps_its_metadata(queue: Queue, nodes: list[Node], tmp_path: Path) -> None:
    """A trace context sent with a submit on node 0 reaches the worker on node 1, which claimed the job from the
    cluster's table (geartrain-meta option; docs/lifecycle.md)."""
    from geartrain.protocol.meta import OPTION, format_meta, join_meta, split_meta

    for name in ("n0", "n1"):
        nodes.append(Node(queue.url, name, tmp_path, LEASE).start())
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with GearmanSocket(nodes[0].address) as client:
        client.send(P.OPTION_REQ, OPTION)
        assert client.recv().type == P.OPTION_RES
        client.send(P.SUBMIT_JOB_BG, b"traced", b"t1", join_meta(format_meta({"traceparent": trace}), b"payload"))
        assert client.recv().type == P.JOB_CREATED
    with GearmanSocket(nodes[1].address, timeout=15) as worker:
        worker.send(P.OPTION_REQ, OPTION)
        assert worker.recv().type == P.OPTION_RES
        worker.send(P.CAN_DO, b"traced")
        deadline = time.monotonic() + 10
        while True:
            worker.send(P.GRAB_JOB_UNIQ)
            reply = worker.recv()
            if reply.type != P.NO_JOB or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert reply.type == P.JOB_ASSIGN_UNIQ, reply
        handle, _, _, data = reply.body.split(b"\0", 3)
        meta, payload = split_meta(data)
        assert payload == b"payload" and f"traceparent={trace}".encode() in meta and meta.startswith(b"attempt=1")
        worker.send(P.WORK_COMPLETE, handle, b"")
