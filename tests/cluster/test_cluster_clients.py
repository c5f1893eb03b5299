"""Foreground jobs across nodes with the real third-party clients (issue 14): the client on one node, the only
worker for the function on another; the client gets every WORK_DATA, WORK_WARNING, WORK_STATUS and the final
result, in order, as if both were on one server."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Node, Queue
from test_cluster import LEASE

from servers import CHATTY_CALLBACK_EVENTS, chatty_events, require_program, wait_until

SCRIPTS = Path(__file__).resolve().parents[1] / "interop" / "scripts"
GEARMAN_SUCCESS = 0
GEARMAN_WORK_FAIL = 24


@pytest.fixture
def two_nodes(queue: Queue, tmp_path: Path) -> Iterator[tuple[Node, Node, Queue]]:
    nodes = [Node(queue.url, f"n{i}", tmp_path, LEASE).start() for i in range(2)]
    try:
        yield nodes[0], nodes[1], queue
    finally:
        for node in nodes:
            node.stop()


def script(program: str, name: str, node: Node, *args: str) -> list[str]:
    return [require_program(program), str(SCRIPTS / name), "127.0.0.1", str(node.port), *args]


def run_json(command: list[str]) -> Any:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{command} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def spawn(command: list[str], log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command, stdout=log.open("w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
    )


def test_php_client_on_one_node_php_worker_on_another(two_nodes: tuple[Node, Node, Queue], tmp_path: Path) -> None:
    client_node, worker_node, queue = two_nodes
    worker = spawn(script("php-gearman", "php_worker.php", worker_node, "5"), tmp_path / "worker.out")
    try:
        out = run_json(script("php-gearman", "php_client.php", client_node, "tasks"))
        assert worker.wait(60) == 0, (tmp_path / "worker.out").read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
    assert out["runTasks"] is True and out["rc"] == GEARMAN_SUCCESS, out
    events = out["events"]
    completed = {e["task"]: e["data"] for e in events if e["kind"] == "complete"}
    assert completed == {"normal": "lamron-ksat", "high": "hgih-ksat", "chatty": "done:task-chatty"}
    assert {e["task"] for e in events if e["kind"] == "fail"} == {"fail"}
    assert chatty_events(events) == CHATTY_CALLBACK_EVENTS
    created = {e["task"]: e["handle"] for e in events if e["kind"] == "created"}
    for event in events:  # every packet under the handle the client's node gave
        assert event["handle"] == created[event["task"]], event
    # One handle for a job across the cluster: the worker on the other node sees the one the client got.
    seen = [json.loads(line) for line in (tmp_path / "worker.out").read_text().splitlines() if line.startswith("{")]
    handles = {job["workload"]: job["handle"] for job in seen}
    assert handles["task-background"] == created["background"]
    assert handles["task-normal"] == created["normal"]
    wait_until(lambda: queue.count() == 0, timeout=30, message="the queue to empty")


def test_perl_client_on_one_node_perl_worker_on_another(two_nodes: tuple[Node, Node, Queue], tmp_path: Path) -> None:
    client_node, worker_node, queue = two_nodes
    worker = spawn(script("perl-gearman", "perl_worker.pl", worker_node, "7"), tmp_path / "worker.out")
    try:
        out = run_json(script("perl-gearman", "perl_client.pl", client_node, "foreground"))
        assert worker.wait(60) == 0, (tmp_path / "worker.out").read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
    assert out["do_task"] == "olleh"
    assert out["do_task_high"] == "tnegru"
    assert out["do_task_fail"] == {"result": None, "on_fail": 1}
    assert out["taskset"] == {"alpha": "ahpla", "beta": "ateb", "gamma": "ammag", "progress": "progress:p"}
    assert out["statuses"] == [["1", "2"], ["2", "2"]]
    wait_until(lambda: queue.count() == 0, timeout=30, message="the queue to empty")


def test_libgearman_client_on_one_node_worker_on_another(two_nodes: tuple[Node, Node, Queue], tmp_path: Path) -> None:
    client_node, worker_node, _ = two_nodes
    gearman = require_program("gearman")
    worker = subprocess.Popen(
        [gearman, "-h", "127.0.0.1", "-p", str(worker_node.port), "-w", "-f", "rev", "-c", "2", "--", "rev"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        for word in ("hello", "cluster"):
            done = subprocess.run(
                [gearman, "-h", "127.0.0.1", "-p", str(client_node.port), "-f", "rev", word],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip() == word[::-1]
        assert worker.wait(30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()


def test_a_foreground_job_whose_client_left_is_dropped_cluster_wide(
    two_nodes: tuple[Node, Node, Queue], tmp_path: Path
) -> None:
    client_node, _, queue = two_nodes
    gearman = require_program("gearman")
    # No worker anywhere: the job waits in the queue until its client gives up.
    client = subprocess.Popen(
        [gearman, "-h", "127.0.0.1", "-p", str(client_node.port), "-f", "nobody", "x"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: queue.count(b"nobody") == 1, timeout=30, message="the job to be stored")
    finally:
        client.kill()
        client.wait(10)
    wait_until(lambda: queue.count(b"nobody") == 0, timeout=30, message="the job to be dropped")
