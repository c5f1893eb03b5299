"""A small Redis client on the event loop: RESP2 commands pipelined on one connection, replies in order.

Only what the Redis store's batch writer needs (AUTH, SELECT, INCRBY, MULTI/DEL/HSET/EXEC). redis-py spends about
100 µs of Python per command on this machine, as long as the round trip itself; here a batch costs one write and
one parse of its replies.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Union, cast


class RespError(Exception):
    """An error reply (``-ERR ...``); inside EXEC's array it stands for the command that failed."""


Arg = bytes | int
Reply = Union[bytes, int, None, list["Reply"], RespError]  # noqa: UP007  (a recursive alias needs the string)


class RespConnectionLost(ConnectionError):
    """The connection closed, timed out, or sent something that is not RESP."""


def encode_command(args: Sequence[Arg]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        value = arg if isinstance(arg, bytes) else b"%d" % arg
        parts.append(b"$%d\r\n%s\r\n" % (len(value), value))
    return b"".join(parts)


class _Incomplete(Exception):
    """The buffer ends inside a reply: wait for more bytes."""


def parse_reply(buffer: bytes | bytearray, position: int) -> tuple[Reply, int]:
    """One reply starting at ``position``, and where the next one starts; raises _Incomplete."""
    end = buffer.find(b"\r\n", position)
    if end < 0:
        raise _Incomplete
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
            raise _Incomplete
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
    raise ValueError(f"not a RESP reply: {bytes(buffer[position - len(line) - 3 : end])!r}")


class RespConnection(asyncio.Protocol):
    """One connection; :meth:`call` sends commands together and returns their replies."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._replies: list[Reply] = []
        self._waiting: deque[tuple[int, asyncio.Future[list[Reply]]]] = deque()  # (replies expected, future)
        self._lost: Exception | None = None

    @classmethod
    async def connect(cls, host: str, port: int, connect_timeout: float, timeout: float) -> RespConnection:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(lambda: cls(timeout), host, port), connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            raise RespConnectionLost(f"cannot connect to {host}:{port}: {exc or 'timed out'}") from exc
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RespConnectionLost(f"connection lost: {exc}" if exc else "connection closed by the server"))

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        position = 0
        try:
            while self._waiting and position < len(buffer):
                reply, position = parse_reply(buffer, position)
                self._replies.append(reply)
                expected, future = self._waiting[0]
                if len(self._replies) == expected:
                    self._waiting.popleft()
                    replies, self._replies = self._replies, []
                    if not future.done():
                        future.set_result(replies)
        except _Incomplete:
            pass
        except ValueError as exc:  # garbage: nothing on this connection can be trusted any more
            self._fail(RespConnectionLost(str(exc)))
            return
        del buffer[:position]

    async def call(self, *commands: Sequence[Arg]) -> list[Reply]:
        """Send ``commands`` in one write; their replies in order (error replies as RespError values)."""
        if self._lost is not None or self._transport is None:
            raise RespConnectionLost(str(self._lost or "not connected"))
        future: asyncio.Future[list[Reply]] = asyncio.get_running_loop().create_future()
        self._waiting.append((len(commands), future))
        self._transport.write(b"".join(encode_command(command) for command in commands))
        timer = asyncio.get_running_loop().call_later(self._timeout, self._timed_out, future)
        try:
            return await future
        finally:
            timer.cancel()

    def _timed_out(self, future: asyncio.Future[list[Reply]]) -> None:
        if not future.done():
            self._fail(RespConnectionLost(f"no reply within {self._timeout:.0f} s"))

    def _fail(self, error: Exception) -> None:
        """Every waiting call fails; the connection is dropped (later replies could not be matched)."""
        if self._lost is None:
            self._lost = error
        waiting, self._waiting = self._waiting, deque()
        for _, future in waiting:
            if not future.done():
                future.set_exception(error)
        self.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
