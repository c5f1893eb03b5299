"""Cluster-wide `concurrency` and `rate` (issue 15) on real node processes, on PostgreSQL and on Redis: never more
than N of a function's jobs running at once across the nodes, as the workers themselves see it, one node alone
using all N, starts within the documented bound of the cluster's token bucket (not twice the rate, as counting per
node gives), and the slots of a node killed with kill -9 coming back to the others once its lease lapsed."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

from harness import Node, Queue
from test_cluster_lifecycle import LEASE

from geartrain.protocol.packets import PacketType as P
from servers import GearmanSocket, encode_req, wait_until

FUNCTION = b"limited"


class Tracker:
    """What the workers saw: each start and end, how many ran at once, the most at once (overall and per node)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.running_on: dict[str, int] = {}
        self.most_on: dict[str, int] = {}
        self.starts: list[float] = []
        self.done: set[bytes] = set()

    def start(self, node: str) -> None:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.running_on[node] = self.running_on.get(node, 0) + 1
            self.most_on[node] = max(self.most_on.get(node, 0), self.running_on[node])
            self.starts.append(time.monotonic())

    def end(self, node: str, unique: bytes) -> None:
        with self.lock:
            self.running -= 1
            self.running_on[node] -= 1
            self.done.add(unique)

    def reset_most(self) -> None:
        with self.lock:
            self.most = self.running
            self.most_on = dict(self.running_on)


