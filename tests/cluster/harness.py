"""Real node processes of a cluster on the real PostgreSQL or Redis, raw-socket workers and submitters, a ledger of
which job ran how often, and a look into the cluster's queue."""

from __future__ import annotations

import collections
import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from databases import postgres_raw, redis_raw
from geartrain.protocol.packets import PacketType as P
from servers import GearmanSocket, admin_raw, encode_req, free_port, wait_until

FUNCTION = b"cluster"
WINDOW = 200  # submits in flight per submitter


@dataclass(frozen=True)
class Queue:
    """A cluster's queue as the tests look into it: a PostgreSQL table or a Redis key prefix."""

    kind: str  # "postgres" or "redis"
    url: str
    name: str  # the table, or the key prefix

    @property
    def port(self) -> int:
        return 5432 if self.kind == "postgres" else 6379

    def count(self, function: bytes | None = None) -> int:
        """Jobs stored (of ``function``, or all)."""
        if self.kind == "postgres":
            where, params = ("function_name = %s", (function.decode(),)) if function else ("true", ())
            with postgres_raw() as conn:
                return int(conn.execute(f'SELECT count(*) FROM "{self.name}" WHERE {where}', params).fetchone()[0])
        pattern = f"{self.name}-{function.decode()}-*" if function else f"{self.name}-*"
        raw = redis_raw()
        try:
            return sum(1 for _ in raw.scan_iter(match=pattern, count=1000))
        finally:
            raw.close()

    def attempts(self, function: bytes, unique: bytes) -> int:
        """The failed attempts stored with a job (0 when none are, or the job is gone)."""
        if self.kind == "postgres":
            with postgres_raw() as conn:
                query = f'SELECT attempts FROM "{self.name}" WHERE function_name = %s AND unique_key = %s'
                row = conn.execute(query, (function.decode(), unique.decode())).fetchone()
                return int(row[0]) if row else 0
        raw = redis_raw()
        try:
            stored = raw.hget(f"gt:{self.name}-{function.decode()}-{unique.decode()}", "attempts")
            return int(stored or 0)
        finally:
            raw.close()

    def held_by(self, node: str) -> int:
        """Jobs the node ``node`` holds (claimed or kept for its own workers)."""
        if self.kind == "postgres":
            with postgres_raw() as conn:
                query = f'SELECT count(*) FROM "{self.name}" WHERE owner = %s'
                return int(conn.execute(query, (node,)).fetchone()[0])
        raw = redis_raw()
        try:
            return int(raw.scard(f"gt:{self.name}:owned:{node}"))
        finally:
            raw.close()


class Node:
    """``geartrain server --cluster`` on free ports (Gearman and HTTP); ``start`` again after ``kill9``."""

    def __init__(self, url: str, name: str, workdir: Path, lease: float, *flags: str) -> None:
        self.url, self.name, self.lease, self.flags = url, name, lease, flags
        self.host = "127.0.0.1"
        self.port, self.http_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Node:
        command = [sys.executable, "-m", "geartrain", "server", "--port", str(self.port), "--store", self.url]
        command += ["--cluster", "--lease", str(self.lease), "--node-id", self.name, "--http-port", str(self.http_port)]
        command += ["--verbose", "WARNING", *self.flags]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        wait_until(self._ready, timeout=60, message=f"node {self.name} start")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"node {self.name} exited: {self.log_path.read_text()}")
        try:
            return admin_raw(self.address, "version", timeout=1).startswith(b"OK") and self.api("cluster") is not None
        except OSError:
            return False

    def api(self, path: str) -> dict[str, object] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/api/{path}", timeout=5) as response:
                data: dict[str, object] = json.load(response)
                return data
        except OSError:
            return None

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill9()


@dataclass
class Ledger:
    acknowledged: set[bytes] = field(default_factory=set)
    runs: collections.Counter[bytes] = field(default_factory=collections.Counter)
    ran_at: dict[bytes, float] = field(default_factory=dict)  # first run of each job (monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def total_runs(self) -> int:
        with self.lock:
            return sum(self.runs.values())

    def done(self, uniques: Iterable[bytes]) -> bool:
        with self.lock:
            return all(self.runs[u] for u in uniques)


def submit(address: str, uniques: list[bytes], ledger: Ledger) -> None:
    """Background submits, ``WINDOW`` in flight; each JOB_CREATED goes to the ledger."""
    try:
        with GearmanSocket(address, timeout=60) as client:
            in_flight: collections.deque[bytes] = collections.deque()
            for unique in uniques:
                client.send(P.SUBMIT_JOB_BG, FUNCTION, unique, unique)
                in_flight.append(unique)
                while len(in_flight) >= WINDOW:
                    client.expect(P.JOB_CREATED)
                    with ledger.lock:
                        ledger.acknowledged.add(in_flight.popleft())
            while in_flight:
                client.expect(P.JOB_CREATED)
                with ledger.lock:
                    ledger.acknowledged.add(in_flight.popleft())
    except (OSError, AssertionError):
        return  # its node was killed


def work(address: str, ledger: Ledger, stop: threading.Event) -> None:
    """A worker as libgearman runs one: GRAB_JOB_UNIQ until NO_JOB, then PRE_SLEEP until a NOOP."""
    try:
        with GearmanSocket(address, timeout=60) as worker:
            worker.send(P.CAN_DO, FUNCTION)
            pending = b""
            while not stop.is_set():
                worker.sock.sendall(pending + encode_req(P.GRAB_JOB_UNIQ))
                pending = b""
                reply = worker.recv()
                if reply.type == P.NO_JOB:
                    worker.send(P.PRE_SLEEP)
                    with contextlib.suppress(TimeoutError):
                        worker.expect(P.NOOP, timeout=0.5)
                    continue
                if reply.type != P.JOB_ASSIGN_UNIQ:
                    continue
                handle, _, unique, _ = reply.body.split(b"\0", 3)
                with ledger.lock:
                    ledger.runs[unique] += 1
                    ledger.ran_at.setdefault(unique, time.monotonic())
                pending = encode_req(P.WORK_COMPLETE, handle, b"")
    except (OSError, AssertionError):
        return  # its node was killed


class Workers:
    """Worker threads on several nodes."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def add(self, address: str, count: int = 1) -> None:
        for _ in range(count):
            thread = threading.Thread(target=work, args=(address, self.ledger, self.stop), daemon=True)
            thread.start()
            self.threads.append(thread)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)
