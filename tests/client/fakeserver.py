"""Fake Gearman servers for the library tests: a scripted one (each test says what it reads and answers) and a tiny
broker that passes jobs from clients to workers with the geartrain-meta option.

Both frame packets with their own few lines of struct code, not with geartrain's codec, and the broker reads and
writes meta blocks by hand: the tests check the library against the wire format, not against itself.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

HEADER = struct.Struct(">4sII")
CAN_DO, PRE_SLEEP, NOOP, SUBMIT_JOB, JOB_CREATED, NO_JOB = 1, 4, 6, 7, 8, 10
WORK_STATUS, WORK_COMPLETE, WORK_FAIL = 12, 13, 14
ECHO_REQ, ECHO_RES, ERROR, STATUS_RES, OPTION_REQ, OPTION_RES, WORK_DATA = 16, 17, 19, 20, 26, 27, 28
SET_CLIENT_ID, CAN_DO_TIMEOUT, GRAB_JOB_ALL, JOB_ASSIGN_UNIQ, JOB_ASSIGN_ALL = 22, 23, 39, 31, 40
JOB_ASSIGN, SUBMIT_JOB_BG, SUBMIT_JOB_HIGH, SUBMIT_REDUCE_JOB, SUBMIT_JOB_EPOCH = 11, 18, 21, 37, 36
WORK_EXCEPTION, SUBMIT_JOB_HIGH_BG = 25, 32
META = b"geartrain-meta"
# What gearmand answers to an option it does not know.
UNKNOWN_OPTION = (b"UNKNOWN_OPTION", b"Server does not recognize given option")
# How many arguments a request's body splits into (the last one may hold NULs).
ARGS = {SUBMIT_JOB: 3, SUBMIT_JOB_BG: 3, SUBMIT_JOB_HIGH: 3, SUBMIT_JOB_HIGH_BG: 3, SUBMIT_JOB_EPOCH: 4}
ARGS[SUBMIT_REDUCE_JOB] = 5
ARGS |= {WORK_COMPLETE: 2, WORK_FAIL: 1, WORK_EXCEPTION: 2, WORK_DATA: 2, WORK_STATUS: 3}


def res(ptype: int, *args: bytes) -> bytes:
    body = b"\0".join(args)
    return HEADER.pack(b"\0RES", ptype, len(body)) + body


def req(ptype: int, *args: bytes) -> bytes:
    body = b"\0".join(args)
    return HEADER.pack(b"\0REQ", ptype, len(body)) + body


def block(meta: bytes, payload: bytes) -> bytes:
    """A meta block, written out by hand."""
    return str(len(meta)).encode() + b":" + meta + payload


def unblock(data: bytes) -> tuple[bytes, bytes]:
    """``(meta, payload)`` of data that starts with a meta block (read by hand)."""
    size, colon, rest = data.partition(b":")
    assert colon and size.isdigit(), data
    return rest[: int(size)], rest[int(size) :]


class Peer:
    """The fake server's side of one connection: read requests, write replies.

    ``meta``: answer OPTION_REQ geartrain-meta with OPTION_RES (else with ERROR, as gearmand does). ``raw``: every
    request read so far, byte for byte.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, meta: bool = False) -> None:
        self.reader, self.writer = reader, writer
        self.meta = meta
        self.raw: list[bytes] = []

    async def request(self) -> tuple[int, list[bytes]]:
        header = await self.reader.readexactly(HEADER.size)
        magic, ptype, size = HEADER.unpack(header)
        assert magic == b"\0REQ"
        body = await self.reader.readexactly(size)
        self.raw.append(header + body)
        return ptype, body.split(b"\0", ARGS.get(ptype, 0) - 1)  # -1: split at every NUL

    async def expect(self, wanted: int) -> list[bytes]:
        """The next request other than OPTION_REQ (options are answered on the way), which must be ``wanted``."""
        ptype, args = await self.request()
        while ptype == OPTION_REQ:
            self.answer_option(args[0])
            ptype, args = await self.request()
        assert ptype == wanted, (ptype, args)
        return args

    def answer_option(self, name: bytes) -> None:
        if name == META and not self.meta:
            self.send(res(ERROR, *UNKNOWN_OPTION))
        else:
            self.send(res(OPTION_RES, name))

    def send(self, *packets: bytes) -> None:
        self.writer.write(b"".join(packets))


Script = Callable[[Peer], Awaitable[None]]


@asynccontextmanager
async def fake_server(script: Script, meta: bool = False) -> AsyncIterator[str]:
    """Serve each connection with ``script``; yields the server's ``host:port``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await script(Peer(reader, writer, meta))
            await writer.drain()
            await reader.read()  # keep the connection until the client closes it
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


class Broker:
    """Foreground and background jobs of any function from clients to workers, on one queue, with the
    geartrain-meta option when ``meta`` (else refused as gearmand refuses it).

    ``submitted`` holds ``(meta, payload)`` of each submit (``meta`` is ``None`` for a submit without a block);
    ``attempt`` is what the next JOB_ASSIGN says.
    """

    def __init__(self, meta: bool = True) -> None:
        self.meta = meta
        self.attempt = 1
        self.submitted: list[tuple[bytes | None, bytes]] = []
        self.options: list[bytes] = []
        self._queue: deque[tuple[bytes, bytes, bytes, bytes]] = deque()  # handle, function, meta, payload
        self._owners: dict[bytes, Peer] = {}
        self._sleeping: set[Peer] = set()
        self._count = 0

    async def serve(self, peer: Peer) -> None:
        meta = False
        while True:
            ptype, args = await peer.request()
            if ptype == OPTION_REQ:
                self.options.append(args[0])
                peer.answer_option(args[0])
                meta = meta or (args[0] == META and self.meta)
            elif ptype in (SUBMIT_JOB, SUBMIT_JOB_BG):
                self._submit(peer, meta, ptype == SUBMIT_JOB, *args)
            elif ptype == GRAB_JOB_ALL:
                self._grab(peer, meta)
            elif ptype == PRE_SLEEP:
                if self._queue:  # a job came between its NO_JOB and this: wake it now, as a real server does
                    peer.send(res(NOOP))
                else:
                    self._sleeping.add(peer)
            elif ptype in (WORK_COMPLETE, WORK_FAIL, WORK_EXCEPTION):
                owner = self._owners.pop(args[0], None)
                if owner is not None:
                    owner.send(res(ptype, *args))

    def _submit(self, peer: Peer, meta: bool, foreground: bool, function: bytes, unique: bytes, data: bytes) -> None:
        fields, payload = unblock(data) if meta else (None, data)
        self.submitted.append((fields, payload))
        self._count += 1
        handle = b"H:fake:%d" % self._count
        if foreground:
            self._owners[handle] = peer
        self._queue.append((handle, function, fields or b"", payload))
        peer.send(res(JOB_CREATED, handle))
        for worker in self._sleeping:
            worker.send(res(NOOP))
        self._sleeping.clear()

    def _grab(self, peer: Peer, meta: bool) -> None:
        if not self._queue:
            peer.send(res(NO_JOB))
            return
        handle, function, fields, payload = self._queue.popleft()
        if meta:
            head = b"attempt=%d" % self.attempt
            payload = block(head + b"\n" + fields if fields else head, payload)
        peer.send(res(JOB_ASSIGN_ALL, handle, function, b"", b"", payload))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        async with fake_server(self.serve, self.meta) as address:
            yield address
