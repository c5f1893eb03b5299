"""Perl's Gearman::Client and Gearman::Worker (pure-Perl protocol implementation) against each server."""

from __future__ import annotations

import pytest
from programs import Children, perl_cmd, run_json

from servers import GearmanServer, admin, parse_status, wait_until

pytestmark = pytest.mark.interop


def wait_until_idle(server: GearmanServer) -> None:
    def idle() -> bool:
        return all(row.total == 0 for row in parse_status(admin(server, "status")).values())

    wait_until(idle, message="every queue to drain")


def test_dispatch_background_and_get_status(gearman_server: GearmanServer, children: Children) -> None:
    out = run_json(perl_cmd(gearman_server, "perl_client.pl", "background"))
    # Gearman::Client handles are "host:port//server-handle".
    server_part, _, handle = out["handle"].partition("//")
    assert server_part == gearman_server.address
    assert handle
    assert (out["known"], out["running"]) == (True, False)

    worker = children.spawn("perl-worker", perl_cmd(gearman_server, "perl_worker.pl", "1"))
    assert worker.wait() == 0, worker.stderr
    assert worker.json_lines() == [{"function": "reverse", "handle": handle, "workload": "perl-bg"}]
    wait_until_idle(gearman_server)


def test_do_task_and_taskset(gearman_server: GearmanServer, children: Children) -> None:
    # 2 do_task + 1 failing do_task + 4 taskset tasks
    worker = children.spawn("perl-worker", perl_cmd(gearman_server, "perl_worker.pl", "7"))
    out = run_json(perl_cmd(gearman_server, "perl_client.pl", "foreground"))
    assert out["do_task"] == "olleh"
    assert out["do_task_high"] == "tnegru"
    assert out["do_task_fail"] == {"result": None, "on_fail": 1}
    assert out["taskset"] == {"alpha": "ahpla", "beta": "ateb", "gamma": "ammag", "progress": "progress:p"}
    assert out["statuses"] == [["1", "2"], ["2", "2"]]

    assert worker.wait() == 0, worker.stderr
    workloads = sorted(job["workload"] for job in worker.json_lines())
    assert workloads == sorted(["hello", "urgent", "doomed", "alpha", "beta", "gamma", "p"])
    wait_until_idle(gearman_server)
