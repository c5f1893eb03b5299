"""What a worker function receives: the job's fields, and (for functions running in this process) the means to
send WORK_DATA, WORK_WARNING and WORK_STATUS while it runs.

* :class:`WorkerJob` goes to ``async def`` functions: ``await job.send_data(...)``.
* :class:`ThreadJob` goes to plain functions run in the thread pool (or inline): ``job.send_data(...)`` without
  ``await``, safe from any thread.
* :class:`JobData` goes to functions run in the process pool: the fields only (it must be picklable).

A function's return value (``bytes``, ``str`` or ``None``) becomes WORK_COMPLETE; raising
:class:`~geartrain.errors.JobFailed` sends WORK_FAIL, and any other exception WORK_EXCEPTION (or WORK_FAIL when the
worker does not send exceptions).
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

from geartrain.protocol.codec import encode_request
from geartrain.protocol.packets import PacketType

if TYPE_CHECKING:
    from geartrain.worker.connection import WorkerConnection

P = PacketType
Payload = bytes | bytearray | memoryview | str


def _payload(data: Payload) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


class JobData:
    """The fields of an assigned job: ``handle``, ``function``, ``unique`` (``""`` if none), ``data`` (the
    workload) and ``reducer`` (set for jobs submitted with SUBMIT_REDUCE_JOB).

    Where the server has the geartrain-meta option (the worker's ``meta``), ``attempt`` counts the job's runs (1
    for the first; a job retried or taken back from a worker that left counts up) and ``meta`` holds the fields
    its client sent (its ``meta=`` and its trace context); elsewhere ``attempt`` is 1 and ``meta`` empty.
    """

    __slots__ = ("attempt", "data", "function", "handle", "meta", "reducer", "unique")

    def __init__(
        self,
        handle: str,
        function: str,
        unique: str,
        data: bytes,
        reducer: str | None = None,
        attempt: int = 1,
        meta: dict[str, str] | None = None,
    ) -> None:
        self.handle = handle
        self.function = function
        self.unique = unique
        self.data = data
        self.reducer = reducer
        self.attempt = attempt
        self.meta: dict[str, str] = {} if meta is None else meta

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.function!r} handle={self.handle!r} unique={self.unique!r}>"

    def __reduce__(self) -> tuple[type[JobData], tuple[Any, ...]]:
        # Subclasses hold a connection: only the plain fields travel to a process pool.
        return JobData, (self.handle, self.function, self.unique, self.data, self.reducer, self.attempt, self.meta)


class _Sender(JobData):
    __slots__ = ("_connection", "_raw_handle")

    def __init__(
        self,
        connection: WorkerConnection,
        raw_handle: bytes,
        function: str,
        unique: str,
        data: bytes,
        reducer: str | None,
        *,
        attempt: int = 1,
        meta: dict[str, str] | None = None,
    ) -> None:
        super().__init__(raw_handle.decode("latin-1"), function, unique, data, reducer, attempt, meta)
        self._connection = connection
        self._raw_handle = raw_handle

    def _packet(self, ptype: int, *args: bytes) -> bytes:
        return encode_request(ptype, self._raw_handle, *args)


class WorkerJob(_Sender):
    """The job as an ``async def`` worker function sees it."""

    __slots__ = ()

    async def send_data(self, data: Payload) -> None:
        """WORK_DATA: send a chunk of partial result to the waiting clients."""
        self._connection.send(self._packet(P.WORK_DATA, _payload(data)))
        await self._connection.drain()

    async def send_warning(self, data: Payload) -> None:
        """WORK_WARNING: send a warning to the waiting clients."""
        self._connection.send(self._packet(P.WORK_WARNING, _payload(data)))
        await self._connection.drain()

    async def send_status(self, numerator: int, denominator: int) -> None:
        """WORK_STATUS: report progress (also answers clients' GET_STATUS)."""
        self._connection.send(self._packet(P.WORK_STATUS, str(numerator).encode(), str(denominator).encode()))
        await self._connection.drain()


class ThreadJob(_Sender):
    """The job as a plain (blocking) worker function sees it; its methods may be called from any thread."""

    __slots__ = ("_loop", "_loop_thread")

    def __init__(
        self,
        connection: WorkerConnection,
        raw_handle: bytes,
        function: str,
        unique: str,
        data: bytes,
        reducer: str | None,
        loop: asyncio.AbstractEventLoop,
        *,
        attempt: int = 1,
        meta: dict[str, str] | None = None,
    ) -> None:
        super().__init__(connection, raw_handle, function, unique, data, reducer, attempt=attempt, meta=meta)
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def _send(self, packet: bytes) -> None:
        if threading.get_ident() == self._loop_thread:
            self._connection.send(packet)  # an inline function: keep the order with the result sent after it
        else:
            # Scheduled in call order, and before the result: the pool's future is resolved the same way, later.
            self._loop.call_soon_threadsafe(self._connection.send, packet)

    def send_data(self, data: Payload) -> None:
        """WORK_DATA: send a chunk of partial result to the waiting clients."""
        self._send(self._packet(P.WORK_DATA, _payload(data)))

    def send_warning(self, data: Payload) -> None:
        """WORK_WARNING: send a warning to the waiting clients."""
        self._send(self._packet(P.WORK_WARNING, _payload(data)))

    def send_status(self, numerator: int, denominator: int) -> None:
        """WORK_STATUS: report progress (also answers clients' GET_STATUS)."""
        self._send(self._packet(P.WORK_STATUS, str(numerator).encode(), str(denominator).encode()))
