"""The job life cycle on a cluster (issue 15): a cron entry fires once per firing across the nodes, submitted by
the leader alone (a firing whose job ended at once is not submitted again by a later node); pauses hold a function
on every node; the dead set is the cluster's (listed, shown, retried and deleted from any node, a retry queuing the
job once however many nodes ask)."""

from __future__ import annotations

import json
import threading
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


# ---------------------------------------------------------------------------------------------- the dead set

DOOMED_POLICY = "[functions.doomed]\nretries = 0\n"


def dead_handles(node: Node) -> list[str]:
    """`dead list` on ``node``: the handles, in its order."""
    return [line.split("\t")[0] for line in admin(node.address, "dead list").splitlines() if line != "."]


def grab_uniq(worker: GearmanSocket, timeout: float) -> tuple[bytes, bytes] | None:
    """The next job handed to ``worker`` within ``timeout`` seconds, as (handle, unique); None if none came."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.send(P.GRAB_JOB_UNIQ)
        reply = worker.recv()
        if reply.type == P.JOB_ASSIGN_UNIQ:
            handle, _, unique, _ = reply.body.split(b"\0", 3)
            return handle, unique
        time.sleep(0.05)
    return None


def bury(submit_on: Node, fail_on: Node, unique: bytes) -> str:
    """Submit a background job of `doomed` on one node and fail it on a worker of another (or the same): out of
    retries at once, it is dead. Returns its handle."""
    with GearmanSocket(fail_on.address, timeout=15) as worker, GearmanSocket(submit_on.address) as client:
        worker.send(P.CAN_DO, b"doomed")
        client.send(P.SUBMIT_JOB_BG, b"doomed", unique, b"payload " + unique)
        created = client.recv()
        assert created.type == P.JOB_CREATED, created
        grabbed = grab_uniq(worker, 15)
        assert grabbed is not None and grabbed == (created.body, unique), grabbed
        worker.send(P.WORK_FAIL, created.body)
        worker.send(P.ECHO_REQ, b"sync")  # the WORK_FAIL is handled once the echo comes back
        assert worker.recv().type == P.ECHO_RES
    return created.body.decode()


def start_pair(queue: Queue, nodes: list[Node], tmp_path: Path) -> list[Node]:
    policy = tmp_path / "policy.toml"
    policy.write_text(DOOMED_POLICY)
    for name in ("n0", "n1"):
        nodes.append(Node(queue.url, name, tmp_path, LEASE, "--policy-file", str(policy)).start())
    return nodes


def test_a_job_dead_on_one_node_is_listed_shown_and_retried_from_another(
    queue: Queue, nodes: list[Node], tmp_path: Path
) -> None:
    """The dead set is the cluster's: a job that died on n0 is listed and shown on n1 (admin port and HTTP), still
    after n0 was killed (-9) and started again, on both; `dead retry` on n1 queues it once, a worker on n0 runs it,
    and it leaves the dead set of both."""
    n0, n1 = start_pair(queue, nodes, tmp_path)
    handle = bury(n0, n0, b"d1")
    assert dead_handles(n0) == [handle]
    wait_until(lambda: dead_handles(n1) == [handle], timeout=10, message="n1 to list the job dead on n0")
    shown = json.loads(admin(n1.address, f"dead show {handle}"))
    assert shown["function"] == "doomed" and shown["unique"] == "d1" and shown["data"] == "payload d1"
    assert shown["error"] == "WORK_FAIL" and shown["attempts"] == 1
    listed = n1.api("dead")
    assert isinstance(listed, dict) and [dead["handle"] for dead in listed["dead"]] == [handle]  # type: ignore[index, union-attr]

    n0.kill9()
    n0.start()
    wait_until(lambda: dead_handles(n0) == [handle], timeout=10, message="the restarted n0 to list its dead job")
    assert dead_handles(n1) == [handle]

    with GearmanSocket(n0.address, timeout=15) as worker:
        worker.send(P.CAN_DO, b"doomed")
        assert admin(n1.address, f"dead retry {handle}").strip() == "OK 1"
        ran = grab_uniq(worker, 15)
        assert ran is not None and ran[1] == b"d1", ran
        worker.send(P.WORK_COMPLETE, ran[0], b"")
        assert grab_uniq(worker, 2 * LEASE) is None, "the retried job ran twice"
    for node in (n0, n1):
        wait_until(lambda node=node: dead_handles(node) == [], timeout=10, message=f"{node.name}'s dead set to empty")
    wait_until(lambda: queue.count(b"doomed") == 0, timeout=10, message="the retried job to leave the queue")


def test_a_dead_job_deleted_on_one_node_is_gone_for_every_node(queue: Queue, nodes: list[Node], tmp_path: Path) -> None:
    n0, n1 = start_pair(queue, nodes, tmp_path)
    first = bury(n1, n1, b"d1")
    second = bury(n0, n1, b"d2")
    wait_until(lambda: sorted(dead_handles(n0)) == sorted([first, second]), timeout=10, message="n0 to list both")
    assert admin(n0.address, f"dead delete {first}").strip() == "OK 1"
    wait_until(lambda: dead_handles(n1) == [second], timeout=10, message="n1 to see the deletion")
    assert dead_handles(n0) == [second]
    assert admin(n1.address, "dead delete all").strip() == "OK 1"
    for node in (n0, n1):
        wait_until(lambda node=node: dead_handles(node) == [], timeout=10, message=f"{node.name}'s dead set to empty")
    assert queue.count(b"gt:dead:doomed") == 0
    assert admin(n0.address, f"dead show {second}").strip() == "ERR UNKNOWN_JOB"


def test_two_nodes_retrying_the_same_dead_job_at_once_queue_it_once(
    queue: Queue, nodes: list[Node], tmp_path: Path
) -> None:
    n0, n1 = start_pair(queue, nodes, tmp_path)
    handle = bury(n0, n0, b"d1")
    wait_until(lambda: dead_handles(n1) == [handle], timeout=10, message="n1 to list the dead job")
    replies: list[str] = []
    threads = [
        threading.Thread(target=lambda node=node: replies.append(admin(node.address, "dead retry doomed")))
        for node in (n0, n1)
    ]
    with GearmanSocket(n0.address, timeout=15) as w0, GearmanSocket(n1.address, timeout=15) as w1:
        for worker in (w0, w1):
            worker.send(P.CAN_DO, b"doomed")
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert all(reply.startswith("OK") for reply in replies), replies
        runs = []
        deadline = time.monotonic() + 3 * LEASE
        while time.monotonic() < deadline:
            for worker in (w0, w1):
                ran = grab_uniq(worker, 0.2)
                if ran is not None:
                    runs.append(ran[1])
                    worker.send(P.WORK_COMPLETE, ran[0], b"")
        assert runs == [b"d1"], f"the dead job ran {len(runs)} times"
    for node in (n0, n1):
        wait_until(lambda node=node: dead_handles(node) == [], timeout=10, message=f"{node.name}'s dead set to empty")


# ---------------------------------------------------------------------------------------------- kept results


def test_a_result_kept_on_one_node_is_read_on_another(queue: Queue, nodes: list[Node], tmp_path: Path) -> None:
    """`result_ttl` on a cluster: the result of a job run on n0 is read on n1 (admin `result`, in order with the
    commands after it; GET_STATUS known and finished; HTTP), and on n0 after a kill -9."""
    policy = tmp_path / "policy.toml"
    policy.write_text('[functions.kept]\nresult_ttl = "60s"\n')
    n0, n1 = (Node(queue.url, name, tmp_path, LEASE, "--policy-file", str(policy)).start() for name in ("n0", "n1"))
    nodes += [n0, n1]
    with GearmanSocket(n0.address, timeout=15) as worker, GearmanSocket(n0.address) as client:
        worker.send(P.CAN_DO, b"kept")
        client.send(P.SUBMIT_JOB_BG, b"kept", b"k1", b"x")
        created = client.recv()
        assert created.type == P.JOB_CREATED
        grabbed = grab_uniq(worker, 15)
        assert grabbed is not None and grabbed[0] == created.body
        worker.send(P.WORK_COMPLETE, created.body, b"done")
        worker.send(P.ECHO_REQ, b"sync")
        assert worker.recv().type == P.ECHO_RES
    handle = created.body.decode()

    def result_on(node: Node) -> dict[str, object] | None:
        line = admin(node.address, f"result {handle}").strip()
        return None if line.startswith("ERR") else json.loads(line)  # type: ignore[no-any-return]

    kept = wait_until(lambda: result_on(n1), timeout=10, message="n1 to read the result kept on n0")
    assert kept["status"] == "complete" and kept["data"] == "done" and kept["function"] == "kept"
    with GearmanSocket(n1.address) as client:
        client.sock.sendall(f"result {handle}\nversion\n".encode())  # the looked-up answer keeps its place
        answers = b""
        while answers.count(b"\n") < 2:
            answers += client.sock.recv(65536)
        first, second = answers.split(b"\n")[:2]
        assert json.loads(first)["handle"] == handle and second.startswith(b"OK ")
        client.send(P.GET_STATUS, created.body)
        status = client.expect(P.STATUS_RES)
        assert status.body.split(b"\0") == [created.body, b"1", b"0", b"1", b"1"]
    view = n1.api(f"results/{handle}")
    assert isinstance(view, dict) and view["data"] == "done"
    assert n1.api("results/H:n0:999999") is None  # 404: kept nowhere
    assert admin(n1.address, "result H:n0:999999").strip() == "ERR UNKNOWN_JOB"
    n0.kill9()
    n0.start()
    again = result_on(n0)
    assert again is not None and again["data"] == "done"


def test_dead_jobs_past_their_retention_go_for_every_node_also_when_their_node_died(
    queue: Queue, nodes: list[Node], tmp_path: Path
) -> None:
    """`dead_retention` on a cluster: a dead job whose node was killed (-9) is still pruned when its time is up, by
    the node left, from its list and from the table; a job that died since is kept."""
    policy = tmp_path / "policy.toml"
    policy.write_text(DOOMED_POLICY + 'dead_retention = "4s"\n')
    n0, n1 = (Node(queue.url, name, tmp_path, LEASE, "--policy-file", str(policy)).start() for name in ("n0", "n1"))
    nodes += [n0, n1]
    first = bury(n0, n0, b"d1")
    wait_until(lambda: dead_handles(n1) == [first], timeout=10, message="n1 to list n0's dead job")
    n0.kill9()
    wait_until(lambda: dead_handles(n1) == [], timeout=20, message="the dead job's retention to end on n1")
    wait_until(lambda: queue.count(b"gt:dead:doomed") == 0, timeout=10, message="its record to leave the table")
    second = bury(n1, n1, b"d2")
    assert dead_handles(n1) == [second]
