"""Policies and cron entries changed at run time over HTTP (issue 15), against a real server with a policy file:
in force at once (a failed job is retried, a cron entry fires), seen by the admin port, refused with one line when
they do not check, and kept over a restart."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from http_harness import HttpServer

from servers import GearmanSocket, PacketType, admin, listing_lines

P = PacketType
POLICY = """
[functions.flaky]
retries = 0
[[cron]]
function = "report"
schedule = "0 7 * * *"
"""


def start(factory: Callable[..., HttpServer], tmp_path: Path, *store: str) -> HttpServer:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    return factory(*(store or ("--store", "memory")), "--policy-file", str(policy))


def send(server: HttpServer, method: str, path: str, data: object = None) -> tuple[int, object]:
    body = None if data is None else (data if isinstance(data, bytes) else json.dumps(data).encode())
    status, _, reply = server.request(method, path, body, {"Content-Type": "application/json"})
    return status, json.loads(reply)


def assert_one_line_error(server: HttpServer, method: str, path: str, data: object, *words: str) -> None:
    status, _, reply = server.request(method, path, data if isinstance(data, bytes) else json.dumps(data).encode())
    assert status == 400, (path, data, status, reply)
    error = json.loads(reply)["error"]
    assert "\n" not in error and all(word in error for word in words), error


def test_a_policy_set_over_http_is_in_force_and_seen_by_the_admin_port(
    http_server_factory: Callable[..., HttpServer], tmp_path: Path
) -> None:
    server = start(http_server_factory, tmp_path)
    status, view = send(server, "PUT", "/api/policies/flaky", {"retries": 2, "timeout": "30s"})
    assert status == 200
    assert view["functions"]["flaky"]["overrides"] == {"retries": 2, "timeout": "30s"}  # type: ignore[index]
    policy = json.loads(admin(server.address, "policy show flaky"))["functions"]["flaky"]["policy"]
    assert (policy["retries"], policy["timeout"]) == (2, 30.0)
    assert "flaky" in server.get_json("/api/policies")["functions"]  # type: ignore[index]
    with GearmanSocket(server.address) as client, GearmanSocket(server.address) as worker:
        client.send(P.SUBMIT_JOB_BG, b"flaky", b"u1", b"payload")
        handle = client.expect(P.JOB_CREATED).body
        worker.send(P.CAN_DO, b"flaky")
        worker.send(P.WORK_FAIL, worker.grab().args[0])
        worker.sync()
        client.send(P.GET_STATUS, handle)
        assert client.expect(P.STATUS_RES).args[1:3] == [b"1", b"0"]  # known, not running: waiting to be retried
    assert server.get_json("/api/dead") == {"dead": []}  # with the file's retries = 0 it would be dead

    status, view = send(server, "DELETE", "/api/policies/flaky?keys=timeout")
    assert status == 200 and view["functions"]["flaky"]["overrides"] == {"retries": 2}  # type: ignore[index]
    status, view = send(server, "DELETE", "/api/policies/flaky")
    assert status == 200 and view["functions"]["flaky"]["overrides"] == {}  # type: ignore[index]
    assert view["functions"]["flaky"]["policy"]["retries"] == 0  # type: ignore[index]  # the file's again


def test_bad_policy_values_are_a_400_with_one_line(
    http_server_factory: Callable[..., HttpServer], tmp_path: Path
) -> None:
    server = start(http_server_factory, tmp_path)
    assert_one_line_error(server, "PUT", "/api/policies/flaky", {"retries": "x"}, "retries", '"x"')
    assert_one_line_error(server, "PUT", "/api/policies/flaky", {"timeout": "3x"}, "timeout", "duration")
    assert_one_line_error(server, "PUT", "/api/policies/flaky", {"retry": 1}, "retry")
    assert_one_line_error(server, "POST", "/api/policies/flaky", b"retries=5", "JSON object")
    assert_one_line_error(server, "DELETE", "/api/policies/flaky?keys=bogus", b"", "bogus", "not a policy key")
    assert json.loads(admin(server.address, "policy show flaky"))["functions"]["flaky"]["overrides"] == {}


def test_a_cron_entry_added_over_http_fires_and_is_removed(
    http_server_factory: Callable[..., HttpServer], tmp_path: Path
) -> None:
    server = start(http_server_factory, tmp_path)
    entry = {"function": "tick", "schedule": "@every 1s", "payload": "hello", "priority": "high"}
    status, added = send(server, "POST", "/api/cron", entry)
    assert status == 201, added
    assert (added["function"], added["schedule"], added["source"]) == ("tick", "@every 1s", "runtime")  # type: ignore[index]
    assert isinstance(added["next"], float)  # type: ignore[index]
    listed = {e["function"]: e["source"] for e in server.get_json("/api/cron")["cron"]}  # type: ignore[index]
    assert listed == {"report": "file", "tick": "runtime"}
    assert "tick\t@every 1s" in admin(server.address, "cron list")
    with GearmanSocket(server.address, timeout=15) as worker:
        worker.send(P.CAN_DO, b"tick")
        worker.send(P.PRE_SLEEP)
        worker.expect(P.NOOP)  # the first firing, a second from now at most
        assert worker.grab().args[1:] == [b"tick", b"hello"]

    assert_one_line_error(server, "POST", "/api/cron", {"function": "t", "schedule": "61 * * * *"}, "cron.schedule")
    assert_one_line_error(server, "POST", "/api/cron", {"function": "report", "schedule": "0 7 * * *"}, "file")
    assert_one_line_error(server, "POST", "/api/cron", {"function": "t"}, "schedule is missing")
    assert send(server, "DELETE", "/api/cron?function=report") == (200, {"function": "report", "removed": 0})
    assert send(server, "DELETE", "/api/cron?function=tick") == (200, {"function": "tick", "removed": 1})
    assert [e["function"] for e in server.get_json("/api/cron")["cron"]] == ["report"]  # type: ignore[index]
    assert send(server, "DELETE", "/api/cron")[0] == 400


def test_without_a_policy_file_the_new_routes_say_how_to_turn_it_on(http_server: HttpServer) -> None:
    for method, path in (("GET", "/api/policies"), ("PUT", "/api/policies/f"), ("POST", "/api/cron")):
        status, reply = send(http_server, method, path, {"retries": 1})
        assert status == 404 and "--policy-file" in reply["error"], (method, path)  # type: ignore[index]


def test_run_time_changes_outlive_a_restart(http_server_factory: Callable[..., HttpServer], tmp_path: Path) -> None:
    store = ("--store", f"sqlite:///{tmp_path / 'queue.db'}")
    server = start(http_server_factory, tmp_path, *store)
    assert admin(server.address, "policy set flaky retries=3 rate=10%2Fm") == "OK\r\n"
    assert admin(server.address, "cron add nightly 0 3 * * * payload=two%20words").startswith("OK ")
    server.stop()
    restarted = start(http_server_factory, tmp_path, *store)
    shown = json.loads(admin(restarted.address, "policy show flaky"))
    assert shown["functions"]["flaky"]["overrides"] == {"retries": 3, "rate": "10/m"}
    assert shown["functions"]["flaky"]["policy"]["rate"] == "10/60s"
    rows = sorted(row.split("\t")[:2] for row in listing_lines(admin(restarted.address, "cron list")))
    assert rows == [["nightly", "0 3 * * *"], ["report", "0 7 * * *"]]
    sources = {e["function"]: e["source"] for e in restarted.get_json("/api/cron")["cron"]}  # type: ignore[index]
    assert sources == {"nightly": "runtime", "report": "file"}
