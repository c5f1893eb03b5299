"""python-gearman's ``GearmanWorker`` on geartrain's asyncio :class:`~geartrain.worker.Worker`.

``work()`` runs the worker's event loop in the calling thread, as python-gearman's ``work()`` runs its select loop.
Callbacks (``callback(gearman_worker, gearman_job)``) run one at a time in a helper thread, so the connections keep
being served while they work; ``send_job_data`` / ``send_job_status`` / ``send_job_warning`` go out at once.
A job ends once: with what the callback returns (WORK_COMPLETE), or with the first of ``send_job_complete`` /
``send_job_failure`` / ``send_job_exception`` it called (python-gearman would also send the returned value, which
the server then refuses).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from geartrain.client.loopthread import new_event_loop
from geartrain.compat._errors import InvalidWorkerState, ServerUnavailable
from geartrain.compat._hosts import server_list, server_tls
from geartrain.compat._jobs import DataEncoder, GearmanJob, NoopEncoder, encode_payload
from geartrain.errors import JobException, JobFailed
from geartrain.worker import ThreadJob, Worker

log = logging.getLogger("gearman.worker")

POLL_TIMEOUT_IN_SECONDS = 60.0
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


@dataclass
class _Outcome:
    kind: str = ""  # "", "complete", "failure", "exception"
    data: bytes = b""


class GearmanWorker:
    """Serves the tasks registered with :meth:`register_task` for every server of ``host_list``."""

    data_encoder: type[DataEncoder] = NoopEncoder
    job_class: type[GearmanJob] = GearmanJob

    def __init__(self, host_list: Sequence[Any] | None = None) -> None:
        self.host_list = list(host_list or [])
        self._servers = server_list(self.host_list)
        self._tls = server_tls(self.host_list)
        self.worker_abilities: dict[str, Callable[[GearmanWorker, GearmanJob], Any]] = {}
        self.worker_client_id: str | None = None
        self._worker: Worker | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._live: dict[str, tuple[ThreadJob, _Outcome]] = {}
        self._busy = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ abilities

    def register_task(self, task: str, callback_function: Callable[[GearmanWorker, GearmanJob], Any]) -> str:
        """Serve ``task`` with ``callback_function(gearman_worker, gearman_job)``; its return value is the result."""
        self.worker_abilities[task] = callback_function
        self._on_loop(lambda worker: worker.register(task, self._run_job, executor="thread"))
        return task

    def unregister_task(self, task: str) -> str:
        self.worker_abilities.pop(task, None)
        self._on_loop(lambda worker: worker.unregister(task))
        return task

    def set_client_id(self, client_id: str) -> str:
        """SET_CLIENT_ID, sent on every connection made from the next :meth:`work` on."""
        self.worker_client_id = client_id
        return client_id

    def _on_loop(self, action: Callable[[Worker], None]) -> None:
        with self._lock:
            worker, loop = self._worker, self._loop
        if worker is not None and loop is not None and loop.is_running():
            loop.call_soon_threadsafe(action, worker)

    # ------------------------------------------------------------------ the work loop

    def work(self, poll_timeout: float | None = POLL_TIMEOUT_IN_SECONDS) -> None:
        """Serve jobs until :meth:`after_poll` or :meth:`after_job` returns False, or :meth:`shutdown`."""
        if not self._servers:
            raise ServerUnavailable(f"Found no valid connections in list: {self.host_list!r}")
        loop = new_event_loop()
        worker = Worker(self._servers, client_id=self.worker_client_id, exceptions=True, threads=1, tls=self._tls)
        for task in self.worker_abilities:
            worker.register(task, self._run_job, executor="thread")
        with self._lock:
            self._worker, self._loop = worker, loop
        try:
            loop.run_until_complete(self._work(worker, poll_timeout))
        finally:
            with self._lock:
                self._worker = self._loop = None
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _work(self, worker: Worker, poll_timeout: float | None) -> None:
        runner = asyncio.ensure_future(worker.run())
        ticker = asyncio.ensure_future(self._tick(worker, poll_timeout))
        try:
            await runner
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    async def _tick(self, worker: Worker, poll_timeout: float | None) -> None:
        """python-gearman calls ``after_poll(False)`` each time a poll times out with nothing to do."""
        if poll_timeout is None:
            return
        while True:
            await asyncio.sleep(max(poll_timeout, 0.001))
            if not self._busy and not self.after_poll(False):
                worker.stop()
                return

    def shutdown(self) -> None:
        """Stop :meth:`work` (from any thread); the running job ends first."""
        self._on_loop(lambda worker: worker.stop())

    def after_poll(self, any_activity: bool) -> bool:
        """Override: called after each job (True) and after each idle ``poll_timeout`` (False); False stops."""
        return True

    def after_job(self) -> bool:
        """Override: called after each job; return False to stop the work loop."""
        return True

    # ------------------------------------------------------------------ running a job (helper thread)

    def _run_job(self, thread_job: ThreadJob) -> bytes:
        self._busy = True
        outcome = _Outcome()
        self._live[thread_job.handle] = (thread_job, outcome)
        try:
            data = self.data_encoder.decode(thread_job.data)
            job = self.job_class(None, thread_job.handle, thread_job.function, thread_job.unique, data)
            self.on_job_execute(job)
        except Exception:
            log.exception("job %s (%s) could not be run", thread_job.handle, thread_job.function)
        try:
            if not (self.after_job() and self.after_poll(True)):
                self.shutdown()
        finally:
            del self._live[thread_job.handle]
            self._busy = False
        if outcome.kind == "complete":
            return outcome.data
        if outcome.kind == "exception":
            raise JobException(outcome.data, handle=thread_job.handle)
        raise JobFailed(f"job {thread_job.handle} failed", handle=thread_job.handle)

    def on_job_execute(self, current_job: GearmanJob) -> bool:
        try:
            callback = self.worker_abilities[current_job.task]
            result = callback(self, current_job)
        except Exception:
            return self.on_job_exception(current_job, sys.exc_info())
        return self.on_job_complete(current_job, result)

    def on_job_exception(self, current_job: GearmanJob, exc_info: ExcInfo) -> bool:
        log.error("task %s raised %r (job %s): WORK_FAIL", current_job.task, exc_info[1], current_job.handle)
        self.send_job_failure(current_job)
        return False

    def on_job_complete(self, current_job: GearmanJob, job_result: Any) -> bool:
        self.send_job_complete(current_job, job_result)
        return True

    # ------------------------------------------------------------------ updates from inside a callback

    def _entry(self, current_job: GearmanJob) -> tuple[ThreadJob, _Outcome]:
        entry = self._live.get(current_job.handle or "")
        if entry is None:
            raise InvalidWorkerState(f"job {current_job.handle!r} is not running in this worker")
        return entry

    def _end(self, current_job: GearmanJob, kind: str, data: bytes = b"") -> None:
        _, outcome = self._entry(current_job)
        if not outcome.kind:  # the first ending counts
            outcome.kind, outcome.data = kind, data

    def send_job_data(self, current_job: GearmanJob, data: Any, poll_timeout: float | None = None) -> None:
        self._entry(current_job)[0].send_data(encode_payload(self.data_encoder, data))

    def send_job_warning(self, current_job: GearmanJob, data: Any, poll_timeout: float | None = None) -> None:
        self._entry(current_job)[0].send_warning(encode_payload(self.data_encoder, data))

    def send_job_status(
        self, current_job: GearmanJob, numerator: int, denominator: int, poll_timeout: float | None = None
    ) -> None:
        self._entry(current_job)[0].send_status(int(numerator), int(denominator))

    def send_job_complete(self, current_job: GearmanJob, data: Any, poll_timeout: float | None = None) -> None:
        self._end(current_job, "complete", encode_payload(self.data_encoder, data))

    def send_job_failure(self, current_job: GearmanJob, poll_timeout: float | None = None) -> None:
        self._end(current_job, "failure")

    def send_job_exception(self, current_job: GearmanJob, data: Any, poll_timeout: float | None = None) -> None:
        """WORK_EXCEPTION with ``data``; it ends the job (servers treat it as final, as they do WORK_FAIL)."""
        self._end(current_job, "exception", encode_payload(self.data_encoder, data))
