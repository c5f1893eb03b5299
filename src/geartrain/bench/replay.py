"""Replay time: how long a server takes from process start until it answers with a large stored queue loaded.

The queue is written straight into gearmand's ``libsqlite3`` table layout (which geartrain's SQLite store reads
too), with the standard library's sqlite3, so the same file can be handed to either server.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

GEARMAND_TABLE = (
    "CREATE TABLE IF NOT EXISTS gearman_queue (unique_key TEXT, function_name TEXT, priority INTEGER, "
    "data BLOB, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name))"
)
REPLAY_FUNCTION = "replay"


def build_queue(path: Path, jobs: int, payload_size: int = 100, function: str = REPLAY_FUNCTION) -> None:
    """A SQLite queue of ``jobs`` background jobs for ``function``, distinct uniques, mixed priorities."""
    payload = b"x" * payload_size
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA synchronous=OFF")
        db.execute(GEARMAND_TABLE)
        rows = ((f"{function}-{n}", function, n % 3, payload, 0) for n in range(jobs))
        with db:
            db.executemany(
                "INSERT INTO gearman_queue (unique_key, function_name, priority, data, when_to_run) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
    finally:
        db.close()


def admin_status(host: str, port: int, timeout: float = 60.0) -> bytes:
    """The text-protocol ``status`` listing (up to its closing ``.`` line)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"status\n")
        data = b""
        while not (data == b".\n" or data.endswith(b"\n.\n")):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def queued_jobs(status: bytes, function: str = REPLAY_FUNCTION) -> int:
    """The ``total`` column of ``function`` in a ``status`` listing (0 when absent)."""
    for line in status.decode(errors="replace").splitlines():
        fields = line.split("\t")
        if len(fields) == 4 and fields[0] == function:
            return int(fields[1])
    return 0


def time_until_ready(
    command: Sequence[str], host: str, port: int, jobs: int, timeout: float = 600.0, function: str = REPLAY_FUNCTION
) -> tuple[float, subprocess.Popen[bytes]]:
    """Start ``command`` and return the seconds until its ``status`` shows all ``jobs``, and the process (the
    caller stops it). Both servers load their queue before answering, but polling the count also covers one
    that would load it in the background."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {process.returncode} while loading its queue")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{command[0]} did not show {jobs} queued jobs within {timeout:.0f} s")
            try:
                if queued_jobs(admin_status(host, port), function) >= jobs:
                    return time.perf_counter() - started, process
            except OSError:
                pass
            time.sleep(0.01)
    except BaseException:
        process.kill()
        process.wait()
        raise
