"""The job engine: every Gearman rule, as pure state transitions.

The engine takes ``(peer, packet, now)`` and appends the bytes to send to each affected peer's ``outbox``, listing
those peers in ``dirty`` for the transport to flush. It never touches a socket, a database or the clock: ``now``
(seconds since the epoch, as a float) is passed in, and timers are exposed as :meth:`Engine.next_deadline` and
:meth:`Engine.tick`.
"""

import heapq
from collections.abc import Callable

from geartrain.errors import ProtocolError
from geartrain.protocol.packets import PacketType
from geartrain.server.core import replies
from geartrain.server.core.clients import SUBMIT_KINDS
from geartrain.server.core.config import EngineConfig
from geartrain.server.core.peers import Peer
from geartrain.server.core.state import Handler, log
from geartrain.server.core.workers import WorkerRules

P = PacketType


class Engine(WorkerRules):
    """All jobs, functions and connections of one server."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        super().__init__(config)
        self._next_peer_id = 1
        # The dispatch table: indexed by packet type, an entry for every type the decoder lets through (the ones
        # a server does not expect answer INVALID_COMMAND). The transport hands it to the decoder as it is, so
        # entries are replaced in place, never the list.
        dispatch = self._build_dispatch()
        self.handlers: list[Handler] = [dispatch.get(ptype, self._not_expected) for ptype in range(max(P) + 1)]

    # ------------------------------------------------------------------ connections

    def connect(self, fd: int = -1, address: str = "127.0.0.1", port: int = 0, now: float = 0.0) -> Peer:
        """Register a new connection and return its state (``now``: when it was made, shown by the views)."""
        peer = Peer(self._next_peer_id, fd, address, port, now)
        self._next_peer_id += 1
        self.peers[peer.id] = peer
        return peer

    def disconnect(self, peer: Peer, now: float, drop_abandoned: bool = False) -> None:
        """The connection is gone: requeue what it was working on, detach it from what it was waiting for.

        A queued foreground job it alone waited for is abandoned: skipped when a worker reaches it, as gearmand
        does, or with ``drop_abandoned`` (an HTTP request that hung up) forgotten at once."""
        if peer.closed:
            return
        peer.closed = True
        peer.outbox.clear()
        peer.unresolved = 0
        self.peers.pop(peer.id, None)
        for job in list(reversed(peer.assigned.values())):  # gearmand puts the last-grabbed back first
            self._requeue(job, now, failure=b"worker disconnected")
        for function in set(peer.abilities):
            function.workers.pop(peer, None)
            function.sleepers.pop(peer, None)
        peer.abilities.clear()
        if peer.wide:
            self.abilities_changed(peer)
        for job in peer.waiting:
            job.clients = tuple(client for client in job.clients if client is not peer)
            if not job.clients and not job.background:
                queued = job.worker is None and job.acks is None  # (a foreground job is never scheduled)
                self._abandon(job)
                if drop_abandoned and queued:
                    self._drop_abandoned(job)
        peer.waiting.clear()

    def begin_drain(self, *, hold_queued: bool) -> None:
        """Graceful stop: refuse every submit from now on; with ``hold_queued``, hand no queued job to a worker
        either (they stay in the store for the next start), so only the running ones finish."""
        self.refuse_submits = replies.DRAINING
        self.hold_queued = hold_queued

    @property
    def running_count(self) -> int:
        """Jobs a worker is working on now."""
        return sum(function.running for function in self.functions.values())

    # ------------------------------------------------------------------ input

    def handle(self, peer: Peer, ptype: int, args: tuple[bytes, ...], now: float) -> None:
        """Process one binary packet from ``peer``."""
        handler = self.handlers[ptype] if 0 <= ptype < len(self.handlers) else self._not_expected
        handler(peer, args, now)

    def _not_expected(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        self._send_error(peer, replies.NOT_EXPECTED)

    def protocol_error(self, peer: Peer, error: ProtocolError) -> None:
        """Answer bad input with an ERROR packet; after a fatal one, close once it is sent."""
        self.error(peer, error.code, error.text)
        if error.fatal:
            peer.close_after_flush = True

    def wrap_handler(self, ptype: int, wrap: Callable[[Handler], Handler]) -> None:
        """Replace the handler of ``ptype`` by ``wrap(handler)``: how access control checks the packets it guards
        without any cost on the packets (or servers) it does not."""
        self.handlers[ptype] = wrap(self.handlers[ptype])

    def _build_dispatch(self) -> dict[int, Handler]:
        handlers: dict[int, Handler] = {
            P.CAN_DO: self._can_do,
            P.CAN_DO_TIMEOUT: self._can_do_timeout,
            P.CANT_DO: self._cant_do,
            P.RESET_ABILITIES: self._reset_abilities,
            P.PRE_SLEEP: self._pre_sleep,
            P.GRAB_JOB: self._grab_job,
            P.GRAB_JOB_UNIQ: self._grab_job_uniq,
            P.GRAB_JOB_ALL: self._grab_job_all,
            P.SUBMIT_JOB_EPOCH: self._submit_epoch,
            P.SUBMIT_REDUCE_JOB: self._reduce_handler(background=False),
            P.SUBMIT_REDUCE_JOB_BACKGROUND: self._reduce_handler(background=True),
            P.WORK_COMPLETE: self._work_complete,
            P.WORK_FAIL: self._work_fail,
            P.WORK_EXCEPTION: self._work_exception,
            P.WORK_STATUS: self._work_status,
            P.WORK_DATA: self._forward_handler(P.WORK_DATA),
            P.WORK_WARNING: self._forward_handler(P.WORK_WARNING),
            P.GET_STATUS: self._get_status,
            P.GET_STATUS_UNIQUE: self._get_status_unique,
            P.ECHO_REQ: self._echo,
            P.OPTION_REQ: self._option,
            P.SET_CLIENT_ID: self._set_client_id,
        }
        for ptype, (priority, background) in SUBMIT_KINDS.items():
            handlers[ptype] = self._submit_handler(ptype, priority, background)
        return handlers

    # ------------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do (epoch job due, worker timeout), or ``None``."""
        deadlines = []
        if self.epoch_heap:
            deadlines.append(float(self.epoch_heap[0][0]))
        if self.timeout_heap:
            deadlines.append(self.timeout_heap[0][0])
        if self.lifecycle is not None and (retry_at := self.lifecycle.next_deadline()) is not None:
            deadlines.append(retry_at)
        return min(deadlines) if deadlines else None

    def tick(self, now: float) -> None:
        """Run what is due: queue epoch jobs whose time has come, requeue jobs whose worker timed out."""
        epoch_heap = self.epoch_heap
        while epoch_heap and epoch_heap[0][0] <= now:
            _, _, job = heapq.heappop(epoch_heap)
            function = job.function
            function.queues[job.priority].append(job)
            if self.wide_workers:
                self.runnable[function] = None
            if function.sleepers and not job.ignore:
                self._wake(function)
        timeout_heap = self.timeout_heap
        while timeout_heap and timeout_heap[0][0] <= now:
            due, _, job, worker, attempt = heapq.heappop(timeout_heap)
            if job.worker is worker and job.retries == attempt and self.jobs.get(job.handle) is job:
                if self.lifecycle is not None and self.lifecycle.extended(job, due):
                    continue  # a WORK_STATUS since moved its deadline (another entry stands for it)
                log.warning(
                    "Worker timeout reached on job, requeueing: %s %s",
                    job.handle.decode(),
                    job.unique.decode(),
                )
                self._requeue(job, now, failure=b"timed out")
        if self.lifecycle is not None:
            self.lifecycle.due(now)
