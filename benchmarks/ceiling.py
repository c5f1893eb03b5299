"""The cheapest Gearman job server one can write in Python on uvloop: a ceiling to measure against, not a server.

It keeps one FIFO of jobs per function and does what a round trip and a drain need, nothing else: SUBMIT_JOB and
SUBMIT_JOB_BG (JOB_CREATED), CAN_DO, GRAB_JOB / GRAB_JOB_UNIQ (JOB_ASSIGN / JOB_ASSIGN_UNIQ or NO_JOB), PRE_SLEEP
and the NOOP that wakes a sleeping worker, WORK_COMPLETE (passed to the job's client), ECHO_REQ, and the admin
``status`` line gbench asks once. No priorities, uniques, status, errors, limits or checks of any kind; a bad
packet is a crash. Output is written once per connection after each read, as geartrain's flush does.

With ``--jobs N`` it starts with N background jobs of 100 bytes for the function ``f``. With ``--redis URL`` each of
those is also a Redis key (written before the port opens), and a WORK_COMPLETE sends ``DEL`` for it: the worker's
next reply waits for Redis's answer, the promise geartrain and gearmand keep for a stored job. The DELs of one turn
of the loop go in one write (the workers that finish together share a round trip, as geartrain's group commit
does); with ``--blocking`` each DEL's answer is read at once in a blocking ``recv`` instead, as gearmand's thread
does, with no second turn of the loop per job.

Whatever geartrain spends per job beyond this is the price of being a job server; what this cannot reach, no
server written this way can. It runs interpreted, or compiled by mypyc from this same file as geartrain's hot path
is (``benchmarks/ceiling_compare.py --mypyc`` builds it; by hand: copy it to an empty directory, run ``mypyc
ceiling.py`` there, delete the copy, and start ``python -c "import ceiling; ceiling.main()" --port N`` from it).
``benchmarks/ceiling_compare.py`` runs it beside gearmand and geartrain on Redis; ``../shared/bench/compare.sh``
with ``-s 'ceiling=python benchmarks/ceiling.py --port {port}'`` on round trips and echo (docs/performance.md).

    python benchmarks/ceiling.py --port 4731                        # round trips, echo
    python benchmarks/ceiling.py --port 4731 --jobs 20000 --redis redis://127.0.0.1:6379/0 [--blocking]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import socket
import struct
from typing import Any
from urllib.parse import urlsplit

import uvloop

HEADER = struct.Struct(">4sII")
RES = b"\0RES"
CAN_DO, PRE_SLEEP, SUBMIT_JOB, GRAB_JOB, WORK_COMPLETE, ECHO_REQ = 1, 4, 7, 9, 13, 16
SUBMIT_JOB_BG, GRAB_JOB_UNIQ = 18, 30
NOOP, JOB_CREATED, NO_JOB, JOB_ASSIGN, ECHO_RES, JOB_ASSIGN_UNIQ = 6, 8, 10, 11, 17, 31
PAYLOAD = b"x" * 100


def packet(ptype: int, *args: bytes) -> bytes:
    body = b"\0".join(args)
    return HEADER.pack(RES, ptype, len(body)) + body


class Job:
    __slots__ = ("client", "data", "function", "handle", "key", "unique")

    def __init__(
        self, handle: bytes, function: bytes, unique: bytes, data: bytes, client: Connection | None, key: bytes | None
    ) -> None:
        self.handle, self.function, self.unique, self.data = handle, function, unique, data
        self.client, self.key = client, key


class Server:
    def __init__(self) -> None:
        self.queues: dict[bytes, collections.deque[Job]] = collections.defaultdict(collections.deque)
        self.sleepers: dict[bytes, set[Connection]] = collections.defaultdict(set)
        self.running: dict[bytes, Job] = {}
        self.count = 0
        self.dirty: list[Connection] = []
        self.store: Redis | BlockingRedis | None = None

    def handle(self) -> bytes:
        self.count += 1
        return b"H:c:%d" % self.count


class Redis(asyncio.Protocol):
    """One connection, DELs pipelined, one write per turn of the loop; each reply answers the oldest DEL."""

    def __init__(self, db: int) -> None:
        self.transport: Any = None
        self.waiting: collections.deque[Connection] = collections.deque()
        self.buffer = b""
        self.unsent: list[bytes] = []
        self.db = db
        self.unanswered_select = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.db:
            transport.write(select(self.db))
            self.unanswered_select = 1

    def delete(self, key: bytes, worker: Connection) -> None:
        if not self.unsent:
            asyncio.get_running_loop().call_soon(self._flush)
        self.unsent.append(b"*2\r\n$3\r\nDEL\r\n$%d\r\n%s\r\n" % (len(key), key))
        self.waiting.append(worker)

    def _flush(self) -> None:
        self.transport.write(b"".join(self.unsent))
        self.unsent.clear()

    def data_received(self, data: bytes) -> None:
        data = self.buffer + data
        replies = data.count(b"\r\n")  # every reply here is one line, ":1\r\n" (or SELECT's "+OK\r\n")
        self.buffer = data[data.rfind(b"\r\n") + 2 :]
        if self.unanswered_select and replies:
            self.unanswered_select, replies = 0, replies - 1
        for _ in range(replies):
            self.waiting.popleft().deleted()


class BlockingRedis:
    """The DEL's answer read at once: the loop waits in ``recv``."""

    def __init__(self, sock: socket.socket, db: int) -> None:
        self.sock = sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if db:
            sock.sendall(select(db))
            sock.recv(64)  # +OK

    def delete(self, key: bytes, worker: Connection) -> None:
        self.sock.sendall(b"*2\r\n$3\r\nDEL\r\n$%d\r\n%s\r\n" % (len(key), key))
        answer = self.sock.recv(64)
        while not answer.endswith(b"\r\n"):
            answer += self.sock.recv(64)
        worker.deleted()


