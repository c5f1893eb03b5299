"""The asyncio Gearman client: submit jobs to one or several servers, query their status, echo.

Jobs with a unique key go to the server that key hashes to, so that equal keys meet on one server and coalesce;
jobs without one are dealt out round robin. When the chosen server cannot be reached the job goes to the next one,
and the unreachable server is left alone for a while (exponential backoff) before it is tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from functools import partial
from ssl import SSLContext

from geartrain import tracing
from geartrain.client.connection import ClientConnection
from geartrain.client.events import JobStatus, UniqueStatus, to_int
from geartrain.client.job import EventCallback, Job, Payload, new_job, to_bytes
from geartrain.client.metadata import carrying
from geartrain.client.transport import (
    Address,
    Backoff,
    ServerSpec,
    auth_option,
    format_address,
    open_connection,
    parse_servers,
)
from geartrain.errors import ConnectionLost, GearmanTimeout, NoServersAvailable, PermissionDenied
from geartrain.protocol.codec import encode_request
from geartrain.protocol.packets import PacketType, Priority

P = PacketType
log = logging.getLogger("geartrain.client")


def _consume_error(future: asyncio.Future[ClientConnection]) -> None:
    if not future.cancelled():
        future.exception()


def _option_answered(server: str, answer: asyncio.Future[tuple[bytes, ...]]) -> None:
    if not answer.cancelled() and answer.exception() is not None:
        log.warning("%s: refused the exceptions option: %s", server, answer.exception())


class _Server:
    """One configured server: its live connection (if any) and when it may be tried again."""

    __slots__ = ("address", "backoff", "connecting", "connection", "name", "retry_at")

    def __init__(self, address: Address, backoff: Backoff) -> None:
        self.address = address
        self.name = format_address(address)
        self.backoff = backoff
        self.connection: ClientConnection | None = None
        self.connecting: asyncio.Task[ClientConnection] | None = None
        self.retry_at = 0.0


class Client:
    """An asyncio Gearman client for one or more servers (``"host:port"`` strings or ``(host, port)`` tuples).

    Connections are opened when first needed, one per server, and shared by every request: any number of jobs
    can be in flight at once. ``client_id`` is sent as SET_CLIENT_ID; with ``exceptions`` (the default) every
    connection asks the server for WORK_EXCEPTION packets (OPTION_REQ ``exceptions``), so a worker's exception
    reaches :meth:`Job.result` as :class:`~geartrain.errors.JobException` rather than a bare
    :class:`~geartrain.errors.JobFailed`. Use as ``async with Client([...]) as client:`` or call :meth:`close`.

    ``tls`` (an :class:`ssl.SSLContext`, e.g. from :func:`geartrain.security.tls.client_context`) connects over
    TLS; ``secret`` is presented to the server's access control on every connection (docs/security.md).

    With ``trace`` (the default) and OpenTelemetry installed, a submit made inside a span gets a PRODUCER span
    whose trace context travels with the job to the worker (docs/lifecycle.md, the geartrain-meta option).
    """

    def __init__(
        self,
        servers: ServerSpec | Sequence[ServerSpec] = "localhost:4730",
        *,
        client_id: str | None = None,
        exceptions: bool = True,
        connect_timeout: float = 5.0,
        backoff_initial: float = 0.05,
        backoff_max: float = 10.0,
        tls: SSLContext | None = None,
        secret: str | None = None,
        trace: bool = True,
    ) -> None:
        self._auth = auth_option(secret) if secret is not None else None
        self.tls = tls
        addresses = parse_servers(servers if isinstance(servers, str | tuple) else list(servers))
        self._servers = [_Server(address, Backoff(backoff_initial, backoff_max)) for address in addresses]
        self.client_id = client_id
        self.exceptions = exceptions
        self.connect_timeout = connect_timeout
        self._next = 0
        self._closed = False
        self._tracer = tracing.new_tracer() if trace and tracing.AVAILABLE else None

    @property
    def servers(self) -> list[str]:
        """The configured servers as ``host:port``."""
        return [server.name for server in self._servers]

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every connection; jobs still waiting fail with :class:`~geartrain.errors.ConnectionLost`."""
        self._closed = True
        for server in self._servers:
            if server.connecting is not None:
                server.connecting.cancel()
            connection, server.connection = server.connection, None
            if connection is not None:
                connection.close()
                with contextlib.suppress(asyncio.CancelledError):
                    await connection.closed

    async def connect(self) -> list[str]:
        """Connect to every server now (instead of on first use); return those reached.

        Raises :class:`~geartrain.errors.NoServersAvailable` when none can be reached.
        """
        results = await asyncio.gather(*(self._connect(s) for s in self._servers), return_exceptions=True)
        reached = [s.name for s, r in zip(self._servers, results, strict=True) if isinstance(r, ClientConnection)]
        if not reached:
            raise NoServersAvailable(f"none of {self.servers} could be reached")
        return reached

    # ------------------------------------------------------------------ submitting

    async def submit(
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
    ) -> Job:
        """Submit a job and return it once the server has acknowledged it (JOB_CREATED).

        ``priority`` picks SUBMIT_JOB, _HIGH or _LOW (and their _BG forms with ``background``); ``when`` (a Unix
        time or an aware datetime) sends SUBMIT_JOB_EPOCH, a background job at normal priority that runs from
        then on; ``reducer`` sends SUBMIT_REDUCE_JOB(_BACKGROUND). ``unique`` coalesces submits with the same key
        onto one job (``"-"`` coalesces equal workloads). ``on_event(job, event)`` is called for every event.
        ``meta`` (``key=value`` fields: keys of ``[a-z0-9_-]``, printable ASCII values) travels with the job to
        its worker where the server has the geartrain-meta option, and is dropped where it has not (gearmand).
        Raises a :class:`~geartrain.errors.ServerError` if the server refuses the job,
        :class:`~geartrain.errors.NoServersAvailable`, or :class:`~geartrain.errors.GearmanTimeout`.
        """
        job = new_job(function, data, unique, priority, background, when, reducer)
        if on_event is not None:
            job.add_callback(on_event)
        if meta is None and (self._tracer is None or not tracing.in_trace()):
            await self._run(job, timeout, wait_result=False)
        else:
            with carrying(job, meta, self._tracer):
                await self._run(job, timeout, wait_result=False)
        return job

    async def do(
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
        """Run a foreground job and return its result (what WORK_COMPLETE carried).

        Raises :class:`~geartrain.errors.JobFailed` or :class:`~geartrain.errors.JobException` if the job fails,
        or :class:`~geartrain.errors.GearmanTimeout` if it has not ended within ``timeout`` seconds (the job is
        then forgotten by this client; the server and worker are not told). ``meta``: as for :meth:`submit`.
        """
        job = new_job(function, data, unique, priority, False, None, reducer)
        if on_event is not None:
            job.add_callback(on_event)
        if meta is None and (self._tracer is None or not tracing.in_trace()):
            await self._run(job, timeout, wait_result=True)
        else:
            with carrying(job, meta, self._tracer):
                await self._run(job, timeout, wait_result=True)
        outcome = job._outcome  # done: skip the extra coroutine of job.result()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[no-any-return]

    async def _run(self, job: Job, timeout: float | None, wait_result: bool) -> None:
        try:
            if timeout is None:
                await self._send_job(job, wait_result)
            else:
                async with asyncio.timeout(timeout):
                    await self._send_job(job, wait_result)
        except TimeoutError:
            job._abandon()
            raise GearmanTimeout(
                f"job {job.function!r} not {'done' if wait_result else 'created'} in {timeout}s"
            ) from None
        except asyncio.CancelledError:
            job._abandon()
            raise

    async def _send_job(self, job: Job, wait_result: bool) -> None:
        tried: list[str] = []
        for server in self._candidates(job.unique):
            connection = server.connection
            if connection is None or not connection.alive:
                try:
                    connection = await self._connect(server)
                except ConnectionLost as exc:
                    tried.append(f"{server.name} ({exc})")
                    continue
            if job._meta is not None or connection.meta_answer is not None:
                await connection.use_meta()
            connection.submit(job)
            if wait_result:
                while not job.done():
                    await job._changed()
            else:
                while not job.done() and job.handle is None:
                    await job._created()
            error = job.exception()
            if job.handle is None and error is not None:
                if not isinstance(error, ConnectionLost) or self._closed:
                    raise error  # refused by the server (an ERROR packet), or the client was closed
                if isinstance(error.__cause__, PermissionDenied):
                    raise error.__cause__  # the server refused our secret: another server would too
                # The server went away before acknowledging the job: nothing was created there, try the next one.
                tried.append(f"{server.name} (lost before JOB_CREATED)")
                job._rearm()
                continue
            return
        raise NoServersAvailable("no server took the job: " + (", ".join(tried) or "all are backing off"))

    # ------------------------------------------------------------------ choosing and connecting

    def _candidates(self, unique: str) -> Iterator[_Server]:
        """Servers in the order to try them: the preferred one first, then the others in turn."""
        servers = self._servers
        count = len(servers)
        if count == 1:
            start = 0
        elif unique:
            # crc32 rather than hash(): every client process must send a given key to the same server.
            start = zlib.crc32(unique.encode()) % count
        else:
            start = self._next
            self._next = (start + 1) % count
        now = time.monotonic()
        for offset in range(count):
            server = servers[(start + offset) % count]
            if server.connection is not None or server.retry_at <= now:
                yield server

    async def _connect(self, server: _Server) -> ClientConnection:
        connection = server.connection
        if connection is not None and connection.alive:
            return connection
        if self._closed:
            raise ConnectionLost("client is closed")
        if server.connecting is None:
            server.connecting = asyncio.ensure_future(self._open(server))
            # Its callers may all have timed out when it fails: its error is theirs (or nobody's), not the loop's
            # "Task exception was never retrieved" with a traceback at exit.
            server.connecting.add_done_callback(_consume_error)
        # Shielded: one caller timing out must not abort a connect that others are waiting for too.
        return await asyncio.shield(server.connecting)

    async def _open(self, server: _Server) -> ClientConnection:
        try:
            connection = await open_connection(
                lambda: ClientConnection(server.address), server.address, self.connect_timeout, self.tls
            )
        except ConnectionLost:
            delay = server.backoff.next_delay()
            server.retry_at = time.monotonic() + delay
            log.warning("%s: unreachable, next attempt in %.2fs", server.name, delay)
            raise
        finally:
            server.connecting = None
        assert isinstance(connection, ClientConnection)
        server.backoff.reset()
        server.connection = connection
        connection.closed.add_done_callback(lambda _: self._on_lost(server, connection))
        if self._auth is not None:  # first, so that everything after it is judged with this identity
            connection.authenticate(self._auth)
        if self.client_id is not None:
            connection.send(encode_request(P.SET_CLIENT_ID, self.client_id.encode()))
        if self.exceptions:
            # Not awaited: replies keep request order, so the OPTION_RES is consumed in its turn.
            option = connection.request(P.OPTION_REQ, P.OPTION_RES, b"exceptions")
            option.add_done_callback(partial(_option_answered, server.name))
        return connection

    def _on_lost(self, server: _Server, connection: ClientConnection) -> None:
        if server.connection is connection:
            server.connection = None
            if not self._closed:
                # A server that drops us is probably going down: do not reconnect at once.
                server.retry_at = time.monotonic() + server.backoff.next_delay()
                log.warning("%s: connection lost (%s)", server.name, connection.lost_reason or "closed by server")

    async def _ask(
        self, server: _Server, ptype: int, expect: int, *args: bytes, timeout: float | None, what: str
    ) -> tuple[bytes, ...]:
        """One request with a direct reply, on ``server``'s connection (opened if need be)."""
        try:
            async with asyncio.timeout(timeout):
                connection = await self._connect(server)
                return await connection.request(ptype, expect, *args)
        except TimeoutError:
            raise GearmanTimeout(f"{what}: no answer from {server.name} in {timeout}s") from None

    # ------------------------------------------------------------------ queries

    async def get_status(self, job: Job | str, *, timeout: float | None = None) -> JobStatus:
        """GET_STATUS for a job (asked of the server that holds it) or a handle (asked of each server in turn
        until one knows it: handles from different servers can look alike)."""
        if isinstance(job, Job):
            if job.handle is None:
                raise ValueError("the job has no handle yet")
            handle = job.handle
            servers = [s for s in self._servers if s.name == job.server] or self._servers
        else:
            handle, servers = job, self._servers
        answer: JobStatus | None = None
        for server in servers:
            try:
                raw = handle.encode("latin-1")
                args = await self._ask(server, P.GET_STATUS, P.STATUS_RES, raw, timeout=timeout, what="GET_STATUS")
            except ConnectionLost:
                continue
            answer = JobStatus(handle, args[1] == b"1", args[2] == b"1", to_int(args[3]), to_int(args[4]))
            if answer.known:
                return answer
        if answer is None:
            raise NoServersAvailable(f"none of {self.servers} could be asked")
        return answer

    async def get_status_unique(self, unique: str, *, timeout: float | None = None) -> UniqueStatus:
        """GET_STATUS_UNIQUE: asked first of the server the key hashes to (where submits with it go), then of the
        others until one knows it."""
        answer: UniqueStatus | None = None
        for server in self._candidates(unique):
            try:
                args = await self._ask(
                    server,
                    P.GET_STATUS_UNIQUE,
                    P.STATUS_RES_UNIQUE,
                    unique.encode(),
                    timeout=timeout,
                    what="GET_STATUS_UNIQUE",
                )
            except ConnectionLost:
                continue
            answer = UniqueStatus(
                args[0].decode("utf-8", "surrogateescape"),
                args[1] == b"1",
                args[2] == b"1",
                to_int(args[3]),
                to_int(args[4]),
                to_int(args[5]),
            )
            if answer.known:
                return answer
        if answer is None:
            raise NoServersAvailable(f"none of {self.servers} could be asked")
        return answer

    async def echo(self, data: Payload = b"", *, server: str | None = None, timeout: float | None = None) -> bytes:
        """ECHO_REQ: the server sends ``data`` back. Goes to ``server`` if given, else to the first reachable one."""
        payload = to_bytes(data)
        servers = [s for s in self._servers if server is None or s.name == server]
        if not servers:
            raise ValueError(f"{server!r} is not one of {self.servers}")
        failures = []
        for candidate in servers:
            try:
                args = await self._ask(candidate, P.ECHO_REQ, P.ECHO_RES, payload, timeout=timeout, what="ECHO")
            except ConnectionLost as exc:
                failures.append(str(exc))
                continue
            return args[0]
        raise NoServersAvailable("no server answered the echo: " + "; ".join(failures))

    async def set_option(self, name: str, *, timeout: float | None = None) -> None:
        """OPTION_REQ on every connected server (raises :class:`~geartrain.errors.UnknownOption` if refused)."""
        for server in self._servers:
            if server.connection is not None and server.connection.alive:
                await self._ask(server, P.OPTION_REQ, P.OPTION_RES, name.encode(), timeout=timeout, what="OPTION_REQ")

    async def cancel(self, job: Job, *, timeout: float | None = 10.0) -> bool:
        """Cancel a job on its server (admin ``cancel job``); foreground clients get WORK_FAIL.

        Returns ``False`` if the server no longer knows the job. Gearman has no binary packet for this, so it takes
        an admin connection to the job's server.
        """
        from geartrain.admin.client import AdminClient  # the admin client is only needed here

        if job.handle is None or job.server is None:
            raise ValueError("the job has no handle yet")
        async with AdminClient(job.server, timeout=timeout) as admin:
            return await admin.cancel_job(job.handle)
