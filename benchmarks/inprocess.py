"""The server's Python path alone: a real GearmanServer and GearmanConnections on fake transports, no sockets.

Times ``data_received`` for one workload (best of ``--repeat`` passes) and prints nanoseconds per operation:

    round-trip  64 clients each with one job; per operation a worker's WORK_COMPLETE + GRAB_JOB (one read), then
                the client whose job ended submits again (one read)
    echo        one ECHO_REQ per read
    bg-submit   SUBMIT_JOB_BG, 64 per read

The fake transport's methods are C builtins (a ``deque(maxlen=0).append``, ``bool``, ``int``), so it costs about
what uvloop's does and the figure is the server's own code (compiled by mypyc or interpreted, and the codec
accelerator, when built). Nothing here is the kernel's share, which is most of a live round trip: see
docs/performance.md. On a noisy machine, count instructions instead of
timing: the difference between two runs under callgrind is the cost of the operations in between, start-up cancels:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python benchmarks/inprocess.py echo \\
        --rounds 2000 --repeat 1                  # then --rounds 12000; (refs2 - refs1) / 10000 per operation
"""

from __future__ import annotations

import argparse
import collections
import gc
import struct
import time
from collections.abc import Callable
from typing import Any

from geartrain.server.config import ServerConfig
from geartrain.server.connection import GearmanConnection
from geartrain.server.server import GearmanServer

CAN_DO, SUBMIT_JOB, GRAB_JOB, WORK_COMPLETE, ECHO_REQ, SUBMIT_JOB_BG = 1, 7, 9, 13, 16, 18
PAYLOAD = b"x" * 100


class FakeTransport:
    """Enough of an asyncio transport for GearmanConnection; the hot methods are replaced by C builtins."""

    def __init__(self) -> None:
        # Returns None like a real write (compiled code checks the declared return type), and keeps nothing.
        self.write: Callable[[bytes], Any] = collections.deque(maxlen=0).append
        self.is_closing: Callable[[], bool] = bool
        self.get_write_buffer_size: Callable[[], int] = int

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return None  # no socket, no peer name: the connection treats it as a local stream

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass

    abort = close


def request(ptype: int, *args: bytes) -> bytes:
    body = b"\0".join(args)
    return b"\0REQ" + struct.pack(">II", ptype, len(body)) + body


def connect(server: GearmanServer) -> GearmanConnection:
    connection = GearmanConnection(server)
    connection.connection_made(FakeTransport())  # type: ignore[arg-type]
    return connection


def round_trip(rounds: int) -> float:
    server = GearmanServer(ServerConfig())
    worker = connect(server)
    worker.data_received(request(CAN_DO, b"f"))
    clients = {}
    submit = request(SUBMIT_JOB, b"f", b"", PAYLOAD)
    for _ in range(64):
        client = connect(server)
        client.data_received(submit)
        clients[client._peer] = client  # the benchmark finds the client of each finished job by its peer
    worker.data_received(request(GRAB_JOB))
    assigned = worker._peer.assigned  # type: ignore[union-attr]
    started = time.perf_counter()
    for _ in range(rounds):
        handle, job = next(iter(assigned.items()))
        client = clients[job.clients[0]]
        worker.data_received(request(WORK_COMPLETE, handle, PAYLOAD) + request(GRAB_JOB))
        client.data_received(submit)
    return (time.perf_counter() - started) / rounds


def echo(rounds: int) -> float:
    connection = connect(GearmanServer(ServerConfig()))
    ping = request(ECHO_REQ, PAYLOAD)
    feed = connection.data_received
    started = time.perf_counter()
    for _ in range(rounds):
        feed(ping)
    return (time.perf_counter() - started) / rounds


def bg_submit(rounds: int) -> float:
    server = GearmanServer(ServerConfig())
    connection = connect(server)
    reads = max(1, rounds // 64)
    blob = request(SUBMIT_JOB_BG, b"f", b"", PAYLOAD) * 64
    feed = connection.data_received
    started = time.perf_counter()
    for _ in range(reads):
        feed(blob)
    return (time.perf_counter() - started) / (reads * 64)


WORKLOADS = {"round-trip": round_trip, "echo": echo, "bg-submit": bg_submit}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("--rounds", type=int, default=200_000, help="operations per pass")
    parser.add_argument("--repeat", type=int, default=5, help="passes; the best is printed")
    args = parser.parse_args(argv)
    gc.disable()  # the server's collector policy is not installed in process: keep collections out of the timing
    best = min(WORKLOADS[args.workload](args.rounds) for _ in range(args.repeat))
    print(f"{args.workload}: {best * 1e9:.0f} ns per operation")


if __name__ == "__main__":
    main()