class Connection(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: Any = None
        self.buffer = b""
        self.abilities: list[bytes] = []
        self.out: list[bytes] = []
        self.unacked = 0  # DELs sent for this worker's jobs and not answered: its output waits

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        for sleepers in self.server.sleepers.values():
            sleepers.discard(self)

    def send(self, data: bytes) -> None:
        if not self.out:
            self.server.dirty.append(self)
        self.out.append(data)

    def data_received(self, data: bytes) -> None:
        server = self.server
        data = self.buffer + data if self.buffer else data
        if not data.startswith(b"\0"):  # the admin "status" gbench asks once
            _, _, self.buffer = data.partition(b"\n")
            rows = b"".join(b"%s\t%d\t0\t1\n" % (name, len(jobs)) for name, jobs in server.queues.items())
            self.transport.write(rows + b".\n")
            return
        offset = 0
        while len(data) - offset >= 12:
            _, ptype, size = HEADER.unpack_from(data, offset)
            end = offset + 12 + size
            if end > len(data):
                break
            body = data[offset + 12 : end]
            offset = end
            if ptype == WORK_COMPLETE:
                handle, _, result = body.partition(b"\0")
                job = server.running.pop(handle)
                if job.client is not None:
                    job.client.send(packet(WORK_COMPLETE, handle, result))
                if job.key is not None and server.store is not None:
                    self.unacked += 1
                    server.store.delete(job.key, self)
            elif ptype in (GRAB_JOB, GRAB_JOB_UNIQ):
                self.send(self._next(ptype))
            elif ptype in (SUBMIT_JOB, SUBMIT_JOB_BG):
                function, unique, payload = body.split(b"\0", 2)
                handle = server.handle()
                client = self if ptype == SUBMIT_JOB else None
                server.queues[function].append(Job(handle, function, unique, payload, client, None))
                self.send(packet(JOB_CREATED, handle))
                sleepers = server.sleepers.get(function)
                if sleepers:
                    for worker in sleepers:
                        worker.send(packet(NOOP))
                    sleepers.clear()
            elif ptype == PRE_SLEEP:
                if any(server.queues.get(f) for f in self.abilities):
                    self.send(packet(NOOP))
                else:
                    for function in self.abilities:
                        server.sleepers[function].add(self)
            elif ptype == CAN_DO:
                self.abilities.append(body)
            elif ptype == ECHO_REQ:
                self.send(packet(ECHO_RES, body))
        self.buffer = data[offset:]
        for connection in server.dirty:
            if not connection.unacked:
                connection.transport.write(b"".join(connection.out))
                connection.out.clear()
        server.dirty.clear()

    def _next(self, ptype: int) -> bytes:
        server = self.server
        for function in self.abilities:
            queue = server.queues.get(function)
            if queue:
                job = queue.popleft()
                server.running[job.handle] = job
                if ptype == GRAB_JOB_UNIQ:
                    return packet(JOB_ASSIGN_UNIQ, job.handle, function, job.unique, job.data)
                return packet(JOB_ASSIGN, job.handle, function, job.data)
        return packet(NO_JOB)

    def deleted(self) -> None:
        self.unacked -= 1
        if not self.unacked and self.out:
            self.transport.write(b"".join(self.out))
            self.out.clear()


def select(db: int) -> bytes:
    return b"*2\r\n$6\r\nSELECT\r\n$%d\r\n%d\r\n" % (len(str(db)), db)


def redis_address(url: str) -> tuple[tuple[str, int], int]:
    """Host and port, and the database number, of a ``redis://host:port/db`` URL."""
    parts = urlsplit(url)
    return (parts.hostname or "127.0.0.1", parts.port or 6379), int(parts.path.strip("/") or 0)


def fill(url: str, jobs: list[Job]) -> None:
    """Each job's key in Redis, before the port opens (pipelined SETs)."""
    address, db = redis_address(url)
    with socket.create_connection(address) as sock:
        if db:
            sock.sendall(select(db))
            sock.recv(64)  # +OK
        for start in range(0, len(jobs), 1000):
            chunk = [job.key or b"" for job in jobs[start : start + 1000]]
            sock.sendall(b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$3\r\nabc\r\n" % (len(k), k) for k in chunk))
            answered = b""
            while answered.count(b"\r\n") < len(chunk):
                answered += sock.recv(1 << 16)


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    server = Server()
    prefix = args.prefix.encode()
    queued = [
        Job(server.handle(), b"f", b"f-%d" % n, PAYLOAD, None, prefix + b"f-%d" % n if args.redis else None)
        for n in range(args.jobs)
    ]
    server.queues[b"f"].extend(queued)
    if args.redis:
        fill(args.redis, queued)
        address, db = redis_address(args.redis)
        if args.blocking:
            server.store = BlockingRedis(socket.create_connection(address), db)
        else:
            _, server.store = await loop.create_connection(lambda: Redis(db), *address)
    listener = await loop.create_server(lambda: Connection(server), "127.0.0.1", args.port, backlog=4096)
    async with listener:
        await listener.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description="The cheapest Gearman job server in Python on uvloop: a ceiling.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--jobs", type=int, default=0, help="background jobs for the function f at the start")
    parser.add_argument("--redis", help="a Redis URL: each of those jobs is a key, DEL'd when it completes")
    parser.add_argument("--prefix", default="ceiling-", help="the Redis keys' prefix")
    parser.add_argument("--blocking", action="store_true", help="wait for each DEL's answer in a blocking recv")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args))


if __name__ == "__main__":
    main()
