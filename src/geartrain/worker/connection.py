"""One worker connection to one server: its sleep/grab state, and the packets a server sends a worker.

The worker cycle on each connection: GRAB_JOB_ALL; on JOB_ASSIGN_* run the job (and grab again while there is
room); on NO_JOB send PRE_SLEEP and wait for NOOP, which says a job may be waiting. Which connection may grab
when is the :class:`~geartrain.worker.worker.Worker`'s decision (it holds the concurrency budget); this class
keeps the per-connection state and turns packets into calls on the worker.
"""

from __future__ import annotations

import logging
from typing import ClassVar, Protocol

from geartrain.client.transport import Address, PacketConnection
from geartrain.errors import ConnectionLost
from geartrain.protocol.codec import encode_request
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
    """

    HANDLERS: ClassVar[dict[int, str]] = {
        P.NOOP: "_noop",
        P.NO_JOB: "_no_job",
        P.JOB_ASSIGN: "_job_assign",
        P.JOB_ASSIGN_UNIQ: "_job_assign_uniq",
        P.JOB_ASSIGN_ALL: "_job_assign_all",
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

    @property
    def can_grab(self) -> bool:
        return self.grabs < self.burst and not self.sleeping and not self.empty and self.alive

    def grab(self) -> None:
        self.grabs += 1
        self.send(GRAB_JOB_ALL)

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
        self._scheduler.assigned(self, handle, function, b"", None, data)

    def _job_assign_uniq(self, args: tuple[bytes, ...]) -> None:
        self._got_job()
        handle, function, unique, data = args
        self._scheduler.assigned(self, handle, function, unique, None, data)

    def _job_assign_all(self, args: tuple[bytes, ...]) -> None:
        self._got_job()
        handle, function, unique, reducer, data = args
        self._scheduler.assigned(self, handle, function, unique, reducer, data)

    def _error(self, args: tuple[bytes, ...]) -> None:
        # Typically JOB_NOT_FOUND for a result the server no longer expects (the job timed out and was requeued).
        code, text = (arg.decode("utf-8", "replace") for arg in args)
        log.warning("%s: server error %s: %s", self.name, code, text)

    def lost(self, error: ConnectionLost) -> None:
        self._scheduler.disconnected(self, error)
