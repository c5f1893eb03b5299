"""PHP's pecl gearman extension (libgearman underneath) as client and worker against each server.

The PHP scripts in scripts/ print JSON; the assertions live here.
"""

from __future__ import annotations

from typing import Any

import pytest
from programs import Children, php_cmd, run_json

from servers import (
    CHATTY_CALLBACK_EVENTS,
    GearmanServer,
    GearmanSocket,
    PacketType,
    StatusRow,
    admin,
    chatty_events,
    parse_status,
    wait_until,
)

pytestmark = pytest.mark.interop

GEARMAN_SUCCESS = 0
GEARMAN_WORK_FAIL = 24


def wait_until_idle(server: GearmanServer) -> None:
    def idle() -> bool:
        return all(row.total == 0 for row in parse_status(admin(server, "status")).values())

    wait_until(idle, message="every queue to drain")


def test_job_status_of_queued_background_job(gearman_server: GearmanServer, children: Children) -> None:
    queued = run_json(php_cmd(gearman_server, "php_client.php", "queue-background"))
    assert queued["rc"] == GEARMAN_SUCCESS
    assert queued["handle"]
    known, running, numerator, denominator = queued["status"]
    assert (known, running) == (True, False)
    assert (numerator, denominator) == (0, 0)

    worker = children.spawn("php-worker", php_cmd(gearman_server, "php_worker.php", "1"))
    assert worker.wait() == 0, worker.stderr
    [job] = worker.json_lines()
    assert job == {
        "function": "reverse",
        "handle": queued["handle"],
        "unique": "php-bg-unique",
        "workload": "queued-before-worker",
    }
    wait_until_idle(gearman_server)


def test_do_methods(gearman_server: GearmanServer, children: Children) -> None:
    worker = children.spawn("php-worker", php_cmd(gearman_server, "php_worker.php", "9"))
    out = run_json(php_cmd(gearman_server, "php_client.php", "do"))
    assert out["doNormal"] == {"result": "lamron", "rc": GEARMAN_SUCCESS}
    assert out["doHigh"] == {"result": "hgih", "rc": GEARMAN_SUCCESS}
    assert out["doLow"] == {"result": "wol", "rc": GEARMAN_SUCCESS}
    # WORK_DATA chunks come first, in order, then the WORK_COMPLETE payload.
    assert out["chatty"] == {"result": "data-1data-2done:x", "rc": GEARMAN_SUCCESS}
    assert out["fail_send"]["rc"] == GEARMAN_WORK_FAIL
    assert out["fail_return"]["rc"] == GEARMAN_WORK_FAIL
    handles = [out[name]["result"] for name in ("doBackground", "doHighBackground", "doLowBackground")]
    assert all(out[name]["rc"] == GEARMAN_SUCCESS for name in ("doBackground", "doHighBackground", "doLowBackground"))
    assert all(handles) and len(set(handles)) == 3

    assert worker.wait() == 0, worker.stderr
    jobs = worker.json_lines()
    assert sorted(job["workload"] for job in jobs) == sorted(
        ["normal", "high", "low", "x", "f1", "f2", "bg-normal", "bg-high", "bg-low"]
    )
    background = {job["workload"]: job["handle"] for job in jobs if job["workload"].startswith("bg-")}
    assert background == dict(zip(["bg-normal", "bg-high", "bg-low"], handles, strict=True))
    wait_until_idle(gearman_server)


def by_task(events: list[dict[str, Any]], kind: str) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for event in events:
        if event["kind"] == kind:
            grouped.setdefault(event["task"], []).append(event)
    return grouped


def test_tasks_with_callbacks(gearman_server: GearmanServer, children: Children) -> None:
    worker = children.spawn("php-worker", php_cmd(gearman_server, "php_worker.php", "5"))
    out = run_json(php_cmd(gearman_server, "php_client.php", "tasks"))
    assert all(out["added"].values()), out
    assert out["runTasks"] is True
    assert out["rc"] == GEARMAN_SUCCESS
    events = out["events"]

    created = by_task(events, "created")
    assert set(created) == {"normal", "high", "background", "chatty", "fail"}
    handles = {task: found[0]["handle"] for task, found in created.items()}
    assert len(set(handles.values())) == 5

    completed = {task: found[0]["data"] for task, found in by_task(events, "complete").items()}
    assert completed == {"normal": "lamron-ksat", "high": "hgih-ksat", "chatty": "done:task-chatty"}
    assert set(by_task(events, "fail")) == {"fail"}

    # The chatty job's packets reach the callbacks in the order the worker sent them.
    assert chatty_events(events) == CHATTY_CALLBACK_EVENTS
    for event in events:
        assert event["handle"] == handles[event["task"]], event

    assert worker.wait() == 0, worker.stderr
    jobs = {job["workload"]: job for job in worker.json_lines()}
    assert set(jobs) == {"task-normal", "task-high", "task-background", "task-chatty", "task-fail"}
    assert jobs["task-normal"]["unique"] == "php-task-unique"
    assert jobs["task-background"]["handle"] == handles["background"]
    wait_until_idle(gearman_server)


def test_php_client_with_raw_python_worker(gearman_server: GearmanServer, children: Children) -> None:
    """A PHP client served by a worker speaking the binary protocol by hand (independent of our library)."""
    client = children.spawn(
        "php-client", php_cmd(gearman_server, "php_client.php", "reverse", "reverse_py", "hello python", "php-uniq-1")
    )
    with GearmanSocket(gearman_server) as worker:
        worker.send(PacketType.CAN_DO, b"reverse_py")
        worker.send(PacketType.PRE_SLEEP)
        worker.expect(PacketType.NOOP)  # woken by the PHP client's submit (or at once if it came first)
        worker.send(PacketType.GRAB_JOB_UNIQ)
        handle, function, unique, data = worker.expect(PacketType.JOB_ASSIGN_UNIQ).args
        assert (function, unique, data) == (b"reverse_py", b"php-uniq-1", b"hello python")
        worker.send(PacketType.WORK_COMPLETE, handle, data[::-1])
        assert client.wait() == 0, client.stderr
    assert client.json() == {"result": "nohtyp olleh", "rc": GEARMAN_SUCCESS}
    wait_until(
        lambda: parse_status(admin(gearman_server, "status"))["reverse_py"] == StatusRow(0, 0, 0),
        message="the raw worker to be forgotten",
    )
