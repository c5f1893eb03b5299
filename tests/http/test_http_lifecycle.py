"""The job life cycle over HTTP (issue 15): the dead set listed, shown, retried and deleted; a function paused and
resumed; a kept result read back; the cron entries listed — against a real server with a policy file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from http_harness import HttpServer

from servers import GearmanSocket, PacketType, admin

P = PacketType
POLICY = """
[functions.flaky]
result_ttl = "1h"
[functions.fine]
result_ttl = "1h"
[[cron]]
function = "report"
schedule = "0 7 * * *"
timezone = "Europe/Berlin"
"""


def test_dead_jobs_pause_results_and_cron_over_http(
    http_server_factory: Callable[..., HttpServer], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    server = http_server_factory("--store", "memory", "--policy-file", str(policy))
    with GearmanSocket(server.address) as client, GearmanSocket(server.address) as worker:
        worker.send(P.CAN_DO, b"flaky")
        worker.send(P.CAN_DO, b"fine")
        client.send(P.SUBMIT_JOB_BG, b"flaky", b"u1", b"payload")
        failing = client.expect(P.JOB_CREATED).body
        client.send(P.SUBMIT_JOB_BG, b"fine", b"u2", b"payload")
        working = client.expect(P.JOB_CREATED).body
        for _ in range(2):
            handle, function, _ = worker.grab().args
            if function == b"flaky":
                worker.send(P.WORK_EXCEPTION, handle, b"it broke")
            else:
                worker.send(P.WORK_COMPLETE, handle, b"the result")
        worker.sync()
    listed = server.get_json("/api/dead")
    assert [(d["handle"], d["error"]) for d in listed["dead"]] == [(failing.decode(), "it broke")]  # type: ignore[index]
    shown = server.get_json(f"/api/dead/{failing.decode()}")
    assert shown["data"] == "payload" and shown["attempts"] == 1  # type: ignore[index]
    kept = server.get_json(f"/api/results/{working.decode()}")
    assert (kept["status"], kept["data"]) == ("complete", "the result")  # type: ignore[index]
    failed = server.get_json(f"/api/results/{failing.decode()}")
    assert (failed["status"], failed["data"]) == ("exception", "it broke")  # type: ignore[index]
    with GearmanSocket(server.address) as client:
        client.send(P.GET_STATUS, working)
        assert client.expect(P.STATUS_RES).body.split(b"\0")[1:] == [b"1", b"0", b"1", b"1"]  # known, finished
    [entry] = server.get_json("/api/cron")["cron"]  # type: ignore[index]
    assert (entry["function"], entry["schedule"], entry["last"]) == ("report", "0 7 * * *", None)
    assert server.post_json("/api/functions/flaky/pause") == {"function": "flaky", "paused": True, "changed": True}
    assert admin(server.address, "paused") == "flaky\n.\n"
    assert server.post_json("/api/dead/flaky/retry") == {"retried": 1}
    assert server.get_json("/api/functions/flaky")["total"] == 1  # type: ignore[index]  # queued, held
    assert server.post_json("/api/functions/flaky/resume")["changed"] is True  # type: ignore[index]
    status, _, body = server.request("DELETE", "/api/dead/all")
    assert (status, json.loads(body)) == (200, {"deleted": 0})  # retried: the dead set is empty
    status, _, _ = server.request("GET", "/api/results/H:nope:1")
    assert status == 404


def test_without_a_policy_file_the_routes_say_how_to_turn_it_on(http_server: HttpServer) -> None:
    status, _, body = http_server.request("GET", "/api/dead")
    assert status == 404 and b"--policy-file" in body