class Workers:
    """Raw-socket worker threads, each on one node, running each job for ``seconds`` (or until ``release``)."""

    def __init__(self, tracker: Tracker, seconds: float) -> None:
        self.tracker = tracker
        self.seconds = seconds
        self.stop = threading.Event()
        self.release = threading.Event()
        self.threads: list[threading.Thread] = []
        self.stops: dict[str, threading.Event] = {}

    def add(self, node: Node, count: int) -> None:
        stop = self.stops.setdefault(node.name, threading.Event())
        for _ in range(count):
            thread = threading.Thread(target=self._work, args=(node, stop), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _work(self, node: Node, stop: threading.Event) -> None:
        tracker = self.tracker
        with contextlib.suppress(OSError, AssertionError), GearmanSocket(node.address, timeout=60) as worker:
            worker.send(P.CAN_DO, FUNCTION)
            while not stop.is_set() and not self.stop.is_set():
                worker.sock.sendall(encode_req(P.GRAB_JOB_UNIQ))
                reply = worker.recv()
                if reply.type == P.NO_JOB:
                    worker.send(P.PRE_SLEEP)
                    with contextlib.suppress(TimeoutError):
                        worker.expect(P.NOOP, timeout=0.5)
                    continue
                if reply.type != P.JOB_ASSIGN_UNIQ:
                    continue
                handle, _, unique, _ = reply.body.split(b"\0", 3)
                tracker.start(node.name)
                if self.seconds:
                    time.sleep(self.seconds)
                else:
                    self.release.wait(60)
                tracker.end(node.name, unique)
                worker.send(P.WORK_COMPLETE, handle, b"")

    def close(self) -> None:
        self.stop.set()
        self.release.set()
        for thread in self.threads:
            thread.join(10)


def submit(node: Node, uniques: list[bytes]) -> None:
    with GearmanSocket(node.address, timeout=30) as client:
        for unique in uniques:
            client.send(P.SUBMIT_JOB_BG, FUNCTION, unique, b"x")
        for _ in uniques:
            assert client.expect(P.JOB_CREATED)


def start_nodes(queue: Queue, nodes: list[Node], tmp_path: Path, policy: str) -> tuple[Node, Node]:
    path = tmp_path / "policy.toml"
    path.write_text(policy)
    for name in ("n0", "n1"):
        nodes.append(Node(queue.url, name, tmp_path, LEASE, "--policy-file", str(path)).start())
    return nodes[0], nodes[1]


def uniques(prefix: str, count: int) -> list[bytes]:
    return [f"{prefix}{n}".encode() for n in range(count)]


def test_concurrency_is_the_clusters_and_one_node_alone_uses_all_of_it(
    queue: Queue, nodes: list[Node], tmp_path: Path
) -> None:
    """concurrency = 3, four workers on each node, jobs submitted to both: never more than 3 run at once across
    the nodes (as the workers see it), 3 do, and every job completes. Then with the workers of one node gone, the
    other alone runs 3 at once (not a per-node share)."""
    n0, n1 = start_nodes(queue, nodes, tmp_path, "[functions.limited]\nconcurrency = 3\n")
    tracker = Tracker()
    workers = Workers(tracker, seconds=0.2)
    try:
        workers.add(n0, 4)
        workers.add(n1, 4)
        first = uniques("a", 40)
        held: dict[str, int] = {}
        sampling = threading.Event()

        def sample() -> None:  # what each node holds (claimed, queued or running), from the table
            while not sampling.is_set():
                for name in ("n0", "n1"):
                    held[name] = max(held.get(name, 0), queue.held_by(name))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        submit(n0, first[:20])
        submit(n1, first[20:])
        wait_until(lambda: tracker.done >= set(first), timeout=60, message="every job to complete")
        sampling.set()
        sampler.join(5)
        assert tracker.most == 3, tracker.most
        # A node claims no more than its slots let it start and one job a worker (it could claim 4 workers x 16
        # before); the table also lists, for a moment, a finished job per worker whose deletion is on its way.
        assert max(held.values()) <= 3 + 4 + 4, held
        assert all(tracker.most_on.get(node, 0) >= 1 for node in ("n0", "n1")), tracker.most_on  # both ran some

        workers.stops["n1"].set()  # n1's workers leave after their next look for a job
        time.sleep(1.0)
        tracker.reset_most()
        second = uniques("b", 24)
        submit(n1, second[:12])
        submit(n0, second[12:])
        wait_until(lambda: tracker.done >= set(second), timeout=60, message="every job to complete on n0")
        assert tracker.most == 3 and tracker.most_on["n0"] == 3, (tracker.most, tracker.most_on)
    finally:
        workers.close()


def test_the_rate_is_the_clusters_within_one_batch_per_node(queue: Queue, nodes: list[Node], tmp_path: Path) -> None:
    """rate = "10/s" (a burst of 10, then 10 a second; batches of one token), workers on both nodes, 60 jobs:
    in every window of T seconds at most 10 + 10·T + 2 starts (the bound of docs/lifecycle.md, with 0.2 s for the
    workers' own timing), so the 60 take about 5 s, where counting per node runs them in 2."""
    n0, n1 = start_nodes(queue, nodes, tmp_path, '[functions.limited]\nrate = "10/s"\n')
    tracker = Tracker()
    workers = Workers(tracker, seconds=0.001)
    try:
        workers.add(n0, 3)
        workers.add(n1, 3)
        jobs = uniques("r", 60)
        threads = [
            threading.Thread(target=submit, args=(node, part)) for node, part in ((n0, jobs[:30]), (n1, jobs[30:]))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        wait_until(lambda: tracker.done >= set(jobs), timeout=60, message="every job to complete")
    finally:
        workers.close()
    starts = sorted(tracker.starts)
    for seconds in (0.5, 1.0, 2.0, 3.0):
        most = max(sum(1 for t in starts[i:] if t <= start + seconds) for i, start in enumerate(starts))
        assert most <= 10 + 10 * (seconds + 0.2) + 2, (seconds, most)
    assert starts[-1] - starts[0] >= 4.0, starts[-1] - starts[0]  # (60 - 10 - 2) / 10 = 4.8 s at the least


def test_the_slots_of_a_node_killed_come_back_to_the_others(queue: Queue, nodes: list[Node], tmp_path: Path) -> None:
    """concurrency = 3: n0's workers hold all 3 slots with jobs that do not end; n1's workers get none. After a
    kill -9 of n0, n1 runs 3 at once within the lease + 5 s, and no more than 3."""
    n0, n1 = start_nodes(queue, nodes, tmp_path, "[functions.limited]\nconcurrency = 3\n")
    tracker = Tracker()
    workers = Workers(tracker, seconds=0.0)  # each job runs until released
    try:
        workers.add(n0, 3)
        submit(n0, uniques("k", 3))
        wait_until(lambda: tracker.running_on.get("n0") == 3, timeout=20, message="n0 to run 3")
        workers.add(n1, 4)
        submit(n1, uniques("m", 4))
        time.sleep(1.5)
        assert tracker.running_on.get("n1", 0) == 0, tracker.running_on  # n0 holds every slot
        killed = time.monotonic()
        n0.kill9()
        wait_until(lambda: tracker.running_on.get("n1") == 3, timeout=LEASE + 10, message="n1 to run 3")
        assert time.monotonic() - killed <= LEASE + 5
        time.sleep(1.0)
        assert tracker.most_on["n1"] == 3, tracker.most_on
    finally:
        workers.close()
