"""A small Redis client on the event loop: RESP2 commands pipelined on one connection, replies in order.

Only what the Redis store's batch writer and a cluster node need: commands, scripts (EVALSHA) and a subscription.
redis-py spends about 100 µs of Python per command on this machine, as long as the round trip itself; here a batch
costs one write and one parse of its replies.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Sequence
from typing import Any, Union

from geartrain.errors import GearmanError
from geartrain.store.base import ConnectionLost, StoreError
from geartrain.store.wire import Answered, OrderedReplies, open_protocol

hiredis: Any
try:  # the redis extra installs it: replies parsed in C (a claim of 32 jobs: 1.2 ms of Python, 40 µs here)
    import hiredis
except ImportError:  # pragma: no cover - the pure parser below does the same, slower
    hiredis = None


class RespError(StoreError):
    """An error reply (``-ERR ...``); inside EXEC's array it stands for the command that failed."""


Arg = bytes | int
Reply = Union[bytes, int, None, list["Reply"], RespError]  # noqa: UP007  (a recursive alias needs the string)


def encode_command(args: Sequence[Arg]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        value = arg if isinstance(arg, bytes) else b"%d" % arg
        parts.append(b"$%d\r\n%s\r\n" % (len(value), value))
    return b"".join(parts)


class IncompleteReply(GearmanError):
    """The buffer ends inside a reply: wait for more bytes."""


def parse_reply(buffer: bytes | bytearray, position: int) -> tuple[Reply, int]:
    """One reply starting at ``position``, and where the next one starts; raises IncompleteReply."""
    end = buffer.find(b"\r\n", position)
    if end < 0:
        raise IncompleteReply
    kind, line = buffer[position : position + 1], bytes(buffer[position + 1 : end])
    position = end + 2
    if kind == b"+":
        return line, position
    if kind == b"-":
        return RespError(line.decode("utf-8", "replace")), position
    if kind == b":":
        return int(line), position
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, position
        if len(buffer) < position + size + 2:
            raise IncompleteReply
        return bytes(buffer[position : position + size]), position + size + 2
    if kind == b"*":
        count = int(line)
        if count < 0:
            return None, position
        items: list[Reply] = []
        for _ in range(count):
            item, position = parse_reply(buffer, position)
            items.append(item)
        return items, position
    raise ValueError(f"not a RESP reply: {kind + line!r}")


class RespConnection(OrderedReplies[list[Reply]]):
    """One connection; :meth:`call` sends commands together and resolves to their replies."""

    def __init__(self, timeout: float, fast: bool = True) -> None:
        super().__init__(timeout)
        self._reader = hiredis.Reader(replyError=RespError) if hiredis is not None and fast else None
        self._buffer = bytearray()
        self._replies: list[Reply] = []  # of the oldest call, so far
        self._counts: deque[int] = deque()  # replies each call in flight expects

    @classmethod
    async def connect(cls, host: str, port: int, connect_timeout: float, timeout: float) -> RespConnection:
        return await open_protocol(lambda: cls(timeout), host, port, connect_timeout)

    def call(self, *commands: Sequence[Arg]) -> asyncio.Future[list[Reply]]:
        """Send ``commands`` in one write; a future of their replies in order (error replies as RespError values)."""
        future = self.send(b"".join([encode_command(command) for command in commands]))
        if not future.done():
            self._counts.append(len(commands))
        return future

    def send_commands_then(self, data: bytes, count: int, answered: Answered[list[Reply]]) -> bool:
        """Send ``count`` commands already encoded; ``answered(their replies or an error)``, called where the last
        reply is read (see :meth:`OrderedReplies.send_then`). ``False`` when the connection is lost."""
        if not self.send_then(data, answered):
            return False
        self._counts.append(count)
        return True

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        if reader is not None:  # the common case, spelt out: a drain reads one reply per job
            reader.feed(data)
            try:
                while self._counts:
                    reply = reader.gets()
                    if reply is False:
                        return
                    self._replies.append(reply)
                    if len(self._replies) == self._counts[0]:
                        self._counts.popleft()
                        replies, self._replies = self._replies, []
                        self.answer(replies)
            except hiredis.ProtocolError as exc:  # garbage: nothing on this connection can be trusted any more
                self.fail(ConnectionLost(str(exc)))
            return
        buffer = self._buffer
        buffer += data
        position = 0
        try:
            while self._counts and position < len(buffer):
                reply, position = parse_reply(buffer, position)
                self._replies.append(reply)
                if len(self._replies) == self._counts[0]:
                    self._counts.popleft()
                    replies, self._replies = self._replies, []
                    self.answer(replies)
        except IncompleteReply:
            pass
        except ValueError as exc:  # garbage: nothing on this connection can be trusted any more
            self.fail(ConnectionLost(str(exc)))
            return
        del buffer[:position]

    def fail(self, error: Exception) -> None:
        self._counts.clear()
        super().fail(error)


class Script:
    """A Lua script run by its digest (EVALSHA), sent whole (EVAL) only when the server does not know it yet."""

    def __init__(self, text: str) -> None:
        self.text = text.encode()
        self.sha = hashlib.sha1(self.text).hexdigest().encode()

    async def run(self, conn: RespConnection, args: Sequence[Arg]) -> Reply:
        """The script's reply; StoreError when it fails (RespError is one)."""
        (reply,) = await conn.call([b"EVALSHA", self.sha, 0, *args])
        if isinstance(reply, RespError) and str(reply).startswith("NOSCRIPT"):
            (reply,) = await conn.call([b"EVAL", self.text, 0, *args])
        if isinstance(reply, RespError):
            raise reply
        return reply


async def connect(
    host: str, port: int, password: str | None, db: int, connect_timeout: float, timeout: float
) -> RespConnection:
    """A connection, authenticated and on database ``db``; ConnectionLost (StoreUnavailable) when that fails."""
    setup: list[list[Arg]] = []
    if password is not None:
        setup.append([b"AUTH", password.encode()])
    if db:
        setup.append([b"SELECT", db])
    conn = await RespConnection.connect(host, port, connect_timeout, timeout)
    try:
        replies = await conn.call(*setup) if setup else []
    except BaseException:
        conn.close()
        raise
    for reply in replies:
        if isinstance(reply, RespError):
            conn.close()
            raise ConnectionLost(str(reply))
    return conn
