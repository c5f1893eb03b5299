"""A submitted job as the client sees it: its handle, its stream of events and its final result."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Generator
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from geartrain.client.events import (
    FINAL_EVENTS,
    JobEvent,
    WorkComplete,
    WorkException,
    WorkFail,
    WorkStatus,
)
from geartrain.errors import GearmanTimeout, JobException, JobFailed
from geartrain.protocol.codec import encode_request
from geartrain.protocol.meta import join_meta
from geartrain.protocol.packets import HEADER_SIZE, PacketType, Priority

if TYPE_CHECKING:
    from geartrain.client.connection import ClientConnection

EventCallback = Callable[["Job", JobEvent], object]
Payload = bytes | bytearray | memoryview | str

P = PacketType
# (priority, background) -> submit packet type
SUBMIT_TYPES: dict[tuple[Priority, bool], int] = {
    (Priority.NORMAL, False): P.SUBMIT_JOB,
    (Priority.NORMAL, True): P.SUBMIT_JOB_BG,
    (Priority.HIGH, False): P.SUBMIT_JOB_HIGH,
    (Priority.HIGH, True): P.SUBMIT_JOB_HIGH_BG,
    (Priority.LOW, False): P.SUBMIT_JOB_LOW,
    (Priority.LOW, True): P.SUBMIT_JOB_LOW_BG,
}

_NOT_YET = object()


class Job:
    """One job submitted by a :class:`~geartrain.client.Client`.

    ``handle`` is the server's job handle once JOB_CREATED has arrived (``None`` before), ``server`` the address
    of the server holding it. A foreground job then receives the worker's packets as events: iterate them with
    ``async for event in job``, or pass callbacks, and ``await job.result()`` (or simply ``await job``) for the
    WORK_COMPLETE payload; WORK_FAIL raises :class:`~geartrain.errors.JobFailed` and WORK_EXCEPTION raises
    :class:`~geartrain.errors.JobException`. A background job is finished as soon as the server acknowledges it;
    its result is ``b""``.
    """

    __slots__ = (
        "_abandoned",
        "_callbacks",
        "_connection",
        "_created_waiters",
        "_loop",
        "_meta",
        "_outcome",
        "_waiters",
        "background",
        "data",
        "events",
        "function",
        "handle",
        "packet",
        "priority",
        "reducer",
        "server",
        "unique",
        "when",
    )

    # The reply that answers a submit on the same connection (replies keep request order).
    expect: ClassVar[int] = PacketType.JOB_CREATED

    def __init__(
        self,
        function: str,
        data: bytes,
        *,
        unique: str = "",
        priority: Priority = Priority.NORMAL,
        background: bool = False,
        when: int | None = None,
        reducer: str | None = None,
        packet: bytes = b"",
    ) -> None:
        self.function = function
        self.data = data
        self.unique = unique
        self.priority = priority
        self.background = background
        self.when = when
        self.reducer = reducer
        self.packet = packet
        self.handle: str | None = None
        self.server: str | None = None
        #: Every event received so far, in order.
        self.events: list[JobEvent] = []
        self._loop = asyncio.get_running_loop()
        self._outcome: Any = _NOT_YET  # bytes on success, the exception to raise otherwise
        self._waiters: list[asyncio.Future[None]] = []  # woken by events and by the end
        self._created_waiters: list[asyncio.Future[None]] = []  # woken by JOB_CREATED and by the end
        self._callbacks: list[EventCallback] = []
        self._connection: ClientConnection | None = None
        self._abandoned = False
        self._meta: bytes | None = None  # the content of the job's meta block (key=value lines), if it has one

    def __repr__(self) -> str:
        state = "done" if self.done() else ("created" if self.handle else "pending")
        return f"<Job {self.function!r} handle={self.handle!r} server={self.server!r} {state}>"

    # ------------------------------------------------------------------ public

    def done(self) -> bool:
        """True once the job has a final outcome (result, failure, or an error such as a lost connection)."""
        return self._outcome is not _NOT_YET

    @property
    def status(self) -> WorkStatus | None:
        """The last WORK_STATUS received, if any."""
        for event in reversed(self.events):
            if type(event) is WorkStatus:
                return event
        return None

    def exception(self) -> BaseException | None:
        """The exception :meth:`result` would raise (``None`` if the job succeeded or is not done)."""
        outcome = self._outcome
        return outcome if isinstance(outcome, BaseException) else None

    async def result(self, timeout: float | None = None) -> bytes:
        """Wait for the job to end and return its WORK_COMPLETE payload.

        Raises :class:`~geartrain.errors.JobFailed`, :class:`~geartrain.errors.JobException`, a
        :class:`~geartrain.errors.ServerError` the submit got, :class:`~geartrain.errors.ConnectionLost`, or
        :class:`~geartrain.errors.GearmanTimeout` after ``timeout`` seconds (the job itself goes on).
        """
        if self._outcome is _NOT_YET:
            if timeout is None:
                while self._outcome is _NOT_YET:
                    await self._changed()
            else:
                try:
                    async with asyncio.timeout(timeout):
                        while self._outcome is _NOT_YET:
                            await self._changed()
                except TimeoutError:
                    raise GearmanTimeout(f"job {self.handle or self.function!r} not done after {timeout}s") from None
        outcome = self._outcome
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[no-any-return]

    def __await__(self) -> Generator[Any, None, bytes]:
        return self.result().__await__()

    def __aiter__(self) -> AsyncIterator[JobEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[JobEvent]:
        index = 0
        while True:
            events = self.events
            while index < len(events):
                event = events[index]
                index += 1
                yield event
                if isinstance(event, FINAL_EVENTS):
                    return
            if self._outcome is not _NOT_YET:
                if isinstance(self._outcome, BaseException) and not isinstance(self._outcome, JobFailed | JobException):
                    raise self._outcome  # ended without a final event: a lost connection, a refused submit
                return
            await self._changed()

    def add_callback(self, callback: EventCallback) -> None:
        """Call ``callback(job, event)`` for every event, starting with those already received."""
        self._callbacks.append(callback)
        for event in list(self.events):
            callback(self, event)

    def _meta_packet(self) -> bytes:
        """The submit packet with a meta block in front of the workload, for a connection with the geartrain-meta
        option (an empty block ``0:`` for a job without metadata)."""
        packet, data = self.packet, self.data
        # The workload is the last argument: keep the type and the arguments before it, put the block in front.
        head = packet[HEADER_SIZE : len(packet) - len(data)]
        ptype = int.from_bytes(packet[4:8], "big")
        return encode_request(ptype, head + join_meta(self._meta or b"", data))

    # ------------------------------------------------------------------ fed by the connection

    async def _changed(self) -> None:
        """Wait for the next event or the end."""
        # One future per waiter: cancelling one waiting task must not cancel the others' wait.
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    async def _created(self) -> None:
        """Wait for JOB_CREATED or the end."""
        waiter = self._loop.create_future()
        self._created_waiters.append(waiter)
        await waiter

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        if self._outcome is not _NOT_YET:
            self._wake_created()

    def _wake_created(self) -> None:
        waiters, self._created_waiters = self._created_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _reply(self, connection: ClientConnection, args: tuple[bytes, ...]) -> None:
        """JOB_CREATED for this submit."""
        if self._abandoned:
            return
        self.handle = args[0].decode("latin-1")
        self.server = connection.name
        if self.background:
            self._outcome = b""
            self._wake()
        else:
            connection.attach(args[0], self)
            self._wake_created()  # callers waiting for the result need not wake up for this

    def _event(self, event: JobEvent) -> None:
        self.events.append(event)
        for callback in self._callbacks:
            callback(self, event)
        if self._waiters:
            self._wake()

    def _finish(self, event: WorkComplete | WorkFail | WorkException) -> None:
        if self._outcome is not _NOT_YET:
            return
        if type(event) is WorkComplete:
            self._outcome = event.data
        elif type(event) is WorkException:
            self._outcome = JobException(event.data, handle=self.handle or "")
        else:
            self._outcome = JobFailed(f"job {self.handle} failed", handle=self.handle or "")
        self._event(event)
        self._connection = None
        self._wake()

    def _fail(self, error: BaseException) -> None:
        """The job ended without a final event (the submit was refused, the connection died, ...)."""
        if self._outcome is not _NOT_YET:
            return
        self._outcome = error
        self._connection = None
        self._wake()

    def _rearm(self) -> None:
        """Forget a failed attempt that the server never acknowledged, so the submit can go to another server."""
        self._outcome = _NOT_YET
        self._connection = None

    def _abandon(self) -> None:
        """The caller gave up (timeout, cancellation): drop whatever the server still sends for this job."""
        self._abandoned = True
        connection = self._connection
        if connection is not None:
            connection.detach(self)
            self._connection = None


def to_bytes(value: Payload) -> bytes:
    """Workloads and keys: ``str`` is sent as UTF-8, bytes-like objects as they are."""
    return value.encode() if isinstance(value, str) else bytes(value)


def new_job(
    function: str,
    data: Payload,
    unique: str | None,
    priority: Priority,
    background: bool,
    when: float | datetime | None,
    reducer: str | None,
) -> Job:
    """A :class:`Job` with its submit packet: SUBMIT_JOB[_HIGH|_LOW][_BG], SUBMIT_JOB_EPOCH (``when``) or
    SUBMIT_REDUCE_JOB[_BACKGROUND] (``reducer``)."""
    name, key, payload = function.encode(), (unique or "").encode(), to_bytes(data)
    epoch: int | None = None
    if when is not None:
        if priority != Priority.NORMAL or reducer is not None:
            raise ValueError("an epoch job (when=...) has normal priority and no reducer")
        background = True
        epoch = int(when.timestamp() if isinstance(when, datetime) else when)
        packet = encode_request(P.SUBMIT_JOB_EPOCH, name, key, str(epoch).encode(), payload)
    elif reducer is not None:
        if priority != Priority.NORMAL:
            raise ValueError("a reduce job has normal priority")
        ptype = P.SUBMIT_REDUCE_JOB_BACKGROUND if background else P.SUBMIT_REDUCE_JOB
        # Four NUL-terminated fields as libgearman sends them; the aggregator (4th) is unused by servers.
        packet = encode_request(ptype, name, key, reducer.encode(), b"", payload)
    else:
        packet = encode_request(SUBMIT_TYPES[priority, background], name, key, payload)
    return Job(
        function,
        payload,
        unique=unique or "",
        priority=priority,
        background=background,
        when=epoch,
        reducer=reducer,
        packet=packet,
    )
