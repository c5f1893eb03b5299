"""Foreground round trips (SUBMIT_JOB -> JOB_CREATED -> ... -> WORK_COMPLETE), closed loop, and idle connections.

Each client connection keeps ``depth`` jobs in flight: a new SUBMIT_JOB goes out as soon as one completes. The
latency of a job is from its SUBMIT_JOB send to its WORK_COMPLETE; only jobs completing inside the measurement
window (after a warm-up) count towards jobs/s and the percentiles.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import geartrain.bench.packets as packets
from geartrain.bench.harness import Gate, spread
from geartrain.bench.measure import connect, own_cpu_seconds

RECV_SIZE = 1 << 16


class ClientConnection:
    __slots__ = ("by_handle", "outstanding", "reader", "sent_at", "sock", "submit")

    def __init__(self, host: str, port: int, submit: bytes) -> None:
        self.sock = connect((host, port))
        self.reader = packets.FrameReader()
        self.sent_at: deque[float] = deque()  # SUBMIT_JOBs waiting for their JOB_CREATED, in order
        self.by_handle: dict[bytes, float] = {}
        self.submit = submit
        self.outstanding = 0

    def send(self, count: int) -> None:
        now = time.perf_counter()
        self.sent_at.extend([now] * count)
        self.outstanding += count
        self.sock.sendall(self.submit * count)


def client_task(params: dict[str, Any], gate: Gate) -> dict[str, Any]:
    """Harness task: ``clients`` connections with ``depth`` jobs each in flight, for ``warmup + duration`` s.

    With ``workers`` (> 0) the echo workers live in this process too, on the same selector: the whole load
    generator is then one process, as in the team's cross-check harness (``../shared/bench/gbench.py``), so its
    figures and ours come from the same layout.
    """
    from geartrain.bench.workers import GRAB_JOB, WorkerConnection  # workers.py imports nothing from here

    payload = b"x" * params["payload_size"]
    function = params["function"].encode()
    submit = packets.request(packets.SUBMIT_JOB, function, b"", payload)
    workers = [
        WorkerConnection(params["host"], params["port"], function, echo=True) for _ in range(params.get("workers", 0))
    ]
    conns = [ClientConnection(params["host"], params["port"], submit) for _ in range(params["clients"])]
    endpoints: list[tuple[socket.socket, WorkerConnection | ClientConnection]] = [
        *((worker.sock, worker) for worker in workers),
        *((conn.sock, conn) for conn in conns),
    ]
    sockets = [sock for sock, _ in endpoints]
    selector = selectors.DefaultSelector()
    for sock, endpoint in endpoints:
        selector.register(sock, selectors.EVENT_READ, endpoint)
    start = gate()
    while time.perf_counter() < start:
        pass
    window_start = start + params["warmup"]
    window_end = window_start + params["duration"]
    give_up = window_end + params.get("grace", 10.0)
    latencies: list[float] = []
    cpu_before = own_cpu_seconds()
    for worker in workers:
        worker.sock.sendall(GRAB_JOB)
    for conn in conns:
        conn.send(params["depth"])
    outstanding = sum(conn.outstanding for conn in conns)
    submitted = outstanding
    finished = 0
    while outstanding:
        now = time.perf_counter()
        if now > give_up:
            raise TimeoutError(f"{outstanding} foreground jobs still unanswered {params['grace']} s after the window")
        for key, _ in selector.select(0.2):
            conn = key.data
            if type(conn) is not ClientConnection:
                conn.handle(stop_on_no_job=False)
                continue
            done = _receive(conn, latencies, window_start, window_end)
            outstanding -= done
            finished += done
            if conn.outstanding < params["depth"] and time.perf_counter() < window_end:
                missing = params["depth"] - conn.outstanding
                conn.send(missing)
                outstanding += missing
                submitted += missing
    cpu = own_cpu_seconds() - cpu_before
    selector.close()
    for sock in sockets:
        sock.close()
    completed = sum(worker.completed for worker in workers)
    return {"latencies": latencies, "submitted": submitted, "answered": finished, "cpu_s": cpu} | (
        {"completed": completed} if workers else {}
    )


def _receive(conn: ClientConnection, latencies: list[float], window_start: float, window_end: float) -> int:
    """Handle what arrived on ``conn``; returns how many of its jobs finished."""
    data = conn.sock.recv(RECV_SIZE)
    if not data:
        raise ConnectionError("server closed a client connection")
    finished = 0
    for packet_type, body in conn.reader.feed(data):
        if packet_type == packets.JOB_CREATED:
            conn.by_handle[body] = conn.sent_at.popleft()
        elif packet_type in (packets.WORK_COMPLETE, packets.WORK_FAIL):
            handle = body.partition(b"\x00")[0]
            sent = conn.by_handle.pop(handle)
            now = time.perf_counter()
            if packet_type == packets.WORK_FAIL:
                raise ConnectionError("a benchmark job failed (WORK_FAIL)")
            if window_start <= now <= window_end:
                latencies.append(now - sent)
            finished += 1
        elif packet_type == packets.ERROR:
            raise ConnectionError(f"server answered a client with ERROR {body!r}")
    conn.outstanding -= finished
    return finished


def client_tasks(
    host: str,
    port: int,
    *,
    clients: int,
    depth: int,
    processes: int,
    function: str,
    payload_size: int,
    warmup: float,
    duration: float,
    workers: int = 0,
) -> list[tuple[Any, dict[str, Any]]]:
    """Client tasks over ``processes`` processes; ``workers`` echo workers join the first one."""
    params = {
        "host": host,
        "port": port,
        "function": function,
        "payload_size": payload_size,
        "depth": depth,
        "warmup": warmup,
        "duration": duration,
        "workers": 0,
    }
    tasks = spread(client_task, clients, processes, "clients", params)
    tasks[0][1]["workers"] = workers
    return tasks


def idle_task(params: dict[str, Any], gate: Gate) -> dict[str, Any]:
    """Harness task: open ``connections`` connections, each proven alive by one ECHO_REQ, and hold them."""
    address = (params["host"], params["port"])
    echo = packets.request(packets.ECHO_REQ, b"idle")
    reply = packets.response_header(packets.ECHO_RES, 4) + b"idle"
    socks: list[socket.socket] = []
    # Opened in batches no larger than gearmand's default listen backlog (32), each batch's echoes awaited
    # together: a batch can then never overflow the accept queue. Batches of 200 did, now and then: a dropped SYN
    # costs a second or more before the kernel retries it, and opening 5,000 connections took 95 to 115 s, at
    # times more than the harness's 120 s limit.
    batch = params.get("batch", 32)
    for first in range(0, params["connections"], batch):
        opened = [connect(address, timeout=30) for _ in range(min(batch, params["connections"] - first))]
        for sock in opened:
            sock.sendall(echo)
        for sock in opened:
            if _read_exactly(sock, len(reply)) != reply:
                raise ConnectionError("an idle connection got a wrong ECHO_RES")
        socks.extend(opened)
    start = gate()
    cpu_before = own_cpu_seconds()
    time.sleep(max(0.0, start + params["hold"] - time.perf_counter()))
    alive = sum(1 for sock in socks if _still_open(sock))
    for sock in socks:
        sock.close()
    return {"held": alive, "cpu_s": own_cpu_seconds() - cpu_before}


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("server closed the connection")
        data += chunk
    return data


def _still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True  # nothing to read and not closed
    except OSError:
        return False


def echo_latencies(
    host: str,
    port: int,
    *,
    duration: float,
    warmup: float,
    payload_size: int,
    count: int | None = None,
    on_record: Callable[[], None] | None = None,
) -> tuple[list[float], float]:
    """ECHO_REQ ping-pong on one connection: each round trip's seconds, and this process's CPU time.

    Pings for ``warmup`` seconds unrecorded, then records for ``duration`` seconds (or ``count`` round trips, if
    that comes first), as the cross-check harness does: a fixed count after a few pings measured the server's
    first second, which on a busy 2-core machine was not its steady state. ``on_record`` is called when the
    recorded part starts (the caller's server CPU meter).
    """
    payload = b"x" * payload_size
    ping = packets.request(packets.ECHO_REQ, payload)
    pong = packets.response_header(packets.ECHO_RES, len(payload)) + payload
    size = len(pong)
    clock = time.perf_counter
    with connect((host, port)) as sock:
        sendall = sock.sendall
        warm_until = clock() + warmup
        while True:
            sendall(ping)
            if _read_exactly(sock, size) != pong:
                raise ConnectionError("wrong ECHO_RES")
            if clock() >= warm_until:
                break
        latencies: list[float] = []
        record = latencies.append
        limit = count if count is not None else -1
        if on_record is not None:
            on_record()
        cpu_before = own_cpu_seconds()
        stop_at = clock() + duration
        while limit != len(latencies):
            sent = clock()
            sendall(ping)
            if _read_exactly(sock, size) != pong:
                raise ConnectionError("wrong ECHO_RES")
            done = clock()
            record(done - sent)
            if done >= stop_at:
                break
        return latencies, own_cpu_seconds() - cpu_before
