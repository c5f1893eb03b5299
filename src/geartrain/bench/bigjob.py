"""One large job end to end: a client's SUBMIT_JOB of ``size`` bytes, a worker returning it as WORK_COMPLETE.

The figures are the wall time from the first byte of the submit to the last byte of the result, and the server's
peak memory (VmHWM in /proc/<pid>/status, which covers the whole life of the process: the server is meant to be
started afresh for the measurement). Client and worker are processes of their own with plain blocking sockets;
frames are read straight into a preallocated buffer, so the generator's copies stay small beside the server's.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import geartrain.bench.packets as packets
from geartrain.bench.harness import Gate, run_tasks
from geartrain.bench.measure import connect, own_cpu_seconds
from geartrain.bench.workloads import Result, Target, _function, _Meter


def status_bytes(pid: int, field: str) -> int | None:
    """A ``kB`` field of /proc/<pid>/status (``VmRSS``, ``VmHWM``) in bytes, or None where it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def read_frame(sock: socket.socket) -> tuple[int, memoryview]:
    """The next response frame, its body read into one buffer of the right size."""
    header = _read_into(sock, packets.HEADER_SIZE)
    magic, packet_type, size = packets.HEADER.unpack(header)
    if magic != packets.RES:
        raise ConnectionError(f"not a Gearman response: {bytes(header)!r}")
    return packet_type, _read_into(sock, size)


def _read_into(sock: socket.socket, size: int) -> memoryview:
    buffer = memoryview(bytearray(size))
    done = 0
    while done < size:
        got = sock.recv_into(buffer[done:], min(size - done, 1 << 20))
        if not got:
            raise ConnectionError("server closed the connection")
        done += got
    return buffer


def worker_task(params: dict[str, Any], gate: Gate) -> dict[str, Any]:
    """Harness task: take one job of ``function`` and return its data as the result (``echo``), or ``ok``."""
    with connect((params["host"], params["port"]), timeout=300) as sock:
        sock.sendall(packets.request(packets.CAN_DO, params["function"].encode()))
        gate()
        cpu_before = own_cpu_seconds()
        sock.sendall(packets.request(packets.GRAB_JOB))
        while True:
            packet_type, body = read_frame(sock)
            if packet_type == packets.JOB_ASSIGN:
                break
            if packet_type == packets.NO_JOB:
                sock.sendall(packets.request(packets.PRE_SLEEP))
            elif packet_type == packets.NOOP:
                sock.sendall(packets.request(packets.GRAB_JOB))
            else:
                raise ConnectionError(f"worker got packet type {packet_type}")
        handle_end = bytes(body[:256]).index(b"\x00")
        function_end = bytes(body[handle_end + 1 : handle_end + 258]).index(b"\x00") + handle_end + 1
        handle, data = body[:handle_end], body[function_end + 1 :]
        received = len(data)
        if not params["echo"]:
            data = memoryview(b"ok")
        head = packets.HEADER.pack(packets.REQ, packets.WORK_COMPLETE, len(handle) + 1 + len(data))
        sock.sendall(head + bytes(handle) + b"\x00")
        sock.sendall(data)
        del body, data
        # Wait for the server to close or the client to be done: closing at once could cut the result short.
        params["stop_event"].wait(300)
        return {"received": received, "cpu_s": own_cpu_seconds() - cpu_before}


def client_task(params: dict[str, Any], gate: Gate) -> dict[str, Any]:
    """Harness task: submit one job of ``size`` bytes and wait for its WORK_COMPLETE."""
    function = params["function"].encode()
    size = params["size"]
    with connect((params["host"], params["port"]), timeout=300) as sock:
        head = packets.HEADER.pack(packets.REQ, packets.SUBMIT_JOB, len(function) + 2 + size) + function + b"\x00\x00"
        data = b"x" * size
        start = gate()
        cpu_before = own_cpu_seconds()
        sock.sendall(head)
        sock.sendall(data)
        del data
        created, result = 0, 0
        while not result:
            packet_type, body = read_frame(sock)
            if packet_type == packets.JOB_CREATED:
                created += 1
            elif packet_type == packets.WORK_COMPLETE:
                result = len(body) - bytes(body[:256]).index(b"\x00") - 1
            else:
                raise ConnectionError(f"client got packet type {packet_type}")
        seconds = time.perf_counter() - start
        params["stop_event"].set()
        return {"seconds": seconds, "created": created, "result": result, "cpu_s": own_cpu_seconds() - cpu_before}


def big_job(target: Target, *, size: int = 100 * 2**20, echo: bool = True) -> Result:
    """One job of ``size`` bytes through the server and back (``echo``: a result of the same size, else ``ok``);
    needs the server's pid for its memory."""
    if target.pid is None:
        raise ValueError("the big-job workload reads the server's memory from /proc: give the server's pid")
    params = {"host": target.host, "port": target.port, "function": _function("big-job"), "size": size, "echo": echo}
    rss_before = status_bytes(target.pid, "VmRSS") or 0
    meter = _Meter(target)
    _, (worker, client) = run_tasks([(worker_task, params), (client_task, params)], on_start=meter.begin)
    if worker["received"] != size or client["result"] != (size if echo else 2):
        raise ConnectionError(f"sent {size} bytes, the worker got {worker['received']}, the result {client['result']}")
    hwm = status_bytes(target.pid, "VmHWM") or 0
    return Result(
        workload="big-job",
        variant=f"one {size / 2**20:g} MiB job" + ("" if echo else ", result ok"),
        server=target.name,
        metrics={"seconds": client["seconds"], "hwm_mib": hwm / 2**20, "rss_before_mib": rss_before / 2**20},
        counts={"size": size},
        elapsed_s=client["seconds"],
        cpu_jobs=1,
        server_cpu_s=meter.cpu(),
        generator_cpu_s=worker["cpu_s"] + client["cpu_s"],
        params={"size": size},
    )
