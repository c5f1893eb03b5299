"""Blocking wrappers: :class:`SyncClient` runs an asyncio :class:`~geartrain.client.Client` on a private loop thread."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from geartrain.client.client import Client
from geartrain.client.events import JobEvent, JobStatus, UniqueStatus, WorkStatus
from geartrain.client.job import EventCallback, Job, Payload
from geartrain.client.loopthread import LoopThread, await_value
from geartrain.client.transport import ServerSpec
from geartrain.protocol.packets import Priority


class SyncJob:
    """A :class:`~geartrain.client.Job` seen from blocking code: same attributes, blocking :meth:`result`, and
    iteration over its events that blocks until each one arrives."""

    def __init__(self, job: Job, thread: LoopThread) -> None:
        self.job = job
        self._thread = thread

    def __repr__(self) -> str:
        return f"<SyncJob {self.job!r}>"

    @property
    def handle(self) -> str | None:
        return self.job.handle

    @property
    def server(self) -> str | None:
        return self.job.server

    @property
    def function(self) -> str:
        return self.job.function

    @property
    def unique(self) -> str:
        return self.job.unique

    @property
    def background(self) -> bool:
        return self.job.background

    @property
    def events(self) -> list[JobEvent]:
        """The events received so far (a copy)."""
        return list(self.job.events)

    @property
    def status(self) -> WorkStatus | None:
        return self.job.status

    def done(self) -> bool:
        return self.job.done()

    def exception(self) -> BaseException | None:
        return self.job.exception()

    def result(self, timeout: float | None = None) -> bytes:
        """Block until the job ends; return its result or raise as :meth:`Job.result` does."""
        return self._thread.run(self.job.result(timeout))

    def __iter__(self) -> Iterator[JobEvent]:
        events = self.job.__aiter__()
        while True:
            try:
                yield self._thread.run(await_value(anext(events)))
            except StopAsyncIteration:
                return


class SyncClient:
    """The blocking form of :class:`~geartrain.client.Client` (same arguments, same methods, no ``await``).

    Callbacks (``on_event``) run on the client's loop thread. Use as a context manager or call :meth:`close`.
    A call carries the caller's context (contextvars) to the loop thread, so a submit made inside an OpenTelemetry
    span is traced as with the asyncio client.
    """

    def __init__(self, servers: ServerSpec | Sequence[ServerSpec] = "localhost:4730", **options: Any) -> None:
        self._thread = LoopThread("geartrain-client")
        self.client = Client(servers, **options)

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections and stop the loop thread."""
        if not self._thread.closed:
            try:
                self._thread.run(self.client.close(), timeout=10)
            finally:
                self._thread.stop()

    def connect(self) -> list[str]:
        return self._thread.run(self.client.connect())

    def submit(
        self,
        function: str,
        data: Payload = b"",
        *,
        unique: str | None = None,
        priority: Priority = Priority.NORMAL,
        background: bool = False,
        when: float | datetime | None = None,
        reducer: str | None = None,
        on_event: EventCallback | None = None,
        timeout: float | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> SyncJob:
        """See :meth:`Client.submit`; returns once the server has acknowledged the job."""
        job = self._thread.run(
            self.client.submit(
                function,
                data,
                unique=unique,
                priority=priority,
                background=background,
                when=when,
                reducer=reducer,
                on_event=on_event,
                timeout=timeout,
                meta=meta,
            )
        )
        return SyncJob(job, self._thread)

    def do(
        self,
        function: str,
        data: Payload = b"",
        *,
        unique: str | None = None,
        priority: Priority = Priority.NORMAL,
        reducer: str | None = None,
        on_event: EventCallback | None = None,
        timeout: float | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> bytes:
        """See :meth:`Client.do`: run a foreground job and return its result."""
        return self._thread.run(
            self.client.do(
                function,
                data,
                unique=unique,
                priority=priority,
                reducer=reducer,
                on_event=on_event,
                timeout=timeout,
                meta=meta,
            )
        )

    def get_status(self, job: SyncJob | Job | str, *, timeout: float | None = None) -> JobStatus:
        target = job.job if isinstance(job, SyncJob) else job
        return self._thread.run(self.client.get_status(target, timeout=timeout))

    def get_status_unique(self, unique: str, *, timeout: float | None = None) -> UniqueStatus:
        return self._thread.run(self.client.get_status_unique(unique, timeout=timeout))

    def echo(self, data: Payload = b"", *, server: str | None = None, timeout: float | None = None) -> bytes:
        return self._thread.run(self.client.echo(data, server=server, timeout=timeout))

    def set_option(self, name: str, *, timeout: float | None = None) -> None:
        self._thread.run(self.client.set_option(name, timeout=timeout))

    def cancel(self, job: SyncJob | Job, *, timeout: float | None = 10.0) -> bool:
        target = job.job if isinstance(job, SyncJob) else job
        return self._thread.run(self.client.cancel(target, timeout=timeout))
