"""Workers that behave like real ones: CAN_DO, one GRAB_JOB in flight, NO_JOB -> PRE_SLEEP -> wait for NOOP.

Used by drain (stop at the first NO_JOB: the queue was filled beforehand, so an empty answer means every job has
been handed out, and since each WORK_COMPLETE travels with the next GRAB_JOB, the server has also taken every
completion before it answered) and by round-trip (echo the payload back until the deadline).
"""

from __future__ import annotations

import selectors
import time
from typing import Any

import geartrain.bench.packets as packets
from geartrain.bench.harness import Gate, spread
from geartrain.bench.measure import connect, own_cpu_seconds

GRAB_JOB = packets.request(packets.GRAB_JOB)
PRE_SLEEP = packets.request(packets.PRE_SLEEP)
RECV_SIZE = 1 << 16


class WorkerConnection:
    __slots__ = ("completed", "echo", "finished", "limit", "reader", "sock")

    def __init__(self, host: str, port: int, function: bytes, echo: bool, limit: int | None = None) -> None:
        self.sock = connect((host, port))
        self.reader = packets.FrameReader()
        self.completed = 0
        self.finished = False
        self.echo = echo
        self.limit = limit  # drain only this many: the next JOB_ASSIGN (sent once the last result was taken) ends it
        self.sock.sendall(packets.request(packets.CAN_DO, function))

    def handle(self, stop_on_no_job: bool) -> None:
        data = self.sock.recv(RECV_SIZE)
        if not data:
            raise ConnectionError("server closed a worker connection")
        out: list[bytes] = []
        for packet_type, body in self.reader.feed(data):
            if packet_type == packets.JOB_ASSIGN:
                if self.completed == self.limit:
                    self.finished = True  # the job stays assigned; the server is thrown away after the run
                    continue
                handle, _, rest = body.partition(b"\x00")
                result = rest.partition(b"\x00")[2] if self.echo else b""
                out.append(packets.request(packets.WORK_COMPLETE, handle, result))
                out.append(GRAB_JOB)
                self.completed += 1
            elif packet_type == packets.NO_JOB:
                if stop_on_no_job:
                    self.finished = True
                else:
                    out.append(PRE_SLEEP)
            elif packet_type == packets.NOOP:
                out.append(GRAB_JOB)
            elif packet_type == packets.ERROR:
                raise ConnectionError(f"server answered a worker with ERROR {body!r}")
        if out:
            self.sock.sendall(b"".join(out))


def worker_task(params: dict[str, Any], gate: Gate) -> dict[str, Any]:
    """Harness task: ``workers`` worker connections for ``function``.

    ``mode`` "drain": grab until NO_JOB, report when the last one finished. "echo": complete each job with its
    own payload until ``stop_after`` seconds past the start.
    """
    drain = params["mode"] == "drain"
    conns = [
        WorkerConnection(
            params["host"], params["port"], params["function"].encode(), echo=not drain, limit=params.get("limit")
        )
        for _ in range(params["workers"])
    ]
    selector = selectors.DefaultSelector()
    for conn in conns:
        selector.register(conn.sock, selectors.EVENT_READ, conn)
    start = gate()
    while time.perf_counter() < start:
        pass
    cpu_before = own_cpu_seconds()
    for conn in conns:
        conn.sock.sendall(GRAB_JOB)
    stop_at = start + params.get("stop_after", params.get("max_time", 600.0))
    end = start
    active = len(conns)
    while active and time.perf_counter() < stop_at:
        for key, _ in selector.select(0.2):
            conn = key.data
            conn.handle(stop_on_no_job=drain)
            if conn.finished:
                selector.unregister(conn.sock)
                active -= 1
                end = time.perf_counter()
    cpu = own_cpu_seconds() - cpu_before
    if drain and active:
        raise TimeoutError(f"drain not finished in time: {sum(c.completed for c in conns)} jobs completed")
    selector.close()
    for conn in conns:
        conn.sock.close()
    return {"completed": sum(c.completed for c in conns), "end": end, "cpu_s": cpu}


def worker_tasks(
    host: str,
    port: int,
    *,
    workers: int,
    processes: int,
    function: str,
    mode: str,
    stop_after: float,
    limit: int | None = None,
) -> list[tuple[Any, dict[str, Any]]]:
    """Harness tasks for ``workers`` worker connections spread over ``processes`` processes (``limit``: jobs each
    worker drains before it stops; default all)."""
    params = {"host": host, "port": port, "function": function, "mode": mode, "stop_after": stop_after, "limit": limit}
    return spread(worker_task, workers, processes, "workers", params)
