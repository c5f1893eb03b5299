"""The part of a database connection on the event loop that every wire protocol shares: requests answered in order.

A subclass encodes requests and parses replies (:mod:`geartrain.store.resp` for Redis, :mod:`.mysql_wire` for
MySQL); this class keeps the futures of requests in flight, in the order they were sent, fails them all when the
connection is lost or a reply is overdue, and then drops the connection: a reply that came later could no longer be
matched to its request.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeAlias, TypeVar, cast

from geartrain.store.base import ConnectionLost

R = TypeVar("R")
P = TypeVar("P", bound=asyncio.BaseProtocol)
C = TypeVar("C")


Answered: TypeAlias = Callable[[R | BaseException], None]


class OrderedReplies(asyncio.Protocol, Generic[R]):
    """Requests in flight, answered first in, first out, with one timer for all of them.

    A request is waited for as a future (:meth:`send`) or answered by a callback (:meth:`send_then`). The callback
    runs inside :meth:`data_received`: the reply is acted on in the loop turn that read it, where a future's waiter
    would resume a turn later (a drain with one worker pays that turn for every job).
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        # (future or callback, when sent)
        self._waiting: deque[tuple[asyncio.Future[R] | Answered[R], float]] = deque()
        self._watchdog: asyncio.TimerHandle | None = None
        self.lost: Exception | None = None
        # Kept from connection_made for send_then (once per finished job): asyncio.get_running_loop() makes a
        # getpid system call each time.
        self._loop: asyncio.AbstractEventLoop | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        self._loop = asyncio.get_running_loop()

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
        self._write(loop, data)
        return future

    def send_then(self, data: bytes, answered: Answered[R]) -> bool:
        """Write one request; ``answered(reply or error)`` when its reply comes or the connection fails. ``False``
        (nothing written, nothing called) when the connection is already lost."""
        loop = self._loop
        if self.lost is not None or self.transport is None or loop is None:
            return False
        self._waiting.append((answered, loop.time()))
        self.transport.write(data)
        if self._watchdog is None:
            self._watchdog = loop.call_later(self.timeout, self._check_overdue)
        return True

    def _write(self, loop: asyncio.AbstractEventLoop, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)
        if self._watchdog is None:  # one timer for every request: a timer per request costs more than the rest
            self._watchdog = loop.call_later(self.timeout, self._check_overdue)

    @property
    def waiting(self) -> bool:
        return bool(self._waiting)

    def answer(self, reply: R | BaseException) -> None:
        """The oldest request's reply (an exception: its error); a reply nobody asked for drops the connection."""
        if not self._waiting:
            self.fail(ConnectionLost(f"a reply to no request: {reply!r}"))
            return
        waiter, _ = self._waiting.popleft()
        if not isinstance(waiter, asyncio.Future):
            waiter(reply)
        elif waiter.done():
            return
        elif isinstance(reply, BaseException):
            waiter.set_exception(reply)
        else:
            waiter.set_result(reply)

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
        self.close()
        for waiter, _ in waiting:
            if not isinstance(waiter, asyncio.Future):
                waiter(error)
            elif not waiter.done():
                waiter.set_exception(error)

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
