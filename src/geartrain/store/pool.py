"""A batch writer's pool of connections (the SQL stores' writers).

Apart from :mod:`geartrain.store.wire` because it borrows through an async generator, which mypyc does not compile
(wire.py is compiled: setup.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

from geartrain.store.base import StoreUnavailable

C = TypeVar("C")


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
        conn = self.take_idle()
        if conn is None:
            conn = await self._connect()
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

    def take_idle(self) -> C | None:
        """An idle connection, now, without connecting (``None`` when none is idle); :meth:`give_back` it."""
        while self._idle:
            conn = self._idle.pop()
            if self._usable(conn):
                self._busy.append(conn)
                return conn
            self._close(conn)  # lost while idle (the server closed it)
        return None

    def give_back(self, conn: C, lost: bool = False) -> None:
        """The end of :meth:`take_idle`'s loan; a ``lost`` connection is closed, never lent again."""
        self._busy.remove(conn)
        if lost:
            self._close(conn)
        elif self._usable(conn):
            self._idle.append(conn)

    async def reset(self) -> None:
        self.close()
        self._idle.append(await self._connect())

    def close(self) -> None:
        for conn in [*self._idle, *self._busy]:
            self._close(conn)
        self._idle.clear()
        self._busy.clear()
