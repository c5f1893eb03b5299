"""A cluster of real node processes on the real PostgreSQL and on the real Redis (issue 14): any node hands out any
job, each job runs once, a killed node's jobs are taken over within its lease, unique keys are cluster-wide, nothing
is lost."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from harness import FUNCTION, Ledger, Node, Queue, Workers, submit

from databases import redis_raw
from geartrain.protocol.packets import PacketType as P
from geartrain.server.persistence import MAX_BACKOFF
from proxy import CuttableProxy
from servers import GearmanSocket, admin_raw, free_port, wait_until

LEASE = 4.0  # short, so that the takeover test is quick; the default is 15 s


def start_nodes(nodes: list[Node], url: str, tmp_path: Path, count: int) -> list[Node]:
    for index in range(count):
        nodes.append(Node(url, f"n{index}", tmp_path, LEASE).start())
    return nodes


def submit_round_robin(nodes: list[Node], uniques: list[bytes], ledger: Ledger) -> list[threading.Thread]:
    threads = [
        threading.Thread(target=submit, args=(node.address, uniques[i :: len(nodes)], ledger), daemon=True)
        for i, node in enumerate(nodes)
    ]
    for thread in threads:
        thread.start()
    return threads


def test_every_job_runs_once_on_any_node(queue: Queue, nodes: list[Node], tmp_path: Path) -> None:
    url = queue.url
    start_nodes(nodes, url, tmp_path, 3)
    ledger = Ledger()
    workers = Workers(ledger)
    try:
        for node in nodes:
            workers.add(node.address, 2)
        # 20,000 jobs on one store, fewer on the other: the same paths, and CI's time stays near 10 minutes.
        uniques = [f"job-{i}".encode() for i in range(20_000 if queue.kind == "postgres" else 5_000)]
        for thread in submit_round_robin(nodes, uniques, ledger):
            thread.join(120)
        assert ledger.acknowledged == set(uniques)
        wait_until(lambda: ledger.done(uniques), timeout=120, message="every job to run")
        wait_until(lambda: queue.count() == 0, timeout=30, message="the queue to empty")
    finally:
        workers.close()
    twice = {u: n for u, n in ledger.runs.items() if n > 1}
    assert twice == {}, f"{len(twice)} jobs ran more than once"
    claimed = [node.api("cluster") for node in nodes]
    assert all(isinstance(info, dict) for info in claimed)
    # Each node ran jobs submitted on the others: any node hands out any job.
    assert all(info["this"]["claimed"] > 0 for info in claimed if isinstance(info, dict))  # type: ignore[index]


def test_a_killed_nodes_jobs_are_taken_over_within_its_lease(queue: Queue, nodes: list[Node], tmp_path: Path) -> None:
    url = queue.url
    start_nodes(nodes, url, tmp_path, 3)
    ledger = Ledger()
    workers = Workers(ledger)
    uniques = [f"job-{i}".encode() for i in range(6000)]
    try:
        for thread in submit_round_robin(nodes, uniques, ledger):
            thread.join(120)
        assert ledger.acknowledged == set(uniques)
        victim = nodes[0]
        workers.add(victim.address, 2)
        for node in nodes[1:]:
            workers.add(node.address, 1)
        wait_until(lambda: queue.held_by(victim.name) > 0, timeout=30, message="the victim to hold jobs")
        held = queue.held_by(victim.name)
        victim.kill9()
        killed_at = time.monotonic()
        wait_until(lambda: queue.held_by(victim.name) == 0, timeout=LEASE + 10, message="the takeover")
        takeover = time.monotonic() - killed_at
        assert takeover <= LEASE + 5, f"takeover took {takeover:.1f} s"
        wait_until(lambda: ledger.done(uniques), timeout=120, message="every job to run")
        wait_until(lambda: queue.count() == 0, timeout=30, message="the queue to empty")
    finally:
        workers.close()
    reruns = sum(n - 1 for n in ledger.runs.values())
    assert reruns <= held, f"{reruns} jobs ran again, more than the {held} the dead node held"
    survivor = nodes[1].api("cluster")
    assert isinstance(survivor, dict)
    listed = {entry["node"] for entry in survivor["nodes"]}  # type: ignore[union-attr]
    assert {"n0", "n1", "n2"} <= listed


def test_one_unique_submitted_to_two_nodes_at_once_is_one_job(queue: Queue, nodes: list[Node], tmp_path: Path) -> None:
    url = queue.url
    start_nodes(nodes, url, tmp_path, 2)
    ledger = Ledger()
    uniques = [f"same-{i}".encode() for i in range(500)]
    threads = [threading.Thread(target=submit, args=(node.address, uniques, ledger), daemon=True) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert queue.count() == len(uniques)
    workers = Workers(ledger)
    try:
        for node in nodes:
            workers.add(node.address, 2)
        wait_until(lambda: ledger.done(uniques), timeout=60, message="every job to run")
        wait_until(lambda: queue.count() == 0, timeout=30, message="the queue to empty")
        time.sleep(0.5)  # a duplicate would have run by now
    finally:
        workers.close()
    assert max(ledger.runs.values()) == 1


def test_a_whole_cluster_restarted_loses_nothing(queue: Queue, nodes: list[Node], tmp_path: Path) -> None:
    url = queue.url
    start_nodes(nodes, url, tmp_path, 2)
    ledger = Ledger()
    uniques = [f"kept-{i}".encode() for i in range(2000)]
    warm = Workers(Ledger())
    warm.add(nodes[0].address, 1)  # a sleeping worker: the node keeps some new jobs for itself
    try:
        for thread in submit_round_robin(nodes, uniques, ledger):
            thread.join(60)
    finally:
        warm.close()
    for node in nodes:
        node.kill9()
    for node in nodes:
        node.start()
    workers = Workers(ledger)
    try:
        for node in nodes:
            workers.add(node.address, 2)
        acknowledged = ledger.acknowledged
        wait_until(lambda: queue.count() == 0, timeout=LEASE + 60, message="the restarted cluster to drain")
    finally:
        workers.close()
    ran = {u for u, n in ledger.runs.items() if n} | {u for u in warm.ledger.runs}
    assert acknowledged <= ran, f"{len(acknowledged - ran)} acknowledged jobs were lost"


def test_cluster_mode_needs_postgresql_or_redis(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "geartrain", "server", "--port", "0", "--cluster"]
    command += ["--store", f"sqlite://{tmp_path / 'queue.db'}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--cluster needs a PostgreSQL or Redis store" in lines[0], lines


def test_the_function_name_is_the_wake_up(queue: Queue, nodes: list[Node], tmp_path: Path) -> None:
    """A job queued on one node reaches a sleeping worker on another promptly (a NOTIFY, not the slow poll)."""
    url = queue.url
    start_nodes(nodes, url, tmp_path, 2)
    ledger = Ledger()
    workers = Workers(ledger)
    try:
        workers.add(nodes[1].address, 1)
        time.sleep(1.5)  # the worker is asleep, and the safety poll has nothing to find
        started = time.monotonic()
        submit(nodes[0].address, [b"wake"], ledger)
        wait_until(lambda: ledger.done([b"wake"]), timeout=10, message="the job to run")
        assert ledger.ran_at[b"wake"] - started < 0.5, "the sleeping worker on the other node woke late"
    finally:
        workers.close()
    assert FUNCTION == b"cluster"


def readyz(node: Node) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}/readyz", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_a_node_cut_off_from_the_database_stops_and_rejoins_without_a_duplicate(
    queue: Queue, nodes: list[Node], tmp_path: Path
) -> None:
    url = queue.url
    proxy = CuttableProxy("127.0.0.1", queue.port)
    try:
        assert f":{queue.port}/" in url
        cut_off = Node(url.replace(f":{queue.port}/", f":{proxy.port}/"), "n0", tmp_path, LEASE).start()
        nodes.append(cut_off)
        other = Node(url, "n1", tmp_path, LEASE).start()
        nodes.append(other)
        ledger = Ledger()
        uniques = [f"job-{i}".encode() for i in range(3000)]
        for thread in submit_round_robin([other], uniques, ledger):
            thread.join(60)
        workers = Workers(ledger)
        try:
            workers.add(cut_off.address, 2)
            wait_until(lambda: queue.held_by("n0") > 0, timeout=30, message="n0 to hold jobs")
            proxy.cut()
            wait_until(lambda: readyz(cut_off) == 503, timeout=LEASE * 2, message="n0 to say it is not ready")
            cut_at_runs = ledger.total_runs()
            workers.add(other.address, 2)
            wait_until(lambda: queue.held_by("n0") == 0, timeout=LEASE + 10, message="the others to adopt")
            proxy.restore()
            # Ready again once its lease is renewed and its store written to: the store is retried after a backoff
            # that has grown to as much as 5 s during the cut (server/persistence.py MAX_BACKOFF).
            wait_until(lambda: readyz(cut_off) == 200, timeout=LEASE * 2 + MAX_BACKOFF, message="n0 to rejoin")
            wait_until(lambda: ledger.done(uniques), timeout=120, message="every job to run")
            wait_until(lambda: queue.count() == 0, timeout=30, message="the queue to empty")
        finally:
            workers.close()
    finally:
        proxy.close()
    # Each of n0's two workers may have had two jobs on n0 at the cut: the one whose result's deletion was cut off
    # (its worker waits for it), and the next one, already assigned behind that wait (its worker sees it after the
    # rejoin). Both ran while their node was cut off; no queued job of n0 runs twice.
    reruns = sum(n - 1 for n in ledger.runs.values())
    assert reruns <= 4, f"{reruns} jobs ran twice: only the two jobs of each of n0's two workers may"
    assert cut_at_runs < len(uniques)


def test_status_cluster_and_metrics_list_the_nodes(queue: Queue, nodes: list[Node], tmp_path: Path) -> None:
    url = queue.url
    start_nodes(nodes, url, tmp_path, 2)

    def listed() -> list[list[str]]:
        text = admin_raw(nodes[0].address, "status cluster").decode()
        return [line.split("\t") for line in text.splitlines() if line != "."]

    table_rows = wait_until(lambda: (found := listed()) and len(found) == 2 and found, timeout=20, message="2 rows")
    assert [row[0] for row in table_rows] == ["n0", "n1"]
    assert [row[1] for row in table_rows] == [node.address for node in nodes]
    assert sum(int(row[4]) for row in table_rows) == 1  # one leader
    with urllib.request.urlopen(f"http://127.0.0.1:{nodes[0].http_port}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert "geartrain_cluster_nodes 2" in metrics and "geartrain_cluster_ready 1" in metrics
    plain = admin_raw(nodes[0].address, "status").decode()
    assert "n1" not in plain  # `status` stays this node's view
    top = subprocess.run(
        [sys.executable, "-m", "geartrain", "top", "--once", "-s", nodes[0].address, "-s", nodes[1].address],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert top.returncode == 0, top.stderr
    node_lines = [line.split() for line in top.stdout.splitlines() if line.startswith(("n0 ", "n1 "))]
    assert len(node_lines) == 2  # the cluster's nodes, listed once (as the first server that answers sees them)
    assert sum(line[-1] == "yes" for line in node_lines) == 1  # and its one leader


def test_get_status_knows_a_job_left_to_the_cluster_until_it_is_done(
    queue: Queue, nodes: list[Node], tmp_path: Path
) -> None:
    """On the node that took the submit and on any other: known, running and its worker's WORK_STATUS (carried back
    through the store), then unknown once done."""
    start_nodes(nodes, queue.url, tmp_path, 3)
    with (
        GearmanSocket(nodes[0].address) as client,
        GearmanSocket(nodes[2].address) as elsewhere,
        GearmanSocket(nodes[1].address) as worker,
    ):
        client.send(P.SUBMIT_JOB_BG, FUNCTION, b"tracked", b"x")
        handle = client.expect(P.JOB_CREATED).body

        def status(on: GearmanSocket) -> list[bytes]:
            on.send(P.GET_STATUS, handle)
            return on.expect(P.STATUS_RES).body.split(b"\0")[1:]

        def status_unique(on: GearmanSocket) -> list[bytes]:
            on.send(P.GET_STATUS_UNIQUE, b"tracked")
            return on.expect(P.STATUS_RES_UNIQUE).body.split(b"\0")[1:5]

        assert status(client) == [b"1", b"0", b"0", b"0"]  # known, waiting for any node
        assert status(elsewhere) == [b"1", b"0", b"0", b"0"]  # another node asks the store
        worker.send(P.CAN_DO, FUNCTION)
        worker.send(P.PRE_SLEEP)
        worker.expect(P.NOOP, timeout=10)
        worker.send(P.GRAB_JOB)
        assigned = worker.expect(P.JOB_ASSIGN).body.split(b"\0")
        assert assigned[0] == handle
        worker.send(P.WORK_STATUS, handle, b"3", b"7")
        wait_until(lambda: status(client) == [b"1", b"1", b"3", b"7"], timeout=10, message="the progress on n0")
        assert status(elsewhere) == [b"1", b"1", b"3", b"7"]
        assert status_unique(client) == [b"1", b"1", b"3", b"7"]
        worker.send(P.WORK_COMPLETE, handle, b"")
        wait_until(lambda: status(client) == [b"0", b"0", b"0", b"0"], timeout=10, message="n0 to forget it")
        assert status(elsewhere) == [b"0", b"0", b"0", b"0"]


def test_a_foreground_job_whose_runners_node_dies_runs_on_another_for_the_same_client(
    queue: Queue, nodes: list[Node], tmp_path: Path
) -> None:
    url = queue.url
    start_nodes(nodes, url, tmp_path, 3)
    client_node, victim, survivor = nodes
    with GearmanSocket(client_node.address, timeout=LEASE + 30) as client, GearmanSocket(victim.address) as doomed:
        doomed.send(P.CAN_DO, FUNCTION)
        doomed.send(P.PRE_SLEEP)
        client.send(P.SUBMIT_JOB, FUNCTION, b"fg-1", b"payload")
        handle = client.expect(P.JOB_CREATED).body
        doomed.expect(P.NOOP)  # the victim's node claimed the job for its sleeping worker
        doomed.send(P.GRAB_JOB_UNIQ)
        assigned = doomed.expect(P.JOB_ASSIGN_UNIQ).body.split(b"\0")
        assert assigned[0] == handle  # the client's handle, on the other node
        victim.kill9()
        ledger = Ledger()
        workers = Workers(ledger)
        try:
            workers.add(survivor.address, 1)
            done = client.expect(P.WORK_COMPLETE)  # after the lease lapsed and the survivor ran it
            assert done.body.split(b"\0")[0] == handle
            assert ledger.runs[b"fg-1"] == 1
        finally:
            workers.close()


def answers(address: str) -> bool:
    try:
        return admin_raw(address, "version", timeout=1).startswith(b"OK")
    except OSError:
        return False


def test_a_cluster_takes_over_the_queue_a_server_of_its_own_left(
    queue: Queue, nodes: list[Node], tmp_path: Path
) -> None:
    """Jobs stored by a plain server (and on Redis by gearmand, as it writes them) are the cluster's when it starts
    on the same store: on Redis the first node indexes them."""
    port = free_port()
    command = [sys.executable, "-m", "geartrain", "server", "--port", str(port), "--store", queue.url]
    plain = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: answers(f"127.0.0.1:{port}"), timeout=30, message="the plain server to start")
        ledger = Ledger()
        uniques = [f"left-{i}".encode() for i in range(300)]
        submit(f"127.0.0.1:{port}", uniques, ledger)
        assert ledger.acknowledged == set(uniques)
    finally:
        plain.terminate()
        assert plain.wait(30) == 0, plain.stderr.read() if plain.stderr else ""
    if queue.kind == "redis":
        raw = redis_raw()
        try:
            raw.hset(f"{queue.name}-{FUNCTION.decode()}-by-gearmand", mapping={"data": b"x", "priority": 1})
        finally:
            raw.close()
        uniques.append(b"by-gearmand")
    start_nodes(nodes, queue.url, tmp_path, 2)
    workers = Workers(ledger)
    try:
        workers.add(nodes[1].address, 2)
        wait_until(lambda: ledger.done(uniques), timeout=60, message="every job left behind to run")
        wait_until(lambda: queue.count() == 0, timeout=30, message="the queue to empty")
    finally:
        workers.close()
    assert max(ledger.runs.values()) == 1


def test_foreground_clients_on_several_nodes_coalesce_onto_one_job(
    queue: Queue, nodes: list[Node], tmp_path: Path
) -> None:
    """The same unique submitted in the foreground to two nodes, and in the background to a third, is one job: the
    one worker (on the third node) runs it once, and both foreground clients get its packets and its result."""
    start_nodes(nodes, queue.url, tmp_path, 3)
    first, second, third = nodes
    with (
        GearmanSocket(first.address) as client_a,
        GearmanSocket(second.address) as client_b,
        GearmanSocket(third.address) as submitter,
        GearmanSocket(third.address, timeout=30) as worker,
    ):
        submitter.send(P.SUBMIT_JOB_BG, FUNCTION, b"shared", b"payload")
        submitter.expect(P.JOB_CREATED)
        client_a.send(P.SUBMIT_JOB, FUNCTION, b"shared", b"payload")
        handle_a = client_a.expect(P.JOB_CREATED).body
        client_b.send(P.SUBMIT_JOB, FUNCTION, b"shared", b"payload")
        handle_b = client_b.expect(P.JOB_CREATED).body
        time.sleep(1.5)  # both watchers registered (they register at once; this leaves room for a slow machine)
        worker.send(P.CAN_DO, FUNCTION)
        worker.send(P.GRAB_JOB_UNIQ)
        assigned = worker.recv()
        while assigned.type == P.NO_JOB:  # the claim for the new worker is under way
            worker.send(P.PRE_SLEEP)
            worker.expect(P.NOOP)
            worker.send(P.GRAB_JOB_UNIQ)
            assigned = worker.recv()
        assert assigned.type == P.JOB_ASSIGN_UNIQ
        handle = assigned.body.split(b"\0")[0]
        worker.send(P.WORK_DATA, handle, b"part")
        worker.send(P.WORK_COMPLETE, handle, b"result")
        for client, client_handle in ((client_a, handle_a), (client_b, handle_b)):
            assert client.expect(P.WORK_DATA).body == client_handle + b"\0part"
            assert client.expect(P.WORK_COMPLETE).body == client_handle + b"\0result"
        worker.send(P.GRAB_JOB_UNIQ)
        assert worker.expect(P.NO_JOB)  # run once
    wait_until(lambda: queue.count() == 0, timeout=30, message="the queue to empty")


def test_a_node_forgotten_while_cut_off_is_entered_again_and_its_jobs_survive(
    queue: Queue, nodes: list[Node], tmp_path: Path
) -> None:
    """Cut off for longer than the cluster remembers a silent node (4 leases): the leader forgets it, with its
    client's foreground job waiting in the store. Back, the node enters the node list again (listed, and rescued
    when it dies: the rescue walks that list on Redis), and its client's job is stored again and runs."""
    url = queue.url
    proxy = CuttableProxy("127.0.0.1", queue.port)
    workers = Workers(Ledger())
    try:
        cut_off = Node(url.replace(f":{queue.port}/", f":{proxy.port}/"), "n0", tmp_path, LEASE).start()
        nodes.append(cut_off)
        other = Node(url, "n1", tmp_path, LEASE).start()
        nodes.append(other)

        def listed() -> set[str]:
            found = other.api("cluster")
            return {str(entry["node"]) for entry in found["nodes"]} if isinstance(found, dict) else set()  # type: ignore[union-attr]

        wait_until(lambda: listed() == {"n0", "n1"}, timeout=20, message="both nodes listed")
        with GearmanSocket(cut_off.address, timeout=120) as client:
            client.send(P.SUBMIT_JOB, FUNCTION, b"waits-on-n0", b"data")
            handle = client.expect(P.JOB_CREATED).body
            wait_until(lambda: queue.count(FUNCTION) == 1, timeout=10, message="the job stored")
            proxy.cut()
            wait_until(lambda: "n0" not in listed(), timeout=LEASE * 8, message="n0 forgotten")
            proxy.restore()
            wait_until(lambda: "n0" in listed(), timeout=LEASE * 2 + MAX_BACKOFF, message="n0 listed again")
            workers.add(other.address, 1)  # the only worker, on the other node
            done = client.expect(P.WORK_COMPLETE, timeout=LEASE * 4 + MAX_BACKOFF)
            assert done.body.split(b"\0")[0] == handle
        # Its lease is the cluster's again: killed holding jobs, they are taken over.
        ledger = workers.ledger
        uniques = [f"after-{i}".encode() for i in range(200)]
        submit(other.address, uniques, ledger)
        workers.close()
        workers = Workers(ledger)
        workers.add(cut_off.address, 1)
        wait_until(lambda: queue.held_by("n0") > 0, timeout=30, message="n0 to hold jobs")
        cut_off.kill9()
        wait_until(lambda: queue.held_by("n0") == 0, timeout=LEASE + 10, message="n0's jobs taken over")
        workers.add(other.address, 1)
        wait_until(lambda: ledger.done(uniques), timeout=60, message="every job to run")
    finally:
        workers.close()
        proxy.close()
    assert "forgotten by the cluster" in cut_off.log_path.read_text()
