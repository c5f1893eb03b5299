"""The asyncio Gearman worker: functions, connections to every server, and the grab/sleep cycle.

The worker keeps one connection per server and reconnects (with backoff) to any that goes away, serving the others
meanwhile. ``concurrency`` bounds the jobs it holds at once across all servers; an outstanding GRAB_JOB_ALL counts
as held, so a burst of assignments from several servers can never exceed it. When a job ends, its result and the
next GRAB_JOB_ALL usually leave in the same write.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import multiprocessing
from collections import deque
from collections.abc import Sequence
from functools import partial
from ssl import SSLContext
from typing import Any

from geartrain import tracing
from geartrain.client.transport import Backoff, ServerSpec, auth_option, format_address, open_connection, parse_servers
from geartrain.errors import ConnectionLost, JobException, JobFailed
from geartrain.protocol.codec import encode_request
from geartrain.protocol.meta import OPTION as META_OPTION
from geartrain.protocol.packets import PacketType
from geartrain.worker.connection import WorkerConnection
from geartrain.worker.function import Executor, Function, WorkerFunction, describe, result_payload
from geartrain.worker.job import JobData, ThreadJob, WorkerJob

P = PacketType
log = logging.getLogger("geartrain.worker")


class Worker:
    """Serves registered functions for one or more servers (``"host:port"`` strings or ``(host, port)`` tuples).

    ``concurrency`` is how many jobs run at once. ``async def`` functions run on the event loop; plain functions
    run in a thread pool (``threads`` threads, default ``concurrency``), in a process pool if registered with
    ``executor="process"`` (``processes`` processes; functions and results must be picklable), or directly on the
    loop with ``executor="inline"`` (only for functions that return at once). ``tls`` and ``secret``: as for
    :class:`~geartrain.client.client.Client` (a refused CAN_DO is logged with the server's reason).

    A function that raises never stops the worker: the job fails with WORK_FAIL, or with WORK_EXCEPTION carrying
    ``"ExceptionType: message"`` when ``exceptions`` is set (raising :class:`~geartrain.errors.JobException`
    sends its ``data`` as it is). That is off by default because gearmand 1.1.20 hands
    a WORK_EXCEPTION to clients that did not ask for exceptions as a malformed WORK_FAIL that libgearman clients
    (PHP, the ``gearman`` tool) never recognise: they hang. Turn it on for geartrain, or when clients ask for it.

    With ``meta`` (the default) each connection asks for the geartrain-meta option, so that jobs from a server
    that has it come with their ``attempt`` and ``meta`` (gearmand refuses it: nothing changes there). With
    ``trace`` too and OpenTelemetry installed, a job that carries a trace context runs inside a CONSUMER span.
    """

    def __init__(
        self,
        servers: ServerSpec | Sequence[ServerSpec] = "localhost:4730",
        *,
        client_id: str | None = None,
        concurrency: int = 1,
        exceptions: bool = False,
        threads: int | None = None,
        processes: int | None = None,
        connect_timeout: float = 5.0,
        backoff_initial: float = 0.05,
        backoff_max: float = 10.0,
        tls: SSLContext | None = None,
        secret: str | None = None,
        meta: bool = True,
        trace: bool = True,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.tls = tls  # connect over TLS with this context
        self._auth = auth_option(secret) if secret is not None else None  # presented first on each connection
        self._addresses = parse_servers(servers if isinstance(servers, str | tuple) else list(servers))
        self.client_id = client_id
        self.concurrency = concurrency
        self.exceptions = exceptions
        self.connect_timeout = connect_timeout
        self.meta = meta
        self._tracer = tracing.new_tracer() if meta and trace and tracing.AVAILABLE else None
        self._backoff = (backoff_initial, backoff_max)
        self._threads = threads or concurrency
        self._processes = processes
        self._thread_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._process_pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._functions: dict[bytes, Function] = {}
        self._connections: set[WorkerConnection] = set()
        self._wanting: deque[WorkerConnection] = deque()
        self._running = 0
        self._grabbing = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        # asyncio events bind to the loop that first waits on them, so they can be made here, before run().
        self._stop_event = asyncio.Event()
        self._drained = asyncio.Event()
        self._finished = asyncio.Event()
        #: Jobs this worker has ended (completed, failed or raised), for monitoring and tests.
        self.jobs_done = 0

    # ------------------------------------------------------------------ functions

    def register(
        self, name: str, fn: WorkerFunction, *, timeout: float | None = None, executor: Executor | None = None
    ) -> None:
        """Serve ``name`` with ``fn(job)``. ``executor`` defaults to ``"async"`` for coroutine functions,
        ``"thread"`` for others.

        ``timeout`` (seconds, at least 1) is sent as CAN_DO_TIMEOUT: the server gives the job to another worker if
        this one has not ended it in time (the late result is refused; the function is not interrupted). gearmand
        1.1.20 keeps one such timer per connection and drops it when the worker sends its next GRAB or PRE_SLEEP,
        so there the timeout only holds with ``concurrency=1``.
        """
        if executor is None:
            executor = "async" if inspect.iscoroutinefunction(fn) else "thread"
        elif (executor == "async") != inspect.iscoroutinefunction(fn):
            raise ValueError(f"executor {executor!r} does not fit {fn!r}")
        function = Function(name, fn, timeout, executor)
        self._functions[function.raw] = function
        for connection in self._live():
            connection.send(function.can_do())
            self._wake(connection)  # a job of the new function may already be queued
        self._schedule()

    def unregister(self, name: str) -> None:
        """Stop serving ``name`` (CANT_DO; a server requeues jobs of it this worker is running)."""
        function = self._functions.pop(name.encode(), None)
        if function is not None:
            for connection in self._live():
                connection.send(encode_request(P.CANT_DO, function.raw))

    @property
    def functions(self) -> list[str]:
        return [function.name for function in self._functions.values()]

    @property
    def running_jobs(self) -> int:
        return self._running

    @property
    def connected(self) -> list[str]:
        """The servers this worker is connected to right now."""
        return sorted(connection.name for connection in self._live())

    # ------------------------------------------------------------------ life cycle

    async def run(self) -> None:
        """Connect to every server and serve jobs until :meth:`stop`; returns once stopped. A worker runs once."""
        if self._loop is not None:
            raise RuntimeError("this Worker has already run")
        self._loop = asyncio.get_running_loop()
        servers = [asyncio.ensure_future(self._serve(address)) for address in self._addresses]
        try:
            await self._stop_event.wait()
            self._check_drained()
            await self._drained.wait()
        finally:
            self._stopping = True
            for task in list(self._tasks):
                task.cancel()
            for connection in list(self._connections):
                connection.close()
            for server in servers:
                server.cancel()
            await asyncio.gather(*servers, *self._tasks, return_exceptions=True)
            for pool in (self._thread_pool, self._process_pool):
                if pool is not None:
                    pool.shutdown(wait=False, cancel_futures=True)
            self._thread_pool = self._process_pool = None
            self._finished.set()

    def stop(self, graceful: bool = True) -> None:
        """Stop grabbing jobs; :meth:`run` returns once the running jobs have ended (``graceful``) or at once
        (running jobs are abandoned, and the servers give them to other workers). Call on the worker's loop."""
        self._stopping = True
        self._stop_event.set()
        if not graceful:
            self._drained.set()
        else:
            self._check_drained()

    async def wait_stopped(self) -> None:
        """Wait until :meth:`run` has returned."""
        await self._finished.wait()

    async def _serve(self, address: tuple[str, int]) -> None:
        """Keep one connection to one server, reconnecting with backoff until the worker stops."""
        backoff = Backoff(*self._backoff)
        name = format_address(address)
        while not self._stopping:
            try:
                connection = await open_connection(
                    lambda: WorkerConnection(address, self), address, self.connect_timeout, self.tls
                )
            except ConnectionLost as exc:
                delay = backoff.next_delay()
                (log.warning if backoff.failures == 1 else log.debug)("%s; retrying in %.2fs", exc, delay)
                await self._pause(delay)
                continue
            assert isinstance(connection, WorkerConnection)
            backoff.reset()
            self._connected(connection)
            await connection.closed
            if not self._stopping:
                log.warning("%s: connection lost (%s)", name, connection.lost_reason or "closed by server")
                await self._pause(backoff.next_delay())

    async def _pause(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._stop_event.wait()

    def _connected(self, connection: WorkerConnection) -> None:
        if self._stopping:
            connection.close()
            return
        self._connections.add(connection)
        if self._auth is not None:  # before CAN_DO: the server judges them with the secret's identity
            connection.option(self._auth)
        if self.meta:  # before the first GRAB: its JOB_ASSIGN comes after the answer
            connection.option(META_OPTION)
        if self.client_id is not None:
            connection.send(encode_request(P.SET_CLIENT_ID, self.client_id.encode()))
        # The server serves the most recently registered function first: announce them in reverse, so that the
        # first registered is preferred (as libgearman workers do).
        for function in reversed(self._functions.values()):
            connection.send(function.can_do())
        self._want(connection)
        self._schedule()

    def _live(self) -> list[WorkerConnection]:
        return [connection for connection in self._connections if connection.alive]

    # ------------------------------------------------------------------ grab scheduling (called by connections)

    def _want(self, connection: WorkerConnection) -> None:
        if not connection.wanting:
            connection.wanting = True
            self._wanting.append(connection)

    def _wake(self, connection: WorkerConnection) -> None:
        if connection.sleeping:
            connection.sleeping = False
            self._want(connection)

    def _schedule(self) -> None:
        """Send GRAB_JOB_ALL on awake connections while there is room for another job."""
        if self._stopping:
            return
        wanting = self._wanting
        while wanting and self._running + self._grabbing < self.concurrency:
            connection = wanting[0]
            if connection.can_grab:
                self._grabbing += 1
                connection.grab()
                if connection.can_grab:
                    continue  # room for more on this one
            wanting.popleft()
            connection.wanting = False

    def woken(self, connection: WorkerConnection) -> None:
        self._want(connection)
        self._schedule()

    def no_job(self, connection: WorkerConnection) -> None:
        self._grabbing -= 1
        if connection.grabs == 0 and not self._stopping:
            connection.pre_sleep()
        self._schedule()
        self._check_drained()

    def disconnected(self, connection: WorkerConnection, error: ConnectionLost) -> None:
        self._connections.discard(connection)
        self._grabbing -= connection.grabs
        connection.grabs = 0
        self._schedule()
        self._check_drained()

    def _check_drained(self) -> None:
        if self._stopping and self._running == 0 and self._grabbing == 0:
            self._drained.set()

    # ------------------------------------------------------------------ running jobs

    def assigned(
        self,
        connection: WorkerConnection,
        handle: bytes,
        function: bytes,
        unique: bytes,
        reducer: bytes | None,
        data: bytes,
        attempt: int,
        meta: dict[str, str],
    ) -> None:
        self._grabbing -= 1
        self._running += 1
        self._want(connection)  # it had a job, it may well have more
        entry = self._functions.get(function)
        if entry is None:  # unregistered while the grab was under way
            self._ended(connection, handle, None, JobFailed(f"function {function!r} is not served here"))
            return
        texts = (function.decode("utf-8", "surrogateescape"), unique.decode("utf-8", "surrogateescape"))
        reducer_text = None if reducer is None else reducer.decode("utf-8", "surrogateescape")
        executor = entry.executor
        done = partial(self._future_done, connection, handle)
        fn = entry.fn
        span = None
        if meta and self._tracer is not None:
            span = tracing.start_consumer(self._tracer, texts[0], handle.decode("latin-1"), attempt, meta)
            if span is not None and executor in ("thread", "inline"):
                fn = partial(tracing.run_sync, span, entry.fn)
        if executor == "async":
            job = WorkerJob(connection, handle, *texts, data, reducer_text, attempt=attempt, meta=meta)
            work = fn(job)
            task = asyncio.ensure_future(work if span is None else tracing.run_async(span, work))
            self._tasks.add(task)
            task.add_done_callback(done)
        elif executor == "inline":
            inline_job = ThreadJob(
                connection, handle, *texts, data, reducer_text, self._loop_(), attempt=attempt, meta=meta
            )
            try:
                value = fn(inline_job)
            except Exception as exc:
                self._ended(connection, handle, None, exc)
            else:
                self._ended(connection, handle, value, None)
        elif executor == "thread":
            thread_job = ThreadJob(
                connection, handle, *texts, data, reducer_text, self._loop_(), attempt=attempt, meta=meta
            )
            self._loop_().run_in_executor(self._thread_executor(), fn, thread_job).add_done_callback(done)
        else:
            plain = JobData(handle.decode("latin-1"), *texts, data, reducer_text, attempt, meta)
            future = self._loop_().run_in_executor(self._process_executor(), fn, plain)
            if span is not None:  # the span cannot follow the job into the other process: it ends with the future
                future.add_done_callback(partial(tracing.end_with, span))
            future.add_done_callback(done)
        self._schedule()

    def _future_done(self, connection: WorkerConnection, handle: bytes, future: asyncio.Future[Any]) -> None:
        if isinstance(future, asyncio.Task):
            self._tasks.discard(future)
        if future.cancelled():  # stopped without grace: send nothing, the server gives the job to someone else
            self._running -= 1
            self._check_drained()
            return
        error = future.exception()
        self._ended(connection, handle, None if error else future.result(), error)

    def _ended(self, connection: WorkerConnection, handle: bytes, value: object, error: BaseException | None) -> None:
        self._running -= 1
        self.jobs_done += 1
        if error is None:
            try:
                connection.send(encode_request(P.WORK_COMPLETE, handle, result_payload(value)))
            except TypeError as exc:
                error = exc
        if isinstance(error, JobFailed):
            connection.send(encode_request(P.WORK_FAIL, handle))
        elif isinstance(error, JobException) and self.exceptions:
            # Raised on purpose to send WORK_EXCEPTION with the function's own payload.
            connection.send(encode_request(P.WORK_EXCEPTION, handle, error.data))
        elif error is not None:
            log.error(
                "job %s (%s) raised %s",
                handle.decode("latin-1"),
                connection.name,
                describe(error).decode(),
                exc_info=error,
            )
            if self.exceptions:
                connection.send(encode_request(P.WORK_EXCEPTION, handle, describe(error)))
            else:
                connection.send(encode_request(P.WORK_FAIL, handle))
        self._schedule()
        self._check_drained()

    def _loop_(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    def _thread_executor(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._thread_pool is None:
            self._thread_pool = concurrent.futures.ThreadPoolExecutor(self._threads, "geartrain-worker")
        return self._thread_pool

    def _process_executor(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._process_pool is None:
            # spawn, not fork: forking a process that runs an event loop and threads copies locks in odd states.
            context = multiprocessing.get_context("spawn")
            self._process_pool = concurrent.futures.ProcessPoolExecutor(self._processes, mp_context=context)
        return self._process_pool
