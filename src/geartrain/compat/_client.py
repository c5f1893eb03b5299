"""python-gearman's ``GearmanClient`` on geartrain's asyncio :class:`~geartrain.client.Client`.

The client runs on a private loop thread (the one the blocking wrappers use); every python-gearman call blocks
until its condition holds or ``poll_timeout`` runs out, as python-gearman's select loop does. Requests are updated
as packets arrive: ``state``, ``result``, ``data_updates``, ``warning_updates``, ``status``, ``exception``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import weakref
from collections.abc import Collection, Sequence
from functools import partial
from typing import Any

from geartrain.client import Client, Job
from geartrain.client.events import (
    JobEvent,
    WorkComplete,
    WorkData,
    WorkException,
    WorkFail,
    WorkStatus,
    WorkWarning,
)
from geartrain.client.loopthread import LoopThread
from geartrain.compat._errors import (
    JOB_COMPLETE,
    JOB_CREATED,
    JOB_FAILED,
    JOB_PENDING,
    JOB_UNKNOWN,
    PRIORITY_HIGH,
    PRIORITY_LOW,
    PRIORITY_NONE,
    ExceededConnectionAttempts,
    GearmanError,
    InvalidClientState,
    ServerUnavailable,
)
from geartrain.compat._hosts import server_list, server_tls
from geartrain.compat._jobs import (
    DataEncoder,
    GearmanConnection,
    GearmanJob,
    GearmanJobRequest,
    NoopEncoder,
    encode_payload,
)
from geartrain.errors import ConnectionLost, JobException, JobFailed, NoServersAvailable, ServerError
from geartrain.protocol.packets import Priority

log = logging.getLogger("gearman.client")

RANDOM_UNIQUE_BYTES = 16
_PRIORITIES = {PRIORITY_HIGH: Priority.HIGH, PRIORITY_LOW: Priority.LOW, PRIORITY_NONE: Priority.NORMAL}


def _check_many(items: object, what: str) -> None:
    if not isinstance(items, list | tuple | set):
        raise AssertionError(f"Expected multiple {what}, received 1?")


def unlist(items: Sequence[Any]) -> Any:
    if not items:
        return None
    if len(items) == 1:
        return items[0]
    raise ValueError(len(items))


class GearmanClient:
    """Submits jobs to any of ``host_list`` and tracks them as :class:`GearmanJobRequest` objects."""

    data_encoder: type[DataEncoder] = NoopEncoder
    job_class: type[GearmanJob] = GearmanJob
    job_request_class: type[GearmanJobRequest] = GearmanJobRequest

    def __init__(self, host_list: Sequence[Any] | None = None, random_unique_bytes: int = RANDOM_UNIQUE_BYTES) -> None:
        self.host_list = list(host_list or [])
        self._servers = server_list(self.host_list)
        self._tls = server_tls(self.host_list)
        self.random_unique_bytes = random_unique_bytes
        self._thread: LoopThread | None = None
        self._client: Client | None = None
        self._jobs: weakref.WeakKeyDictionary[GearmanJobRequest, Job] = weakref.WeakKeyDictionary()
        self._submits: weakref.WeakKeyDictionary[GearmanJobRequest, asyncio.Future[GearmanError | None]] = (
            weakref.WeakKeyDictionary()
        )
        self._callback_errors: list[BaseException] = []

    # ------------------------------------------------------------------ life cycle

    def _loop(self) -> tuple[LoopThread, Client]:
        if not self._servers:
            raise ServerUnavailable(f"Found no valid connections: {self.host_list!r}")
        if self._thread is None or self._client is None:
            self._thread = LoopThread("geartrain-compat-client")
            self._client = Client(self._servers, exceptions=True, tls=self._tls)
        return self._thread, self._client

    def _run(self, coro: Any) -> Any:
        thread, _ = self._loop()
        result = thread.run(coro)
        if self._callback_errors:
            error = self._callback_errors.pop(0)
            self._callback_errors.clear()
            raise error
        return result

    def shutdown(self) -> None:
        """Close the connections (python-gearman's ``shutdown``)."""
        thread, client, self._thread, self._client = self._thread, self._client, None, None
        if thread is not None and client is not None:
            try:
                thread.run(client.close(), timeout=10)
            finally:
                thread.stop()

    # ------------------------------------------------------------------ submitting

    def submit_job(
        self,
        task: str,
        data: Any,
        unique: str | None = None,
        priority: str | None = PRIORITY_NONE,
        background: bool = False,
        wait_until_complete: bool = True,
        max_retries: int = 0,
        poll_timeout: float | None = None,
    ) -> GearmanJobRequest:
        """Submit one job; returns its request (check ``state``, ``complete``, ``timed_out``)."""
        job_info = {"task": task, "data": data, "unique": unique, "priority": priority}
        requests = self.submit_multiple_jobs(
            [job_info],
            background=background,
            wait_until_complete=wait_until_complete,
            max_retries=max_retries,
            poll_timeout=poll_timeout,
        )
        return unlist(requests)  # type: ignore[no-any-return]

    def submit_multiple_jobs(
        self,
        jobs_to_submit: Collection[dict[str, Any]],
        background: bool = False,
        wait_until_complete: bool = True,
        max_retries: int = 0,
        poll_timeout: float | None = None,
    ) -> list[GearmanJobRequest]:
        """Submit ``[{'task': ..., 'data': ..., 'unique': ..., 'priority': ...}, ...]`` at once."""
        _check_many(jobs_to_submit, "jobs")
        requests = [
            self._create_request_from_dictionary(job_info, background=background, max_retries=max_retries)
            for job_info in jobs_to_submit
        ]
        return self.submit_multiple_requests(
            requests, wait_until_complete=wait_until_complete, poll_timeout=poll_timeout
        )

    def submit_multiple_requests(
        self,
        job_requests: Collection[GearmanJobRequest],
        wait_until_complete: bool = True,
        poll_timeout: float | None = None,
    ) -> list[GearmanJobRequest]:
        """Wait until the requests are accepted, then (optionally) complete, all within ``poll_timeout``."""
        _check_many(job_requests, "job requests")
        deadline = None if poll_timeout is None else time.monotonic() + poll_timeout
        processed = self.wait_until_jobs_accepted(job_requests, poll_timeout=poll_timeout)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if wait_until_complete and remaining != 0.0:
            processed = self.wait_until_jobs_completed(processed, poll_timeout=remaining)
        return processed

    def wait_until_jobs_accepted(
        self, job_requests: Collection[GearmanJobRequest], poll_timeout: float | None = None
    ) -> list[GearmanJobRequest]:
        """Send the requests not sent yet and wait for their handles (JOB_CREATED)."""
        _check_many(job_requests, "job requests")
        requests = list(job_requests)
        errors = self._run(self._accept(requests, poll_timeout))
        for request in requests:
            request.timed_out = request.state == JOB_PENDING
        if errors:
            raise errors[0]
        return requests

    def wait_until_jobs_completed(
        self, job_requests: Collection[GearmanJobRequest], poll_timeout: float | None = None
    ) -> list[GearmanJobRequest]:
        """Wait until every accepted request has completed or failed."""
        _check_many(job_requests, "job requests")
        requests = list(job_requests)
        jobs = [
            job
            for request in requests
            if not request.complete and request.state != JOB_UNKNOWN and (job := self._jobs.get(request)) is not None
        ]
        self._run(self._wait_done(jobs, poll_timeout))
        for request in requests:
            job = self._jobs.get(request)
            if job is not None and job.done() and not request.complete:
                lost = job.exception()
                if lost is not None and not isinstance(lost, JobFailed | JobException):
                    request.state = JOB_UNKNOWN  # the connection died: nobody knows how the job ended
            request.timed_out = not request.complete
        return requests

    def get_job_status(self, current_request: GearmanJobRequest, poll_timeout: float | None = None) -> Any:
        """GET_STATUS for one request; fills ``request.status``."""
        return unlist(self.get_job_statuses([current_request], poll_timeout=poll_timeout))

    def get_job_statuses(
        self, job_requests: Collection[GearmanJobRequest], poll_timeout: float | None = None
    ) -> list[GearmanJobRequest]:
        """GET_STATUS for several requests at once; ``timed_out`` is set on those not answered in time."""
        _check_many(job_requests, "job requests")
        requests = list(job_requests)
        for request in requests:
            if request.job.handle is None:
                raise InvalidClientState(f"Expected a job handle for {request!r}: the job was not accepted")
        answered: set[int] = self._run(self._statuses(requests, poll_timeout))
        for request in requests:
            request.timed_out = id(request) not in answered
        return requests

    # ------------------------------------------------------------------ python-gearman's helpers

    def _create_request_from_dictionary(
        self, job_info: dict[str, Any], background: bool = False, max_retries: int = 0
    ) -> GearmanJobRequest:
        unique = job_info.get("unique") or os.urandom(self.random_unique_bytes).hex()
        job = self.job_class(connection=None, handle=None, task=job_info["task"], unique=unique, data=job_info["data"])
        return self.job_request_class(
            job,
            initial_priority=job_info.get("priority", PRIORITY_NONE),
            background=background,
            max_attempts=max_retries + 1,
        )

    # ------------------------------------------------------------------ on the loop thread

    async def _accept(self, requests: list[GearmanJobRequest], timeout: float | None) -> list[GearmanError]:
        for request in requests:
            if request.state == JOB_UNKNOWN:
                request.state = JOB_PENDING
                self._submits[request] = asyncio.ensure_future(self._submit(request))
        waiting = [self._submits[r] for r in requests if r.state == JOB_PENDING and r in self._submits]
        if waiting:
            await asyncio.wait(waiting, timeout=timeout)
        errors = []
        for request in requests:
            submit = self._submits.get(request)
            if submit is not None and submit.done():
                del self._submits[request]
                if (error := submit.result()) is not None:
                    errors.append(error)
        return errors

    async def _submit(self, request: GearmanJobRequest) -> GearmanError | None:
        assert self._client is not None
        job_info = request.job
        payload = encode_payload(self.data_encoder, job_info.data)
        while True:
            request.connection_attempts += 1
            try:
                job = await self._client.submit(
                    job_info.task,
                    payload,
                    unique=job_info.unique,
                    priority=_PRIORITIES.get(request.priority, Priority.NORMAL),
                    background=request.background,
                    on_event=partial(self._on_event, request),
                )
            except NoServersAvailable as exc:
                # Reached a server that then went away before JOB_CREATED: python-gearman retries such requests.
                dropped = "lost before JOB_CREATED" in str(exc)
                if dropped and request.connection_attempts < request.max_connection_attempts:
                    continue
                request.state = JOB_UNKNOWN
                if dropped:
                    attempts = request.max_connection_attempts
                    return ExceededConnectionAttempts(f"Exceeded {attempts} connection attempt(s) :: {request!r}")
                return ServerUnavailable(f"Found no valid connections: {self.host_list!r} ({exc})")
            except ServerError as exc:
                # python-gearman logs the server's ERROR and then waits forever; the request fails instead.
                log.error("Received error from server: %s", exc)
                request.state = JOB_FAILED
                request.error = str(exc)
                return None
            self._jobs[request] = job
            self._created(request, job)
            return None

    def _created(self, request: GearmanJobRequest, job: Job) -> None:
        if request.state == JOB_PENDING:
            request.job.handle = job.handle
            request.job.connection = GearmanConnection.from_address(job.server)
            request.state = JOB_CREATED

    def _on_event(self, request: GearmanJobRequest, job: Job, event: JobEvent) -> None:
        self._created(request, job)
        try:
            if isinstance(event, WorkData):
                request.data_updates.append(self.data_encoder.decode(event.data))
            elif isinstance(event, WorkWarning):
                request.warning_updates.append(self.data_encoder.decode(event.data))
            elif isinstance(event, WorkStatus):
                request.status = {
                    "handle": job.handle,
                    "known": True,
                    "running": True,
                    "numerator": event.numerator,
                    "denominator": event.denominator,
                    "time_received": time.time(),
                }
            elif isinstance(event, WorkComplete):
                request.result = self.data_encoder.decode(event.data)
                request.state = JOB_COMPLETE
            elif isinstance(event, WorkException):
                request.exception = self.data_encoder.decode(event.data)
                request.state = JOB_FAILED
            elif isinstance(event, WorkFail):
                request.state = JOB_FAILED
        except Exception as exc:  # a data_encoder that cannot decode: raised in the caller's thread
            if isinstance(event, WorkComplete | WorkFail | WorkException):
                request.state = JOB_FAILED
            self._callback_errors.append(exc)

    @staticmethod
    async def _wait_done(jobs: list[Job], timeout: float | None) -> None:
        async def finished(job: Job) -> None:
            with contextlib.suppress(Exception):
                await job.result()

        waiters = [asyncio.ensure_future(finished(job)) for job in jobs]
        if not waiters:
            return
        _, pending = await asyncio.wait(waiters, timeout=timeout)
        for waiter in pending:
            waiter.cancel()  # stops waiting only: the job itself goes on, and can be waited for again

    async def _statuses(self, requests: list[GearmanJobRequest], timeout: float | None) -> set[int]:
        assert self._client is not None
        client = self._client
        answered: set[int] = set()

        async def one(request: GearmanJobRequest) -> None:
            job = self._jobs.get(request)
            handle = request.job.handle
            assert handle is not None
            try:
                status = await client.get_status(job if job is not None else handle)
            except (NoServersAvailable, ConnectionLost) as exc:
                raise ServerUnavailable(f"Found no valid connections: {self.host_list!r} ({exc})") from exc
            request.status = {
                "handle": status.handle,
                "known": status.known,
                "running": status.running,
                "numerator": status.numerator,
                "denominator": status.denominator,
                "time_received": time.time(),
            }
            answered.add(id(request))

        tasks = [asyncio.ensure_future(one(request)) for request in requests]
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return answered
