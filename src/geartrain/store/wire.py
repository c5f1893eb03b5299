"""The part of a database connection on the event loop that every wire protocol shares: requests answered in order.

A subclass encodes requests and parses replies (:mod:`geartrain.store.resp` for Redis, :mod:`.mysql_wire` for
MySQL); this class keeps the futures of requests in flight, in the order they were sent, fails them all when the
connection is lost or a reply is overdue, and then drops the connection: a reply that came later could no longer be
matched to its request.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar, cast

from geartrain.store.base import StoreUnavailable

R = TypeVar("R")
P = TypeVar("P", bound=asyncio.BaseProtocol)
C = TypeVar("C")


class ConnectionLost(StoreUnavailable, ConnectionError):
    """The connection closed, timed out, or sent something its protocol does not allow."""


class OrderedReplies(asyncio.Protocol, Generic[R]):
    """Futures of requests in flight, answered first in, first out, with one timer for all of them."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self._waiting: deque[tuple[asyncio.Future[R], float]] = deque()  # (future, when sent)
        self._watchdog: asyncio.TimerHandle | None = None
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionLost(f"connection lost: {exc}" if exc else "connection closed by the server"))

    def send(self, data: bytes) -> asyncio.Future[R]:
        """Write one request; the future of its reply."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        if self.lost is not None or self.transport is None:
            future.set_exception(ConnectionLost(str(self.lost or "not connected")))
            return future
        self._waiting.append((future, loop.time()))
        self.transport.write(data)
        if self._watchdog is None:  # one timer for every request: a timer per request costs more than the rest
            self._watchdog = loop.call_later(self.timeout, self._check_overdue)
        return future

    @property
    def waiting(self) -> bool:
        return bool(self._waiting)

    def answer(self, reply: R | BaseException) -> None:
        """The oldest request's reply (an exception: its error); a reply nobody asked for drops the connection."""
        if not self._waiting:
            self.fail(ConnectionLost(f"a reply to no request: {reply!r}"))
            return
        future, _ = self._waiting.popleft()
        if future.done():
            return
        if isinstance(reply, BaseException):
            future.set_exception(reply)
        else:
            future.set_result(reply)

    def _check_overdue(self) -> None:
        self._watchdog = None
        if not self._waiting:
            return
        loop = asyncio.get_running_loop()
        left = self._waiting[0][1] + self.timeout - loop.time()
        if left <= 0:
            self.fail(ConnectionLost(f"no reply within {self.timeout:.0f} s"))
        else:
            self._watchdog = loop.call_later(left, self._check_overdue)

    def fail(self, error: Exception) -> None:
        """Every request in flight fails with ``error``, and the connection is closed."""
        if self.lost is None:
            self.lost = error
        waiting, self._waiting = self._waiting, deque()
        for future, _ in waiting:
            if not future.done():
                future.set_exception(error)
        self.close()

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self.transport is not None:
            self.transport.close()


async def open_protocol(
    factory: Callable[[], P], host: str, port: int, connect_timeout: float, *, sock: socket.socket | None = None
) -> P:
    """Connect (or adopt ``sock``, already connected) and return the protocol ``factory`` made."""
    loop = asyncio.get_running_loop()
    try:
        if sock is not None:
            _, protocol = await loop.create_connection(factory, sock=sock)
        else:
            _, protocol = await asyncio.wait_for(loop.create_connection(factory, host, port), connect_timeout)
    except (OSError, TimeoutError) as exc:
        raise ConnectionLost(f"cannot connect to {host}:{port}: {exc or 'timed out'}") from exc
    return protocol


class ConnectionPool(Generic[C]):
    """A batch writer's connections: each batch borrows an idle one, or a new one when none is idle (the server
    runs at most the writer's ``concurrency`` batches at once, so that bounds the pool). A connection whose batch
    raised StoreUnavailable is closed, never lent again; :meth:`reset` closes them all and connects one."""

    def __init__(
        self, connect: Callable[[], Awaitable[C]], close: Callable[[C], None], usable: Callable[[C], bool]
    ) -> None:
        self._connect, self._close, self._usable = connect, close, usable
        self._idle: list[C] = []
        self._busy: list[C] = []

    @contextlib.asynccontextmanager
    async def borrow(self) -> AsyncIterator[C]:
        conn = self._idle.pop() if self._idle else await self._connect()
        self._busy.append(conn)
        try:
            yield conn
        except StoreUnavailable:
            self._close(conn)  # lost: the next batch connects afresh
            raise
        finally:
            self._busy.remove(conn)
        if self._usable(conn):
            self._idle.append(conn)

    async def reset(self) -> None:
        self.close()
        self._idle.append(await self._connect())

    def close(self) -> None:
        for conn in [*self._idle, *self._busy]:
            self._close(conn)
        self._idle.clear()
        self._busy.clear()
