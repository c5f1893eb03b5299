"""Run-time policy and cron changes on a cluster (issue 15): `policy set/unset` and `cron add/remove` on any node
are in force on every node within a second or so (each node reads the records back from the cluster's table), on
a node started later before its first claim, and after a kill -9; a cron entry added on any node is fired by the
leader alone, and removing it on any node stops it everywhere."""

from __future__ import annotations

import json
import time
from pathlib import Path

from harness import Node, Queue
from test_cluster_lifecycle import LEASE, grab_uniq, is_leader, submitted

from geartrain.protocol.packets import PacketType as P
from servers import GearmanSocket, admin, wait_until


def start_nodes(queue: Queue, nodes: list[Node], tmp_path: Path, policy: str, names: tuple[str, ...]) -> list[Node]:
    path = tmp_path / "policy.toml"
    path.write_text(policy)
    for name in names:
        nodes.append(Node(queue.url, name, tmp_path, LEASE, "--policy-file", str(path)).start())
    return nodes


def overrides_on(node: Node, function: str) -> dict[str, object]:
    """What `policy show F` on ``node`` says run-time changes set for F."""
    shown = json.loads(admin(node.address, f"policy show {function}"))
    return shown["functions"][function]["overrides"]  # type: ignore[no-any-return]


def crons_on(node: Node) -> list[str]:
    """`cron list` on ``node``: FUNCTION and SCHEDULE of each entry."""
    rows = [line.split("\t") for line in admin(node.address, "cron list").splitlines() if line != "."]
    return sorted(f"{row[0]} {row[1]}" for row in rows)


def fail_until_dead(worker: GearmanSocket, handle: bytes, timeout: float) -> int:
    """Fail every run of the job ``handle`` that ``worker`` is handed until none comes within ``timeout`` seconds;
    returns how many runs there were."""
    runs = 0
    while (grabbed := grab_uniq(worker, timeout)) is not None:
        assert grabbed[0] == handle, grabbed
        runs += 1
        worker.send(P.WORK_FAIL, handle)
    return runs


def test_a_policy_set_on_one_node_governs_a_job_failing_on_another(
    queue: Queue, nodes: list[Node], tmp_path: Path
) -> None:
    """`policy set flaky retries=2` on n0: n1 shows it (admin and HTTP) and retries its failing job twice before
    burying it; a second change on n1 rewrites the record, and `policy unset` on n1 puts the file's `retries = 0`
    back on n0."""
    n0, n1 = start_nodes(queue, nodes, tmp_path, "[functions.flaky]\nretries = 0\n", ("n0", "n1"))
    assert admin(n0.address, "policy set flaky retries=2 backoff=fixed backoff_base=1s").strip() == "OK"
    expected = {"retries": 2, "backoff": "fixed", "backoff_base": "1s"}
    wait_until(lambda: overrides_on(n1, "flaky") == expected, timeout=10, message="n1 to see the change")
    view = n1.api("policies/flaky")
    assert isinstance(view, dict) and view["functions"]["flaky"]["policy"]["retries"] == 2  # type: ignore[index]
    with GearmanSocket(n1.address, timeout=15) as worker, GearmanSocket(n1.address) as client:
        worker.send(P.CAN_DO, b"flaky")
        client.send(P.SUBMIT_JOB_BG, b"flaky", b"f1", b"x")
        created = client.recv()
        assert created.type == P.JOB_CREATED
        assert fail_until_dead(worker, created.body, timeout=5) == 3  # the first run and two retries
    wait_until(lambda: admin(n1.address, f"dead show {created.body.decode()}").startswith("{"), timeout=10)
    assert json.loads(admin(n1.address, f"dead show {created.body.decode()}"))["attempts"] == 3

    assert admin(n1.address, "policy set flaky retries=1").strip() == "OK"  # a change of the stored record
    rewritten = {**expected, "retries": 1}
    wait_until(lambda: overrides_on(n0, "flaky") == rewritten, timeout=10, message="n0 to see the second change")
    assert admin(n1.address, "policy unset flaky").strip() == "OK"
    wait_until(lambda: overrides_on(n0, "flaky") == {}, timeout=10, message="n0 to see the unset")
    shown = json.loads(admin(n0.address, "policy show flaky"))
    assert shown["functions"]["flaky"]["policy"]["retries"] == 0


def test_a_cron_entry_added_on_one_node_fires_from_the_leader_and_a_removal_anywhere_stops_it(
    queue: Queue, nodes: list[Node], tmp_path: Path
) -> None:
    n0, n1 = start_nodes(queue, nodes, tmp_path, "", ("n0", "n1"))
    wait_until(lambda: any(is_leader(node) for node in nodes), timeout=20, message="a leader")
    assert admin(n1.address, "cron add tick @every 1s payload=t").startswith("OK ")
    for node in (n0, n1):
        wait_until(lambda node=node: crons_on(node) == ["tick @every 1s"], timeout=10, message=f"{node.name}'s entry")
    uniques: list[bytes] = []
    with GearmanSocket(n1.address, timeout=15) as worker:  # a worker on one node only, either may lead
        worker.send(P.CAN_DO, b"tick")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            grabbed = grab_uniq(worker, 0.5)
            if grabbed is not None:
                uniques.append(grabbed[1])
                worker.send(P.WORK_COMPLETE, grabbed[0], b"")
        assert len(uniques) >= 3, uniques
        assert len(set(uniques)) == len(uniques), f"a firing ran twice: {uniques}"
        leader = next(node for node in nodes if is_leader(node))
        follower = next(node for node in nodes if node is not leader)
        assert submitted(follower, "tick") == 0 and submitted(leader, "tick") >= len(uniques) - 1

        assert admin(n0.address, "cron remove tick").strip() == "OK 1"
        for node in (n0, n1):
            wait_until(lambda node=node: crons_on(node) == [], timeout=10, message=f"{node.name}'s entry to go")
        while (grabbed := grab_uniq(worker, 2)) is not None:  # firings from before the leader saw the removal
            worker.send(P.WORK_COMPLETE, grabbed[0], b"")
        fired = submitted(leader, "tick")
        assert grab_uniq(worker, 3) is None, "the removed entry still fires"
        assert submitted(leader, "tick") == fired


def test_run_time_changes_outlive_a_kill_and_reach_a_node_started_later(
    queue: Queue, nodes: list[Node], tmp_path: Path
) -> None:
    """The changes are the cluster's records: n0, killed (-9) right after n1 saw them, has them again once started
    (before it answers anything), and so does n2, started after them."""
    n0, n1 = start_nodes(queue, nodes, tmp_path, "[functions.flaky]\nretries = 0\n", ("n0", "n1"))
    assert admin(n0.address, "policy set flaky retries=5 timeout=30s").strip() == "OK"
    assert admin(n0.address, "cron add report 0 7 * * * payload=daily").startswith("OK ")
    wait_until(lambda: crons_on(n1) == ["report 0 7 * * *"], timeout=10, message="n1 to see the entry")
    wait_until(lambda: overrides_on(n1, "flaky") != {}, timeout=10, message="n1 to see the policy")
    n0.kill9()
    n0.start()
    n2 = start_nodes(queue, nodes, tmp_path, "[functions.flaky]\nretries = 0\n", ("n2",))[-1]
    for node in (n0, n1, n2):
        assert overrides_on(node, "flaky") == {"retries": 5, "timeout": "30s"}, node.name
        assert crons_on(node) == ["report 0 7 * * *"], node.name
    view = n2.api("cron")
    assert isinstance(view, dict) and [entry["source"] for entry in view["cron"]] == ["runtime"]  # type: ignore[index, union-attr]
