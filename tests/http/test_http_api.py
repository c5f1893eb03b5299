"""The JSON API, health checks, the event stream and the `... json` admin commands, on a real server."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from http_harness import HttpServer

from servers import HOST, GearmanSocket, PacketType, admin, listing_lines, parse_status, wait_until

P = PacketType
BG = {"X-Gearman-Background": "true", "X-Gearman-Unique": ""}


def jobs(server: HttpServer, query: str = "") -> dict[str, Any]:
    return server.get_json(f"/api/jobs{query}")  # type: ignore[return-value]


def test_health_and_readiness(http_server: HttpServer) -> None:
    assert http_server.request("GET", "/healthz")[::2] == (200, b"ok\n")
    assert http_server.request("GET", "/readyz")[::2] == (200, b"ready\n")
    status, headers, body = http_server.request("HEAD", "/healthz")
    assert (status, body, headers["Content-Length"]) == (200, b"", "3")
    # A graceful drain makes the server not ready (it still answers).
    assert admin(http_server.address, "shutdown graceful").startswith("OK")
    # With no job left the drained server exits.
    wait_until(lambda: http_server.process.poll() is not None, message="the drained server to exit")


def test_readiness_is_false_while_draining_with_jobs_left(http_server: HttpServer) -> None:
    with GearmanSocket(http_server.address) as client:
        client.submit("pending", b"x")  # a foreground job keeps the drain going
        assert admin(http_server.address, "shutdown graceful").startswith("OK")
        status, _, body = http_server.request("GET", "/readyz")
        assert (status, body) == (503, b"draining\n")
        assert http_server.request("POST", "/pending", b"y", BG)[0] == 503  # no new jobs while draining


def test_server_functions_workers_and_jobs(http_server: HttpServer) -> None:
    info: dict[str, Any] = http_server.get_json("/api/server")  # type: ignore[assignment]
    assert info["gearman"] == [http_server.address] and info["ready"] is True
    assert info["http"] == [f"{HOST}:{http_server.http_port}"] and info["store"] is None  # --store memory
    for n in range(3):
        http_server.request("POST", "/resize", f"img{n}".encode(), {**BG, "X-Gearman-Unique": f"img-{n}"})
    http_server.request("POST", "/mail", b"hi", {**BG, "X-Gearman-Priority": "high"})
    with GearmanSocket(http_server.address) as worker:
        worker.send(P.SET_CLIENT_ID, b"resizer-1")
        worker.send(P.CAN_DO, b"resize")
        running = worker.grab().args[0].decode()
        functions = {f["name"]: f for f in http_server.get_json("/api/functions")["functions"]}  # type: ignore[index]
        assert functions["resize"]["queued"] == {"high": 0, "normal": 2, "low": 0}
        assert (functions["resize"]["running"], functions["resize"]["workers"]) == (1, 1)
        assert functions["mail"]["queued"]["high"] == 1 and functions["mail"]["submitted"] == 1
        assert (functions["resize"]["pending"], functions["resize"]["replayed"]) == (0, 0)
        one: dict[str, Any] = http_server.get_json("/api/functions/resize")  # type: ignore[assignment]
        assert one.pop("oldest_queued") >= functions["resize"].pop("oldest_queued") >= 0  # waits grow meanwhile
        assert one == functions["resize"]
        workers = http_server.get_json("/api/workers")["workers"]  # type: ignore[index]
        assert [(w["client_id"], w["functions"], w["running"]) for w in workers] == [
            ("resizer-1", ["resize"], [running])
        ]
        # Who the worker is: its own address and port, since when, and how many results it sent.
        local = worker.sock.getsockname()
        assert (workers[0]["address"], workers[0]["port"], workers[0]["jobs_done"]) == (local[0], local[1], 0)
        assert 0 <= time.time() - workers[0]["connected"] < 60
        listing = jobs(http_server)
        assert listing["total"] == 4
        by_handle = {j["handle"]: j for j in listing["jobs"]}
        assert by_handle[running]["state"] == "running" and by_handle[running]["attempts"] == 1
        assert {j["unique"] for j in listing["jobs"]} == {"img-0", "img-1", "img-2", ""}
        assert all(j["age"] >= 0 and j["size"] in (2, 4) for j in listing["jobs"])
        # search matches handle, unique or function; function= filters exactly; limit caps the list only
        assert [j["unique"] for j in jobs(http_server, "?search=IMG-2")["jobs"]] == ["img-2"]
        assert {j["function"] for j in jobs(http_server, "?function=mail")["jobs"]} == {"mail"}
        capped = jobs(http_server, "?limit=1")
        assert capped["total"] == 4 and len(capped["jobs"]) == 1 and capped["complete"] is True
        assert capped["jobs"][0] == {**listing["jobs"][0], "age": capped["jobs"][0]["age"]}  # oldest first
        one_job: dict[str, Any] = http_server.get_json(f"/api/jobs/{running}")  # type: ignore[assignment]
        assert one_job.pop("age") >= by_handle[running].pop("age")  # ages grow between the two requests
        assert one_job | by_handle[running] == one_job  # the detail view has what the list has, and more:
        assert one_job["payload"] == {"preview": "img0", "truncated": False, "binary": False}
        assert one_job["worker_detail"]["client_id"] == "resizer-1" and one_job["error"] is None
        assert [event["event"] for event in one_job["history"]] == ["created", f"handed to worker {workers[0]['id']}"]
    assert http_server.request("GET", "/api/jobs/H:nope:1")[0] == 404
    assert http_server.request("GET", "/api/functions/nope")[0] == 404
    assert http_server.request("GET", "/api/nothing")[0] == 404


def test_cancel_tells_the_waiting_client_and_purge_empties_the_queue(http_server: HttpServer) -> None:
    with GearmanSocket(http_server.address) as client:
        handle = client.submit("work", b"fg")
        for n in range(4):
            http_server.request("POST", "/work", f"bg{n}".encode(), BG)
        assert http_server.post_json(f"/api/jobs/{handle}/cancel") == {"cancelled": handle}
        failed = client.expect(P.WORK_FAIL)
        assert failed.args[0].decode() == handle
        assert jobs(http_server, f"?search={handle}")["jobs"][0]["state"] == "cancelled"
        background = http_server.request("POST", "/work", b"cancel me", BG)[1]["X-Gearman-Job-Handle"]
        http_server.post_json(f"/api/jobs/{background}/cancel")
        cancelled = http_server.get_json(f"/api/jobs/{background}")
        assert (cancelled["state"], cancelled["background"]) == ("cancelled", True)  # type: ignore[index]
        assert http_server.request("DELETE", "/api/jobs/H:nope:9")[0] == 404
        assert http_server.post_json("/api/functions/work/purge") == {"function": "work", "purged": 4}  # + cancelled
        assert parse_status(admin(http_server.address, "status"))["work"].total == 0
        assert jobs(http_server)["total"] == 0
        http_server.post_json("/api/functions/nope/purge", expect=404)


def test_maxqueue_through_the_api(http_server: HttpServer) -> None:
    http_server.request("POST", "/capped", b"1", BG)
    reply = http_server.post_json("/api/functions/capped/maxqueue", {"limit": 1})
    assert reply == {"function": "capped", "max_queue": {"high": 1, "normal": 1, "low": 1}}
    with GearmanSocket(http_server.address) as client:
        client.send(P.SUBMIT_JOB_BG, b"capped", b"", b"2")
        assert client.expect(P.ERROR).args[0] == b"QUEUE_ERROR"
    http_server.post_json("/api/functions/capped/maxqueue", {"high": 5}, expect=200)
    assert http_server.get_json("/api/functions/capped")["max_queue"] == {"high": 5, "normal": 0, "low": 0}  # type: ignore[index]
    http_server.post_json("/api/functions/capped/maxqueue", {"limit": "x"}, expect=400)
    http_server.post_json("/api/functions/nope/maxqueue", {"limit": 1}, expect=404)


def test_admin_json_commands_match_the_api(http_server: HttpServer) -> None:
    for n in range(2):
        http_server.request("POST", "/same", f"{n}".encode(), BG)
    with GearmanSocket(http_server.address) as worker:
        worker.send(P.CAN_DO, b"same")
        worker.sync()
        status = json.loads(admin(http_server.address, "status json"))
        api: dict[str, Any] = http_server.get_json("/api/functions")  # type: ignore[assignment]
        for listed in (status, api):
            [function] = listed["functions"]
            assert function.pop("oldest_queued") >= 0  # seconds: they differ between the two reads
        assert status == api
        assert json.loads(admin(http_server.address, "workers json")) == http_server.get_json("/api/workers")
        listing = json.loads(admin(http_server.address, "show jobs json"))
        assert sorted(j["handle"] for j in listing["jobs"]) == sorted(
            j["handle"]
            for j in jobs(http_server)["jobs"]  # type: ignore[union-attr]
        )
        assert listing_lines(admin(http_server.address, "status")) == ["same\t2\t0\t1"]


def test_event_stream_sends_live_updates(http_server: HttpServer) -> None:
    with socket.create_connection((HOST, http_server.http_port)) as sock:
        sock.settimeout(10)
        sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
        buffer = bytearray()

        def next_event() -> dict[str, Any]:
            """The next complete `update` event (headers and other events are skipped)."""
            while True:
                *complete, rest = bytes(buffer).split(b"\n\n")
                updates = [e for e in complete if b"event: update" in e]
                if updates:
                    buffer[:] = b"\n\n".join([*complete[complete.index(updates[0]) + 1 :], rest])
                    return json.loads(updates[0].split(b"data: ", 1)[1])  # type: ignore[no-any-return]
                data = sock.recv(65536)
                assert data, "the event stream closed"
                buffer.extend(data)

        first = next_event()
        assert first["server"]["ready"] is True
        http_server.request("POST", "/live", b"x", BG)
        update = wait_until(
            lambda: [f for f in next_event().get("functions", []) if f["name"] == "live"],
            message="an update listing the new function",
        )
        assert update[0]["queued"]["normal"] == 1
    history: dict[str, Any] = http_server.get_json("/api/history")  # type: ignore[assignment]
    assert history["interval"] > 0 and history["samples"]
    assert history["span"] >= 3600 and history["fine_span"] == 600  # an hour and more, finest for ten minutes


def test_pipelined_requests_are_answered_in_order_until_connection_close(http_server: HttpServer) -> None:
    with socket.create_connection((HOST, http_server.http_port)) as sock:
        sock.settimeout(10)
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /api/functions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            b"POST /never HTTP/1.1\r\nHost: x\r\nX-Gearman-Background: true\r\nContent-Length: 1\r\n\r\nz"
        )
        received = bytearray()
        while data := sock.recv(65536):  # the server closes after the second response
            received += data
    responses = bytes(received).split(b"HTTP/1.1 ")[1:]
    assert [r.split(b"\r\n", 1)[0] for r in responses] == [b"200 OK", b"200 OK"]
    assert responses[0].endswith(b"\r\n\r\nok\n") and b"Connection: close" in responses[1]
    assert "never" not in parse_status(admin(http_server.address, "status"))  # the third request was not run
