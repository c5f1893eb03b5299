"""One client connection to one server: requests out, replies matched, job packets routed by handle.

A server answers the requests of one connection in the order it received them, so every request that gets a
direct reply (SUBMIT_* -> JOB_CREATED, GET_STATUS -> STATUS_RES, ECHO_REQ -> ECHO_RES, OPTION_REQ -> OPTION_RES, or
ERROR for any of them) waits in one FIFO, and each reply answers the oldest waiter. The packets a worker produces
later (WORK_DATA ... WORK_COMPLETE) carry the job handle and go to the jobs attached under it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import ClassVar, Protocol

from geartrain.client.events import WorkComplete, WorkData, WorkException, WorkFail, WorkStatus, WorkWarning, to_int
from geartrain.client.job import Job
from geartrain.client.transport import Address, PacketConnection
from geartrain.errors import ConnectionLost, ErrorCode, PeerProtocolError, PermissionDenied, UnknownOption, server_error
from geartrain.protocol.codec import encode_request
from geartrain.protocol.meta import OPTION as META_OPTION
from geartrain.protocol.packets import PacketType

P = PacketType
log = logging.getLogger("geartrain.client")


class _Pending(Protocol):
    @property
    def expect(self) -> int: ...

    def _reply(self, connection: ClientConnection, args: tuple[bytes, ...]) -> None: ...

    def _fail(self, error: BaseException) -> None: ...


class Request:
    """A request waiting for its direct reply (STATUS_RES, ECHO_RES, OPTION_RES ...)."""

    __slots__ = ("expect", "future")

    def __init__(self, expect: int, future: asyncio.Future[tuple[bytes, ...]]) -> None:
        self.expect = expect
        self.future = future

    def _reply(self, connection: ClientConnection, args: tuple[bytes, ...]) -> None:
        if not self.future.done():  # the caller may have timed out; the slot still had to be consumed
            self.future.set_result(args)

    def _fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)
            # Nobody may be waiting any more (timed out): do not let asyncio report the exception as lost.
            self.future.exception()


class _Coalesced:
    """Several submits of this connection attached to one job (same unique): the server sends every packet once
    per submit, back to back, so the copies are dealt out in turn and each job sees each packet once."""

    __slots__ = ("cursor", "jobs")

    def __init__(self, first: Job, second: Job) -> None:
        self.jobs = [first, second]
        self.cursor = 0

    def next(self) -> Job:
        job = self.jobs[self.cursor % len(self.jobs)]
        self.cursor += 1
        return job


class ClientConnection(PacketConnection):
    """The client side of one server connection (create with :func:`~geartrain.client.transport.open_connection`)."""

    HANDLERS: ClassVar[dict[int, str]] = {
        P.JOB_CREATED: "_job_created",
        P.STATUS_RES: "_status_res",
        P.STATUS_RES_UNIQUE: "_status_res_unique",
        P.ECHO_RES: "_echo_res",
        P.OPTION_RES: "_option_res",
        P.ERROR: "_error",
        P.WORK_DATA: "_work_data",
        P.WORK_WARNING: "_work_warning",
        P.WORK_STATUS: "_work_status",
        P.WORK_COMPLETE: "_work_complete",
        P.WORK_FAIL: "_work_fail",
        P.WORK_EXCEPTION: "_work_exception",
    }

    def __init__(self, address: Address) -> None:
        super().__init__(address)
        self._pending: deque[_Pending] = deque()
        self._jobs: dict[bytes, Job | _Coalesced] = {}
        #: The server took the geartrain-meta option: every submit from now on carries a meta block.
        self.meta = False
        #: Resolved once the option has been answered; ``None`` until a job with metadata asks for it.
        self.meta_answer: asyncio.Future[bool] | None = None

    @property
    def in_flight(self) -> int:
        """Requests waiting for a reply plus foreground jobs waiting for their result."""
        return len(self._pending) + len(self._jobs)

    # ------------------------------------------------------------------ requests

    def submit(self, job: Job) -> None:
        """Send ``job``'s submit packet; its JOB_CREATED (or ERROR) will be the reply after those already awaited."""
        if self._transport is None:
            job._fail(self.connection_error())
            return
        job._connection = self
        self.send(job._meta_packet() if self.meta else job.packet)
        self._pending.append(job)

    async def use_meta(self) -> bool:
        """Ask for the geartrain-meta option (once per connection) and wait for the answer; return whether the
        server took it. Every submit waits here while the option is being asked: the server reads each packet
        with the options in force when it arrives, so a submit sent meanwhile would be read the wrong way."""
        answer = self.meta_answer
        if answer is None:
            answer = self.meta_answer = self._loop.create_future()
            self.request(P.OPTION_REQ, P.OPTION_RES, META_OPTION).add_done_callback(self._meta_answered)
        if not answer.done():
            await asyncio.shield(answer)  # shared: one caller giving up must not cancel the others' wait
        return self.meta

    def _meta_answered(self, reply: asyncio.Future[tuple[bytes, ...]]) -> None:
        error = self.connection_error() if reply.cancelled() else reply.exception()
        if error is None:
            self.meta = True
        else:
            # gearmand answers ERROR: jobs go as they always did, and their metadata stays here.
            log.debug(
                "%s: no geartrain-meta option (%s); job metadata is not sent on this connection", self.name, error
            )
        assert self.meta_answer is not None
        self.meta_answer.set_result(self.meta)

    def authenticate(self, option: bytes) -> None:
        """Present a secret (``OPTION_REQ auth=...``, from :func:`~geartrain.client.transport.auth_option`); not
        awaited, since replies keep request order. A refusal becomes the reason this connection is lost."""
        self.request(P.OPTION_REQ, P.OPTION_RES, option).add_done_callback(self._auth_answered)

    def _auth_answered(self, answer: asyncio.Future[tuple[bytes, ...]]) -> None:
        error = None if answer.cancelled() else answer.exception()
        if isinstance(error, UnknownOption):
            log.debug("%s: the server has no access control; the secret was not needed", self.name)
        elif isinstance(error, PermissionDenied):
            # The server closes the connection after this; whatever waits on it should learn why.
            log.error("%s: the server refused our secret", self.name)
            self.lost_reason = error
        elif error is not None:
            log.warning("%s: presenting the secret failed: %s", self.name, error)

    def request(self, ptype: int, expect: int, *args: bytes) -> asyncio.Future[tuple[bytes, ...]]:
        """Send a request and return a future for the arguments of its reply (``expect``)."""
        future: asyncio.Future[tuple[bytes, ...]] = self._loop.create_future()
        waiter = Request(expect, future)
        if self._transport is None:
            waiter._fail(self.connection_error())
            return future
        self.send(encode_request(ptype, *args))
        self._pending.append(waiter)
        return future

    def attach(self, handle: bytes, job: Job) -> None:
        """Route the packets of ``handle`` to ``job`` (called when its JOB_CREATED arrives)."""
        current = self._jobs.get(handle)
        if current is None:
            self._jobs[handle] = job
        elif type(current) is Job:
            self._jobs[handle] = _Coalesced(current, job)
        else:
            assert isinstance(current, _Coalesced)
            current.jobs.append(job)

    def detach(self, job: Job) -> None:
        """Stop routing packets to ``job`` (the caller gave up on it)."""
        if job.handle is None:
            return  # still waiting for JOB_CREATED: Job._reply sees it is abandoned
        handle = job.handle.encode("latin-1")
        current = self._jobs.get(handle)
        if current is job:
            del self._jobs[handle]
        elif isinstance(current, _Coalesced) and job in current.jobs:
            # Keep the slot: the server still sends one copy per submit, and the copies must still be dealt out.
            current.jobs[current.jobs.index(job)] = _DETACHED

    # ------------------------------------------------------------------ replies to requests

    def _answer(self, ptype: int, args: tuple[bytes, ...]) -> None:
        pending = self._pending
        if not pending:
            self._desync(f"{PacketType(ptype).name} without a request")
            return
        head = pending.popleft()
        if head.expect != ptype:
            error = PeerProtocolError(
                ErrorCode.UNEXPECTED_PACKET, f"expected {PacketType(head.expect).name}, got {ptype}"
            )
            head._fail(error)
            self._desync(str(error))
            return
        head._reply(self, args)

    def _job_created(self, args: tuple[bytes, ...]) -> None:
        self._answer(P.JOB_CREATED, args)

    def _status_res(self, args: tuple[bytes, ...]) -> None:
        self._answer(P.STATUS_RES, args)

    def _status_res_unique(self, args: tuple[bytes, ...]) -> None:
        self._answer(P.STATUS_RES_UNIQUE, args)

    def _echo_res(self, args: tuple[bytes, ...]) -> None:
        self._answer(P.ECHO_RES, args)

    def _option_res(self, args: tuple[bytes, ...]) -> None:
        self._answer(P.OPTION_RES, args)

    def _error(self, args: tuple[bytes, ...]) -> None:
        code, text = (arg.decode("utf-8", "replace") for arg in args)
        error = server_error(code, text)
        if not self._pending:
            log.warning("%s: server error without a request: %s", self.name, error)
            return
        self._pending.popleft()._fail(error)

    def _desync(self, what: str) -> None:
        log.error("%s: reply out of step (%s); closing the connection", self.name, what)
        self.lost_reason = PeerProtocolError(ErrorCode.UNEXPECTED_PACKET, what)
        self.abort()

    # ------------------------------------------------------------------ job packets

    def _target(self, handle: bytes) -> Job | None:
        entry = self._jobs.get(handle)
        if entry is None or type(entry) is Job:
            return entry
        assert isinstance(entry, _Coalesced)
        return entry.next()

    def _work_data(self, args: tuple[bytes, ...]) -> None:
        job = self._target(args[0])
        if job is not None:
            job._event(WorkData(args[1]))

    def _work_warning(self, args: tuple[bytes, ...]) -> None:
        job = self._target(args[0])
        if job is not None:
            job._event(WorkWarning(args[1]))

    def _work_status(self, args: tuple[bytes, ...]) -> None:
        job = self._target(args[0])
        if job is not None:
            job._event(WorkStatus(to_int(args[1]), to_int(args[2])))

    def _final(self, handle: bytes, event: WorkComplete | WorkFail | WorkException) -> None:
        # The first copy ends every job attached under the handle; later copies find nothing and are dropped.
        entry = self._jobs.pop(handle, None)
        if entry is None:
            return
        if type(entry) is Job:
            entry._finish(event)
            return
        assert isinstance(entry, _Coalesced)
        for job in entry.jobs:
            job._finish(event)

    def _work_complete(self, args: tuple[bytes, ...]) -> None:
        self._final(args[0], WorkComplete(args[1]))

    def _work_fail(self, args: tuple[bytes, ...]) -> None:
        handle = args[0]
        # gearmand 1.1.20 turns a WORK_EXCEPTION into WORK_FAIL "handle\0" for clients without the exceptions option.
        if handle.endswith(b"\0"):
            handle = handle.rstrip(b"\0")
        self._final(handle, WorkFail())

    def _work_exception(self, args: tuple[bytes, ...]) -> None:
        self._final(args[0], WorkException(args[1]))

    # ------------------------------------------------------------------ end

    def lost(self, error: ConnectionLost) -> None:
        pending, self._pending = self._pending, deque()
        jobs, self._jobs = self._jobs, {}
        for waiter in pending:
            waiter._fail(error)
        for entry in jobs.values():
            for job in entry.jobs if isinstance(entry, _Coalesced) else (entry,):
                job._fail(error)


class _Detached(Job):
    """Stands in a coalesced slot for a job whose caller gave up; whatever it receives is dropped."""

    def __init__(self) -> None:  # no event loop needed: it never waits
        self.events = []
        self._callbacks = []
        self._waiters = []
        self._outcome = None
        self._connection = None
        self.handle = None

    def _event(self, event: object) -> None:
        pass

    def _finish(self, event: object) -> None:
        pass

    def _fail(self, error: BaseException) -> None:
        pass


_DETACHED = _Detached()
