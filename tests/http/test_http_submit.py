"""Job submission over HTTP (gearmand's HTTP plugin protocol), against a real server and raw Gearman workers."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from http_harness import HttpServer

from servers import HOST, GearmanSocket, PacketType, admin, listing_lines, parse_status, wait_until

P = PacketType


def worker_for(server: HttpServer, function: str) -> GearmanSocket:
    worker = GearmanSocket(server.address)
    worker.send(P.CAN_DO, function.encode())
    worker.sync()
    return worker


class Background:
    """Runs one HTTP request on a thread (the test plays the worker meanwhile)."""

    def __init__(self, call: Callable[[], tuple[int, object, bytes]]) -> None:
        self.result: tuple[int, object, bytes] | None = None
        self.thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self.thread.start()

    def _run(self, call: Callable[[], tuple[int, object, bytes]]) -> None:
        self.result = call()

    def join(self) -> tuple[int, object, bytes]:
        self.thread.join(10)
        assert self.result is not None, "the HTTP request did not finish"
        return self.result


def test_foreground_post_returns_the_result_with_gearman_headers(http_server: HttpServer) -> None:
    with worker_for(http_server, "reverse") as worker:
        request = Background(lambda: http_server.request("POST", "/reverse", b"hello", {"X-Gearman-Unique": "u1"}))
        handle, function, data = worker.grab().args
        assert (function, data) == (b"reverse", b"hello")
        worker.send(P.WORK_COMPLETE, handle, b"olleh")
        status, headers, body = request.join()
    assert status == 200 and body == b"olleh"
    assert headers["X-Gearman-Job-Handle"] == handle.decode()  # type: ignore[index]
    assert headers["X-Gearman-Command"] == "WORK_COMPLETE"  # type: ignore[index]
    assert headers["Content-Length"] == "5"  # type: ignore[index]


def test_background_returns_the_handle_and_priority_and_unique_apply(http_server: HttpServer) -> None:
    status, headers, body = http_server.request(
        "POST", "/thumbs", b"a.png", {"X-Gearman-Background": "true", "X-Gearman-Priority": "high"}
    )
    assert (status, body, headers["X-Gearman-Command"]) == (200, b"", "JOB_CREATED")
    handle = headers["X-Gearman-Job-Handle"]
    assert handle.startswith("H:")
    _, low, _ = http_server.request(
        "PUT", "/thumbs", b"b.png", {"X-Gearman-Background": "true", "X-Gearman-Priority": "low"}
    )
    assert listing_lines(admin(http_server.address, "prioritystatus")) == ["thumbs\t1\t0\t1\t0"]
    # Same unique: the same job (coalesced), whatever the body.
    same = [
        http_server.request("POST", "/thumbs", body, {"X-Gearman-Background": "true", "X-Gearman-Unique": "k"})[1]
        for body in (b"one", b"two")
    ]
    assert same[0]["X-Gearman-Job-Handle"] == same[1]["X-Gearman-Job-Handle"] != handle
    # No unique header: gearmand's default "-" coalesces equal bodies only.
    plain = [
        http_server.request("POST", "/thumbs", body, {"X-Gearman-Background": "true"})[1]["X-Gearman-Job-Handle"]
        for body in (b"x", b"x", b"y")
    ]
    assert plain[0] == plain[1] != plain[2]
    assert parse_status(admin(http_server.address, "status"))["thumbs"].total == 5
    with worker_for(http_server, "thumbs") as worker:
        assert worker.grab().args[0].decode() == handle  # the high-priority job first
        assert low["X-Gearman-Job-Handle"] != handle


def read_until(sock: socket.socket, buffer: bytearray, marker: bytes) -> None:
    while marker not in buffer:
        data = sock.recv(65536)
        assert data, f"connection closed before {marker!r}; got {bytes(buffer)!r}"
        buffer += data


def test_work_data_streams_as_chunks_before_the_job_ends(http_server: HttpServer) -> None:
    with worker_for(http_server, "stream") as worker, socket.create_connection((HOST, http_server.http_port)) as sock:
        sock.settimeout(10)
        sock.sendall(b"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        handle = worker.grab().args[0]
        received = bytearray()
        worker.send(P.WORK_DATA, handle, b"first part ")
        read_until(sock, received, b"first part \r\n")  # arrives while the job still runs
        head = bytes(received).split(b"\r\n\r\n")[0].decode()
        assert head.startswith("HTTP/1.1 200 OK")
        assert "Transfer-Encoding: chunked" in head and f"X-Gearman-Job-Handle: {handle.decode()}" in head
        worker.send(P.WORK_STATUS, handle, b"1", b"2")  # not part of the body
        worker.send(P.WORK_DATA, handle, b"second part ")
        read_until(sock, received, b"second part \r\n")
        worker.send(P.WORK_COMPLETE, handle, b"the end")
        read_until(sock, received, b"\r\n0\r\nX-Gearman-Command: WORK_COMPLETE\r\n\r\n")
    body = bytes(received).split(b"\r\n\r\n", 1)[1]
    assert (
        body
        == b"b\r\nfirst part \r\nc\r\nsecond part \r\n7\r\nthe end\r\n0\r\nX-Gearman-Command: WORK_COMPLETE\r\n\r\n"
    )


def test_http_10_gets_the_data_and_result_in_one_body(http_server: HttpServer) -> None:
    with worker_for(http_server, "stream") as worker, socket.create_connection((HOST, http_server.http_port)) as sock:
        sock.settimeout(10)
        sock.sendall(b"POST /stream HTTP/1.0\r\nContent-Length: 1\r\n\r\nz")
        handle = worker.grab().args[0]
        worker.send(P.WORK_DATA, handle, b"abc")
        worker.send(P.WORK_DATA, handle, b"def")
        worker.send(P.WORK_COMPLETE, handle, b"!")
        received = bytearray()
        while data := sock.recv(65536):  # HTTP/1.0 without keep-alive: the server closes after the response
            received += data
    head, body = bytes(received).split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.0 200 OK") and b"Content-Length: 7" in head
    assert b"X-Gearman-Command: WORK_COMPLETE" in head and body == b"abcdef!"


def test_fail_and_exception_are_told_in_x_gearman_command(http_server: HttpServer) -> None:
    with worker_for(http_server, "risky") as worker:
        request = Background(lambda: http_server.request("POST", "/risky", b"1", {"X-Gearman-Unique": ""}))
        worker.send(P.WORK_FAIL, worker.grab().args[0])
        status, headers, body = request.join()
        assert (status, headers["X-Gearman-Command"], body) == (200, "WORK_FAIL", b"")  # type: ignore[index]
        request = Background(lambda: http_server.request("POST", "/risky", b"2", {"X-Gearman-Unique": ""}))
        worker.send(P.WORK_EXCEPTION, worker.grab().args[0], b"ValueError: 2")
        status, headers, body = request.join()
        assert (status, headers["X-Gearman-Command"], body) == (  # type: ignore[index]
            200,
            "WORK_EXCEPTION",
            b"ValueError: 2",
        )


def test_errors(http_server: HttpServer) -> None:
    assert http_server.request("POST", "/submit/")[0] == 404
    assert http_server.request("DELETE", "/some_function")[0] == 405
    assert http_server.request("POST", "/f", b"x", {"X-Gearman-Priority": "urgent"})[0] == 400
    # maxqueue: the second background job is refused with 503 and the server's error code.
    bg = {"X-Gearman-Background": "true", "X-Gearman-Unique": ""}
    assert http_server.request("POST", "/limited", b"1", bg)[0] == 200
    assert admin(http_server.address, "maxqueue limited 1").startswith("OK")
    status, headers, body = http_server.request("POST", "/limited", b"2", bg)
    assert (status, headers["X-Gearman-Error"], headers["X-Gearman-Command"]) == (503, "QUEUE_ERROR", "ERROR")
    assert body == b"Job queue is full\n"
    # A function named like a reserved path is reached through /submit/NAME.
    status, headers, _ = http_server.request("POST", "/submit/metrics", b"m", bg)
    assert status == 200 and headers["X-Gearman-Command"] == "JOB_CREATED"
    assert "metrics\t1\t0\t0" in listing_lines(admin(http_server.address, "status"))
    # HEAD runs nothing (gearmand answers it with an empty handle).
    status, headers, body = http_server.request("HEAD", "/probe")
    assert (status, headers["X-Gearman-Job-Handle"], body) == (200, "", b"")
    assert "probe" not in parse_status(admin(http_server.address, "status"))
    with socket.create_connection((HOST, http_server.http_port)) as sock:
        sock.settimeout(10)
        sock.sendall(b"GET /x HTTP/2.0\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 505 ")


def test_keep_alive_serves_several_requests_on_one_connection(http_server: HttpServer) -> None:
    import http.client

    connection = http.client.HTTPConnection(HOST, http_server.http_port, timeout=10)
    handles = set()
    for n in range(3):
        connection.request("POST", "/kept", f"job {n}".encode(), {"X-Gearman-Background": "true"})
        response = connection.getresponse()
        assert response.status == 200 and response.getheader("Connection") == "keep-alive"
        response.read()
        handles.add(response.getheader("X-Gearman-Job-Handle"))
    connection.request("GET", "/healthz")
    assert connection.getresponse().read() == b"ok\n"
    connection.close()
    assert len(handles) == 3


def test_a_client_that_hangs_up_drops_its_foreground_job(http_server: HttpServer) -> None:
    """A foreground submit whose client gives up (``curl -m 3`` timing out) is dropped at once, not left queued
    for ever under a function nobody serves; a job another client still waits for stays."""

    def total(function: str) -> int | None:
        row = parse_status(admin(http_server.address, "status")).get(function)
        return None if row is None else row.total

    with socket.create_connection((HOST, http_server.http_port)) as sock:
        sock.sendall(b"POST /slow HTTP/1.1\r\nContent-Length: 1\r\n\r\nq")
        wait_until(lambda: total("slow") == 1, message="the job")
        sock.settimeout(0.2)  # the client's own time limit: nothing comes back, and it hangs up
        with contextlib.suppress(TimeoutError):
            sock.recv(1)
    wait_until(lambda: total("slow") == 0, message="the job to be dropped")
    assert http_server.get_json("/api/jobs")["jobs"] == []  # type: ignore[index]
    functions = http_server.get_json("/api/functions")["functions"]  # type: ignore[index]
    assert [(f["name"], f["total"], f["queued"]["normal"]) for f in functions] == [("slow", 0, 0)]

    # Two requests for the same workload share one job (unique "-"): it stays for the one still waiting.
    with socket.create_connection((HOST, http_server.http_port)) as leaving:
        leaving.sendall(b"POST /shared HTTP/1.1\r\nContent-Length: 1\r\n\r\nq")
        wait_until(lambda: total("shared") == 1, message="the shared job")
        waiting = Background(lambda: http_server.request("POST", "/shared", b"q"))
        wait_until(lambda: http_server.get_json("/api/jobs")["jobs"][0]["clients"] == 2)  # type: ignore[index]
    wait_until(lambda: http_server.get_json("/api/jobs")["jobs"][0]["clients"] == 1)  # type: ignore[index]
    assert total("shared") == 1
    with worker_for(http_server, "shared") as worker:
        handle = worker.grab().args[0]
        worker.send(P.WORK_COMPLETE, handle, b"done")
        status, _, body = waiting.join()
    assert (status, body) == (200, b"done")


def test_background_jobs_are_stored_before_the_answer_and_survive_a_restart(
    http_server_factory: Callable[..., HttpServer], tmp_path: Path
) -> None:
    database = tmp_path / "queue.db"
    server = http_server_factory("--store", f"sqlite:///{database}")
    status, headers, _ = server.request("POST", "/durable", b"keep me", {"X-Gearman-Background": "true"})
    assert status == 200 and headers["X-Gearman-Command"] == "JOB_CREATED"
    with sqlite3.connect(database) as db:  # the answer came after the commit
        rows = db.execute("SELECT data FROM gearman_queue WHERE function_name = 'durable'").fetchall()
    assert [bytes(row[0]) for row in rows] == [b"keep me"]
    server.stop()
    restarted = http_server_factory("--store", f"sqlite:///{database}")
    assert parse_status(admin(restarted.address, "status"))["durable"].total == 1
    with worker_for(restarted, "durable") as worker:
        assert worker.grab().args[2] == b"keep me"


def test_get_submits_an_empty_workload_and_engine_errors_become_400(http_server: HttpServer) -> None:
    with worker_for(http_server, "ping") as worker:
        request = Background(lambda: http_server.request("GET", "/ping?ignored=1"))
        handle, function, data = worker.grab().args
        assert (function, data) == (b"ping", b"")  # gearmand: GET has no workload; the query is not the name
        worker.send(P.WORK_COMPLETE, handle, b"pong")
        assert request.join()[2] == b"pong"
    status, headers, body = http_server.request("POST", "/ping", b"x", {"X-Gearman-Unique": "u" * 65})
    assert (status, headers["X-Gearman-Error"], body) == (400, "ARGUMENT_TOO_LARGE", b"Unique value too large\n")


def test_a_chunked_request_body_is_the_workload(http_server: HttpServer) -> None:
    import http.client

    def pieces() -> Iterator[bytes]:
        yield b"streamed "
        yield b"in "
        yield b"chunks"

    connection = http.client.HTTPConnection(HOST, http_server.http_port, timeout=10)
    with worker_for(http_server, "upload") as worker:
        connection.request("POST", "/upload", pieces(), encode_chunked=True)  # Transfer-Encoding: chunked
        handle, function, data = worker.grab().args
        assert (function, data) == (b"upload", b"streamed in chunks")
        worker.send(P.WORK_COMPLETE, handle, b"stored")
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"stored")
    # The body ended where the chunks did: the next request on the connection is read from there.
    connection.request("GET", "/healthz")
    assert connection.getresponse().read() == b"ok\n"
    connection.close()
    with socket.create_connection((HOST, http_server.http_port)) as sock:
        sock.settimeout(10)
        sock.sendall(b"POST /f HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 501 ")


def test_a_delayed_submit_runs_no_earlier_than_asked(http_server: HttpServer) -> None:
    import time

    submitted = time.time()
    status, headers, _ = http_server.request("POST", "/later", b"x", {"X-Gearman-Delay": "2s"})
    assert (status, headers["X-Gearman-Command"]) == (200, "JOB_CREATED")  # type: ignore[index]
    with worker_for(http_server, "later") as worker:
        worker.send(P.GRAB_JOB)
        assert worker.recv().type == P.NO_JOB  # not yet: a delayed job is a background epoch job
        worker.send(P.PRE_SLEEP)
        worker.expect(P.NOOP, timeout=10)
        assert time.time() >= int(submitted) + 2  # whole seconds, rounded up: never early
        handle, _, data = worker.grab().args
        assert data == b"x" and handle.decode() == headers["X-Gearman-Job-Handle"]  # type: ignore[index]
    from datetime import UTC, datetime

    at = datetime.fromtimestamp(int(time.time()) + 2, UTC).isoformat().replace("+00:00", "Z")
    status, headers, _ = http_server.request("POST", "/at", b"y", {"X-Gearman-At": at})
    assert (status, headers["X-Gearman-Command"]) == (200, "JOB_CREATED")  # type: ignore[index]
    with worker_for(http_server, "at") as worker:
        worker.send(P.GRAB_JOB)
        assert worker.recv().type == P.NO_JOB
        handle, _, data = worker.grab().args
        assert data == b"y" and time.time() >= datetime.fromisoformat(at).timestamp()
    for header, value in (("X-Gearman-Delay", "soon"), ("X-Gearman-At", "2026-12-24 18:00")):
        status, _, body = http_server.request("POST", "/later", b"x", {header: value})
        assert status == 400 and body.count(b"\n") == 1, body


def test_a_submits_trace_context_reaches_workers_that_ask_and_the_jobs_view(http_server: HttpServer) -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    headers = {"X-Gearman-Background": "true", "traceparent": parent, "tracestate": "congo=t61rcWkgMzE"}
    status, answered, _ = http_server.request("POST", "/traced", b"x", headers)
    assert status == 200
    handle = answered["X-Gearman-Job-Handle"]  # type: ignore[index]
    job = http_server.get_json(f"/api/jobs/{handle}")
    assert job["meta"] == {"traceparent": parent, "tracestate": "congo=t61rcWkgMzE"}  # type: ignore[index]
    # An invalid traceparent is ignored (W3C: start a new trace), the job is taken all the same.
    status, _, _ = http_server.request("POST", "/traced", b"y", {"X-Gearman-Background": "true", "traceparent": "x"})
    assert status == 200
    with worker_for(http_server, "traced") as worker:
        worker.send(P.OPTION_REQ, b"geartrain-meta")
        assert worker.expect(P.OPTION_RES).body == b"geartrain-meta"
        worker.send(P.GRAB_JOB_UNIQ)
        _, _, _, data = worker.expect(P.JOB_ASSIGN_UNIQ).args
        meta = f"attempt=1\ntraceparent={parent}\ntracestate=congo=t61rcWkgMzE".encode()
        assert data == b"%d:%sx" % (len(meta), meta)
        worker.send(P.GRAB_JOB_UNIQ)
        assert worker.expect(P.JOB_ASSIGN_UNIQ).args[3] == b"9:attempt=1y"
