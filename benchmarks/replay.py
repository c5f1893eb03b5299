"""Replay time of a large stored queue: geartrain and the C gearmand start on the same SQLite table.

    .venv/bin/python benchmarks/replay.py --jobs 1000000

Builds a gearmand-format SQLite queue of N background jobs (100-byte payloads, distinct uniques), then for each
server measures the time from process start until it answers on its port with every job queued (gearmand reads
the queue before it listens; so does geartrain). The table is rebuilt before each run, since a server that drains
nothing still rewrites nothing, but a copy keeps the runs independent.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from geartrain.store.base import StoredJob
from geartrain.store.sqlite import SQLiteStore

GEARMAND = "/usr/sbin/gearmand"


def build_queue(path: Path, jobs: int) -> None:
    store = SQLiteStore(path, sync="off")
    store.open()
    payload = b"x" * 100
    batch = []
    for n in range(jobs):
        key = f"replay-{n}".encode()
        batch.append(StoredJob(key, b"replay", key, n % 3, payload))
        if len(batch) == 50_000:
            store.apply(batch, ())
            batch.clear()
    store.apply(batch, ())
    store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def admin(port: int, command: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=600) as sock:
        sock.sendall(command)
        data = b""
        while not data.endswith(b"\n.\n") and not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def time_start(command: list[str], port: int, jobs: int) -> float:
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {proc.returncode}")
            try:
                status = admin(port, b"status\n")
                break
            except OSError:
                time.sleep(0.01)
        elapsed = time.perf_counter() - started
        expected = f"replay\t{jobs}\t0\t0\n".encode()
        if expected not in status:
            raise RuntimeError(f"{command[0]}: unexpected status {status[:200]!r}")
        return elapsed
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.db"
        built = time.perf_counter()
        build_queue(source, args.jobs)
        print(f"built a queue of {args.jobs} jobs in {time.perf_counter() - built:.1f} s")
        servers = {
            "geartrain": lambda port, db: [
                sys.executable,
                "-m",
                "geartrain",
                "server",
                "--port",
                str(port),
                "--store",
                f"sqlite://{db}",
                "--log-file",
                "none",
            ],
        }
        if os.path.exists(GEARMAND):
            servers["gearmand"] = lambda port, db: [
                GEARMAND,
                "--port",
                str(port),
                "--listen",
                "127.0.0.1",
                "--log-file",
                "none",
                "-t",
                "1",
                "--config-file",
                "/dev/null",
                "-q",
                "libsqlite3",
                "--libsqlite3-db",
                str(db),
            ]
        for _ in range(args.repeat):
            for name, command in servers.items():
                db = Path(tmp) / f"{name}.db"
                shutil.copy(source, db)
                port = free_port()
                seconds = time_start(command(port, db), port, args.jobs)
                print(f"{name:10s} replayed {args.jobs} jobs and answered in {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
