"""One worker connection to one server: its sleep/grab state, and the packets a server sends a worker.

The worker cycle on each connection: GRAB_JOB_ALL; on JOB_ASSIGN_* run the job (and grab again while there is
room); on NO_JOB send PRE_SLEEP and wait for NOOP, which says a job may be waiting. Which connection may grab
when is the :class:`~geartrain.worker.worker.Worker`'s decision (it holds the concurrency budget); this class
keeps the per-connection state and turns packets into calls on the worker.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import ClassVar, Protocol

from geartrain.client.transport import Address, PacketConnection
from geartrain.errors import ConnectionLost
from geartrain.protocol.codec import encode_request
from geartrain.protocol.meta import ATTEMPT, OPTION, MetaError, parse_meta, split_meta
from geartrain.protocol.packets import PacketType

P = PacketType
log = logging.getLogger("geartrain.worker")

GRAB_JOB_ALL = encode_request(P.GRAB_JOB_ALL)
PRE_SLEEP = encode_request(P.PRE_SLEEP)
MAX_BURST = 16


class Scheduler(Protocol):
    """What a :class:`WorkerConnection` reports to (implemented by :class:`~geartrain.worker.worker.Worker`)."""

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
    ) -> None: ...

    def no_job(self, connection: WorkerConnection) -> None: ...

    def woken(self, connection: WorkerConnection) -> None: ...

    def disconnected(self, connection: WorkerConnection, error: ConnectionLost) -> None: ...


class WorkerConnection(PacketConnection):
    """The worker side of one server connection.

    ``grabs``: GRAB_JOB_ALLs sent and not answered yet. ``burst``: how many may be outstanding at once; it starts
    at 1 after a wake-up and doubles (up to :data:`MAX_BURST`) while JOB_ASSIGNs follow each other, so a worker
    draining a backlog takes several jobs per round trip, and an idle one sends a single GRAB per wake-up.
    ``empty``: a NO_JOB came and outstanding grabs are still being answered (PRE_SLEEP follows the last one).
    ``sleeping``: PRE_SLEEP was sent and no NOOP has come yet. ``wanting``: in the worker's queue for a grab.
    ``meta``: the server took the geartrain-meta option, so each JOB_ASSIGN* data starts with a meta block.
    """

    HANDLERS: ClassVar[dict[int, str]] = {
        P.NOOP: "_noop",
        P.NO_JOB: "_no_job",
        P.JOB_ASSIGN: "_job_assign",
        P.JOB_ASSIGN_UNIQ: "_job_assign_uniq",
        P.JOB_ASSIGN_ALL: "_job_assign_all",
        P.OPTION_RES: "_option_res",
        P.ERROR: "_error",
    }

    def __init__(self, address: Address, scheduler: Scheduler) -> None:
        super().__init__(address)
        self._scheduler = scheduler
        self.grabs = 0
        self.burst = 1
        self.empty = False
        self.sleeping = False
        self.wanting = False
        self._last_assigned = False
        self.meta = False
        # OPTION_REQs sent and not answered yet: replies keep request order, so each OPTION_RES or ERROR that
        # comes while any is waiting answers the oldest.
        self._options: deque[bytes] = deque()

    @property
    def can_grab(self) -> bool:
        return self.grabs < self.burst and not self.sleeping and not self.empty and self.alive

    def grab(self) -> None:
        self.grabs += 1
        self.send(GRAB_JOB_ALL)

    def option(self, name: bytes) -> None:
        """OPTION_REQ ``name``, not awaited: the answer comes before the reply to anything sent after it."""
        self._options.append(name)
        self.send(encode_request(P.OPTION_REQ, name))

    def pre_sleep(self) -> None:
        self.sleeping = True
        self.empty = False
        self.send(PRE_SLEEP)

    # ------------------------------------------------------------------ packets

    def _noop(self, args: tuple[bytes, ...]) -> None:
        if self.sleeping:
            self.sleeping = False
            self._scheduler.woken(self)

    def _no_job(self, args: tuple[bytes, ...]) -> None:
        self.grabs -= 1
        self.empty = True
        self.burst = 1
        self._last_assigned = False
        self._scheduler.no_job(self)

    def _got_job(self) -> None:
        self.grabs -= 1
        self.empty = False  # whatever an earlier NO_JOB said, jobs are coming in: ask again
        if self._last_assigned and self.burst < MAX_BURST:
            self.burst *= 2
        self._last_assigned = True

    def _job_assign(self, args: tuple[bytes, ...]) -> None:
        # Only GRAB_JOB gets this form; servers answer our GRAB_JOB_ALL with _UNIQ or _ALL, but accept it anyway.
        self._got_job()
        handle, function, data = args
        self._assigned(handle, function, b"", None, data)

    def _job_assign_uniq(self, args: tuple[bytes, ...]) -> None:
        self._got_job()
        handle, function, unique, data = args
        self._assigned(handle, function, unique, None, data)

    def _job_assign_all(self, args: tuple[bytes, ...]) -> None:
        self._got_job()
        handle, function, unique, reducer, data = args
        self._assigned(handle, function, unique, reducer, data)

    def _assigned(self, handle: bytes, function: bytes, unique: bytes, reducer: bytes | None, data: bytes) -> None:
        if not self.meta:
            self._scheduler.assigned(self, handle, function, unique, reducer, data, 1, {})
            return
        if data.startswith(b"9:attempt=") and len(data) > 10 and 0x31 <= data[10] <= 0x39:
            # The usual block (attempt 1 to 9, no fields) read in a tenth of the general parser's time.
            self._scheduler.assigned(self, handle, function, unique, reducer, data[11:], data[10] - 0x30, {})
            return
        try:
            block, payload = split_meta(data)
        except MetaError as error:
            # The server is at fault; the job still runs, on its data as it came.
            log.warning("%s: job %r: %s; taking the whole data as the workload", self.name, handle, error)
            self._scheduler.assigned(self, handle, function, unique, reducer, data, 1, {})
            return
        fields = parse_meta(block)
        attempt = fields.pop(ATTEMPT, "")
        if not attempt.isdigit() or int(attempt) < 1:
            log.warning("%s: job %r: meta block without a valid attempt (%r); taking 1", self.name, handle, attempt)
            attempt = "1"
        self._scheduler.assigned(self, handle, function, unique, reducer, payload, int(attempt), fields)

    def _option_res(self, args: tuple[bytes, ...]) -> None:
        if not self._options:
            log.debug("%s: ignoring OPTION_RES without a request", self.name)
        elif self._options.popleft() == OPTION:
            self.meta = True

    def _error(self, args: tuple[bytes, ...]) -> None:
        code, text = (arg.decode("utf-8", "replace") for arg in args)
        if self._options and self._options.popleft() == OPTION:
            # gearmand does not know the option: jobs come as they always did, without attempt or metadata.
            log.debug("%s: no geartrain-meta option (%s: %s); jobs carry no attempt or metadata", self.name, code, text)
            return
        # Typically JOB_NOT_FOUND for a result the server no longer expects (the job timed out and was requeued).
        log.warning("%s: server error %s: %s", self.name, code, text)

    def lost(self, error: ConnectionLost) -> None:
        self._scheduler.disconnected(self, error)
