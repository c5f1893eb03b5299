"""Readings the benchmarks take: process CPU time and RSS from /proc, latency percentiles, sockets."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as a tuple; the port defaults to Gearman's 4730."""
    host, sep, port = address.rpartition(":")
    if not sep or "]" in port:
        return address.strip("[]"), 4730
    return host.strip("[]") or "127.0.0.1", int(port)


def connect(address: tuple[str, int], timeout: float = 10.0) -> socket.socket:
    """A connected, blocking TCP socket with Nagle off (every benchmark sends small packets)."""
    sock = socket.create_connection(address, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` from /proc (None where it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid`` (VmRSS in /proc/<pid>/status), or None where it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def own_cpu_seconds() -> float:
    """CPU time of the calling process (all its threads)."""
    return time.process_time()


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of an ascending list; NaN for an empty one."""
    if not sorted_values:
        return float("nan")
    rank = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


class ServerMeter:
    """The server's CPU time between two readings, when its pid is known (None otherwise)."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.start = process_cpu_seconds(pid) if pid else None

    def elapsed_cpu(self) -> float | None:
        if self.pid is None or self.start is None:
            return None
        now = process_cpu_seconds(self.pid)
        return None if now is None else now - self.start
