"""The engine's shared state and the job life cycle every rule module builds on.

A job is queued (:meth:`EngineState._enqueue`), handed to a worker, then finished (:meth:`EngineState._finish`),
requeued (:meth:`EngineState._requeue`) or abandoned (:meth:`EngineState._abandon`); output goes to the peers'
outboxes through :meth:`EngineState._send`: encoded for a socket; what a client hears goes to an in-process peer
(an HTTP submission, a cluster relay) as packets instead (:meth:`EngineState._reply`).
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from geartrain.protocol.codec import LARGE_PACKET, encode, encode_head
from geartrain.protocol.packets import Packet, PacketType
from geartrain.server.core import replies
from geartrain.server.core.config import EngineConfig
from geartrain.server.core.jobs import UNIQUE_BY_PAYLOAD, HandleFactory, Job
from geartrain.server.core.peers import Peer, PendingAck
from geartrain.server.core.queues import Function
from geartrain.server.core.records import Removal, StoredJob, new_removal
from geartrain.server.core.sides import Side, side_removal
from geartrain.server.core.stats import EngineStats

if TYPE_CHECKING:
    from geartrain.server.core.lifecycle import Lifecycle

log = logging.getLogger("geartrain.engine")

P = PacketType

Handler = Callable[[Peer, tuple[bytes, ...], float], None]

# Ghosts (freed jobs left in a queue, see EngineState._drop_abandoned) a function may hold before a sweep is due.
GHOST_SWEEP = 1024
#: A worker with more functions than this looks for a job among the functions that have one
#: (WorkerRules._wide_candidates) instead of walking its own list.
WIDE_WORKER = 64


class EngineState:
    """Jobs, functions and connections, and the transitions they share."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self.functions: dict[bytes, Function] = {}
        self.jobs: dict[bytes, Job] = {}
        self.peers: dict[int, Peer] = {}
        self.dirty: list[Peer] = []
        self.stats = EngineStats()
        self.shutdown_mode: str | None = None  # None, "now" or "graceful": set by the admin `shutdown` command
        # Limits and draining (see Engine.begin_drain): workload bytes of every job held, the ERROR that
        # answers submits while the server drains, and whether queued jobs are held back from workers meanwhile.
        self.queued_bytes = 0
        self.refuse_submits: replies.ErrorReply | None = None
        self.hold_queued = False
        self._new_handle = HandleFactory(self.config.handle_prefix)
        self._seq = 0  # tie-breaker for timer heaps and creation order of functions
        # Timer heaps (epoch jobs not yet due; running jobs of workers with a CAN_DO_TIMEOUT). Never rebound: the
        # transport holds both lists and calls next_deadline only while one is non-empty.
        self.epoch_heap: list[tuple[int, int, Job]] = []
        self.timeout_heap: list[tuple[float, int, Job, Peer, int]] = []
        # While some worker has more than WIDE_WORKER functions: every function with a job in its queues (and
        # some whose queues emptied since: a GRAB_JOB that looks through them takes those out). Such a worker
        # looks here for a function with a job rather than through its own list (WorkerRules._wide_candidates).
        self.wide_workers = 0
        self.runnable: dict[Function, None] = {}
        # Store operations of the current loop turn (see geartrain.server.core.durable).
        self.store_adds: list[StoredJob] = []
        self.sided: set[Job] = set()  # jobs with a side record (core/sides.py): it is deleted with theirs
        self.overrides_replayed = False  # run-time policy changes came with the replay
        self.replayed_sides: dict[tuple[bytes, bytes], Side] = {}  # (key, function) -> side, until replay_done
        self.store_removes: list[Removal] = []
        self.store_removed: set[Removal] = set()  # store_removes as a set: a re-add of one of them cancels it
        self.store_jobs: list[tuple[Job | None, bool]] = []
        self.store_barriers: list[PendingAck] = []
        # Cluster mode: functions whose workers went to sleep with nothing to do (the node should claim jobs for
        # them), and per function the jobs being stored as this node's own (see DurableRules._record_add).
        self.hungry: set[Function] | None = set() if self.config.cluster else None
        self.owned_pending: dict[Function, int] = {}
        # Cluster mode: handles of jobs this node claimed back from the store before it heard that the store took
        # them (DurableRules.restore): kept and queued here at the commit instead of being left to the cluster.
        self.claimed_back: set[bytes] = set()
        # Cluster mode: the peer that stands for the other nodes' workers (foreground jobs of this node's clients
        # that run elsewhere are assigned to it), and those jobs by their stored key.
        self.cluster_relay: Peer | None = None
        self.remote_jobs: dict[tuple[bytes, bytes], Job] = {}
        # Of those, the ones another node stored first under the same unique (its job, which this node's clients
        # coalesced onto: never deleted from here), and those the cluster node has yet to register as watched.
        self.watched: set[tuple[bytes, bytes]] = set()
        self.watch_requests: list[tuple[bytes, bytes]] = []
        # With a policy file: retries, the dead set, pause (core/lifecycle.py); None otherwise.
        self.lifecycle: Lifecycle | None = None
        # Cluster mode: GET_STATUS (and GET_STATUS_UNIQUE: the unique) of jobs this node does not hold, answered
        # once the store is asked; and the last WORK_STATUS of background jobs running here, for the store.
        self.status_lookups: list[tuple[bytes, bytes | None, PendingAck]] = []
        self.progress: dict[tuple[bytes, bytes], tuple[int, int]] = {}
        # Cluster mode: the handles of background jobs this node acknowledged and left to the cluster, by unique, so
        # that GET_STATUS_UNIQUE (which names no function) finds them in the store; the newest ELSEWHERE_LIMIT.
        self.elsewhere_by_unique: dict[bytes, bytes] = {}

    # ------------------------------------------------------------------ output

    def _send(self, peer: Peer, data: bytes) -> None:
        """Queue ``data`` for ``peer``: the one place output is appended to an outbox (the transport flushes the
        peers listed in ``dirty`` after each input)."""
        if peer.closed:
            return
        if not peer.outbox:
            self.dirty.append(peer)
        peer.outbox.append(data)

    def _send_structured(self, peer: Peer, packet: Packet) -> None:
        """:meth:`_send` for an in-process peer: the packet as it is, for the sink reads packets, not bytes."""
        if peer.closed:
            return
        if not peer.outbox:
            self.dirty.append(peer)
        peer.outbox.append(packet)

    def _reply(self, peer: Peer, ptype: int, args: tuple[bytes, ...]) -> None:
        """Queue a packet that a client hears (a job's result, an ERROR): encoded for a socket, as a packet for an
        in-process peer. The replies of worker and admin requests are encoded directly (no in-process peer makes
        those)."""
        if peer.in_process:
            self._send_structured(peer, Packet(ptype, args))
        else:
            self._send_packet(peer, ptype, args)

    def _send_error(self, peer: Peer, error: replies.ErrorReply) -> None:
        """:meth:`_reply` for an ERROR encoded once (``replies.ErrorReply``)."""
        if peer.in_process:
            self._send_structured(peer, Packet(replies.ERROR, error.args))
        else:
            self._send(peer, error.packet)

    def _send_created(self, peer: Peer, handle: bytes, created: bytes) -> None:
        """JOB_CREATED for ``handle``, whose encoding ``created`` the submit made (one concatenation per job)."""
        if peer.in_process:
            self._send_structured(peer, Packet(replies.JOB_CREATED, (handle,)))
        else:
            self._send(peer, created)

    def _send_packet(self, peer: Peer, ptype: int, args: tuple[bytes, ...]) -> None:
        """Queue a packet whose last argument is a payload (a job's data, a result): a large one is queued as it
        is, after the packet's head, so that it is never copied on its way (see :data:`LARGE_PACKET`)."""
        if len(args[-1]) < LARGE_PACKET:
            self._send(peer, encode(ptype, *args))
        else:
            self._send_large(peer, encode_head(ptype, args), args[-1])

    def _send_large(self, peer: Peer, head: bytes, payload: bytes) -> None:
        if peer.closed:
            return
        self._send(peer, head)
        peer.outbox.append(payload)
        peer.large = True  # the transport writes the payload on its own instead of joining it to the rest

    def _hold_place(self, peer: Peer) -> PendingAck:
        """A place in ``peer``'s outbox for a reply known later (a JOB_CREATED once the store holds the job, a
        barrier, a lookup's answer): replies queued after it wait behind it. Placed only if ``peer`` is open."""
        ack = PendingAck(peer)
        if not peer.closed:
            if not peer.outbox:
                self.dirty.append(peer)
            peer.outbox.append(ack)
            peer.unresolved += 1
        return ack

    def reply(self, peer: Peer, data: bytes) -> None:
        """Queue already-encoded bytes (an admin reply, say) for ``peer``."""
        self._send(peer, data)

    def error(self, peer: Peer, code: str, text: str) -> None:
        """Queue an ERROR for ``peer`` (a socket or an in-process peer; see :meth:`_reply`)."""
        self._reply(peer, replies.ERROR, (code.encode(), text.encode()))

    # ------------------------------------------------------------------ functions

    def function(self, name: bytes) -> Function:
        """The function called ``name``, created on first mention (functions are never collected)."""
        function = self.functions.get(name)
        if function is None:
            self._seq += 1
            function = self.functions[name] = Function(name, self._seq, self.stats.for_function(name))
            if self.lifecycle is not None:
                self.lifecycle.limit(function, name)  # its policy's concurrency
        return function

    def _enqueue(self, job: Job, now: float) -> None:
        function = job.function
        function.queued[job.priority] += 1
        job.since = job.when if job.when > now else now
        if job.when > now:
            self._seq += 1
            heapq.heappush(self.epoch_heap, (job.when, self._seq, job))
            return
        function.queues[job.priority].append(job)
        if self.wide_workers:
            self.runnable[function] = None
        if function.sleepers:
            self._wake(function)

    def abilities_changed(self, peer: Peer) -> None:
        """After ``peer``'s abilities changed: count it among the workers of many functions or not, and keep
        :attr:`runnable` only while there is one (a dict write per queued job the others do not need)."""
        wide = len(peer.abilities) > WIDE_WORKER
        if wide == peer.wide:
            return
        peer.wide = wide
        self.wide_workers += 1 if wide else -1
        peer.ranks = {}
        if wide:  # the first of several entries of one function is the one that counts: it comes last here
            for rank, function in enumerate(reversed(peer.abilities)):
                peer.ranks[function] = rank
            peer.rank_top, peer.rank_bottom = len(peer.abilities), 0
        if wide and self.wide_workers == 1:
            self.runnable = {f: None for f in self.functions.values() if f.has_queued()}
        elif not self.wide_workers:
            self.runnable = {}

    def _release_hold(self, function: Function) -> None:
        """A running job of a held function ended: below its concurrency again, its sleepers are woken."""
        if function.update_held() and function.sleepers and function.has_runnable():
            self._wake(function)

    def wake_sleepers(self, function: Function) -> None:
        """A function that could not hand out jobs can again (resumed): wake its sleepers if it has some."""
        if function.sleepers and function.has_runnable():
            self._wake(function)

    def _wake(self, function: Function) -> None:
        """Send NOOP to the function's sleeping workers: one per sleep, at most ``worker_wakeup`` of them."""
        if function.held:
            return
        sleepers = function.sleepers
        limit = self.config.worker_wakeup
        woken = 0
        while sleepers:
            peer = next(iter(sleepers))
            del sleepers[peer]
            peer.unslept.append(function)  # listed again at its next PRE_SLEEP
            if peer.sleeping and not peer.woken and not peer.closed:
                peer.woken = True
                self._send(peer, replies.NOOP)
                woken += 1
                if woken == limit:
                    return

    def _forward_packet(self, job: Job, ptype: int, args: tuple[bytes, ...]) -> None:
        """:meth:`_reply` to each of the job's clients, encoded once."""
        clients = job.clients
        if not clients:
            return
        if len(args[-1]) < LARGE_PACKET:
            packet = encode(ptype, *args)
            for client in clients:
                if client.in_process:
                    self._send_structured(client, Packet(ptype, args))
                else:
                    self._send(client, packet)
        else:
            head = encode_head(ptype, args)
            for client in clients:
                if client.in_process:
                    self._send_structured(client, Packet(ptype, args))
                else:
                    self._send_large(client, head, args[-1])

    # ------------------------------------------------------------------ job endings

    def _finish(self, job: Job) -> None:
        """A running job ended (complete, fail, exception, or dropped after too many tries)."""
        # _detach spelt out: this runs once per job, and the call measured +1.4 % instructions per round trip.
        worker = job.worker
        if worker is not None:
            worker.assigned.pop(job.handle, None)
            job.worker = None
            job.function.running -= 1
            if job.function.held:
                self._release_hold(job.function)
            if job.store_key is not None and self.config.persistent and self.config.hold_after_result:
                self._barrier(worker)
        self._free(job)

    def _detach(self, job: Job) -> Peer | None:
        """Take a running job off its worker (returned; ``None`` if it had none)."""
        worker = job.worker
        if worker is not None:
            worker.assigned.pop(job.handle, None)
            job.worker = None
            job.function.running -= 1
            if job.function.held:
                self._release_hold(job.function)
        return worker

    def failed_attempts(self, job: Job) -> int:
        """The job's attempts the life cycle counted as failed (0 without a policy file)."""
        return self.lifecycle.attempts(job) if self.lifecycle is not None else 0

    def _attempt_failed(self, job: Job, error: bytes, now: float) -> None:
        """A background job's attempt failed (its clients, if any, were told): detach it from its worker and its
        clients, and let the life cycle retry it later or bury it."""
        assert self.lifecycle is not None
        worker = self._detach(job)
        for client in job.clients:
            client.waiting.discard(job)
        job.clients = ()
        job.numerator = job.denominator = 0
        buried = self.lifecycle.failed(job, error, now)
        if buried and worker is not None and self.config.persistent and self.config.hold_after_result:
            self._barrier(worker)  # as after a result: its next reply waits until the store has buried the job

    def _barrier(self, peer: Peer) -> None:
        """Hold ``peer``'s next replies until the store has applied what is recorded now.

        After a stored job's result, a worker's next reply (to its next GRAB) tells it the job is gone from the
        store: a job it saw finish that way never runs again after a crash.
        """
        if not peer.closed:
            self.store_barriers.append(self._hold_place(peer))

    def _free(self, job: Job) -> None:
        """Forget a job that is in no queue and on no worker."""
        if self.jobs.pop(job.handle, None) is None:
            return
        function = job.function
        function.total -= 1
        self.queued_bytes -= len(job.data)
        if job.unique:  # most jobs have no unique and were never stored: no call for them
            self._unindex(job)
        if job.store_key is not None:
            self._unstore(job)
        if self.lifecycle is not None:
            self.lifecycle.forget(job.handle)
        if job.clients:
            for client in job.clients:
                client.waiting.discard(job)
            job.clients = ()

    def _unindex(self, job: Job) -> None:
        if not job.unique:
            return
        function = job.function
        if job.unique == UNIQUE_BY_PAYLOAD:
            index, key = function.by_payload, job.data
        else:
            index, key = function.by_unique, job.unique
        if index.get(key) is job:
            del index[key]

    def _unstore(self, job: Job) -> None:
        if job.store_key is not None:
            removal = new_removal(job.store_key, job.function.name)
            self.store_removes.append(removal)
            self.store_removed.add(removal)
            if self.sided and job in self.sided:
                self.sided.discard(job)
                side = side_removal(job.store_key, job.function.name)
                self.store_removes.append(side)
                self.store_removed.add(side)
            job.store_key = None

    def _abandon(self, job: Job) -> None:
        """Nobody wants the job any more: a queued one is skipped later, a running one may still finish."""
        job.ignore = True
        self._unindex(job)
        if job.worker is not None and job.worker is self.cluster_relay and job.store_key is not None:
            remote = (job.store_key, job.function.name)
            self.remote_jobs.pop(remote, None)
            if remote in self.watched:
                self.watched.discard(remote)
                job.store_key = None  # another node's job, which may have other clients: it runs on
        self._unstore(job)
        if job.worker is not None and job.worker is self.cluster_relay:
            # Left to another node for a client that is gone: its record is deleted (it runs there only if that
            # node already took it, as a running job runs on); nothing here waits for it any more.
            self._finish(job)

    def _drop_abandoned(self, job: Job) -> None:
        """Forget at once a queued job nobody waits for any more (its HTTP request hung up), rather than when a
        worker reaches it, which for a function nobody serves is never. Gearman clients keep gearmand's way (the
        job stays counted until skipped). Taking it out of the middle of its queue would scan the queue, so it
        stays there as a *ghost*: freed and uncounted, skipped when popped (:meth:`_skip`), swept out when ghosts
        make up most of the function's queues."""
        function = job.function
        function.queued[job.priority] -= 1
        function.stats.abandoned += 1
        self._free(job)
        job.data = job.meta = b""  # a ghost holds no workload
        queue = function.queues[job.priority]
        if queue and queue[-1] is job:  # the newest job (or the next one out): it goes at no cost
            queue.pop()
            return
        if queue and queue[0] is job:
            queue.popleft()
            return
        function.ghosts += 1
        if function.ghosts > GHOST_SWEEP and function.ghosts * 2 > sum(len(queue) for queue in function.queues):
            for queue in function.queues:
                live = [queued for queued in queue if self.jobs.get(queued.handle) is queued]
                queue.clear()
                queue.extend(live)
            function.ghosts = 0

    def _skip(self, job: Job) -> None:
        """An abandoned or cancelled job a worker reached, just taken off its queue (and its count): freed now. A
        ghost (:meth:`_drop_abandoned`) was freed and uncounted already: its count is given back instead."""
        if self.jobs.get(job.handle) is job:
            self._free(job)
        else:
            function = job.function
            function.queued[job.priority] += 1
            function.ghosts -= 1

    def cancel(self, handle: bytes) -> bool:
        """Admin `cancel job`: its foreground clients get WORK_FAIL; ``False`` if there is no such job."""
        job = self.jobs.get(handle)
        if job is None:
            return False
        if job.ignore:
            return True
        self._forward_packet(job, replies.WORK_FAIL, (job.handle,))
        for client in job.clients:
            client.waiting.discard(job)
        job.clients = ()
        self._abandon(job)  # ``ignore`` now: a background job keeps its kind, but is neither retried nor kept
        return True

    def _requeue(self, job: Job, now: float, failure: bytes | None = None) -> None:
        """Take a job back from its worker (gone, CANT_DO, timed out) and put it at the tail of its queue.
        ``failure``: what went wrong, when it counts as a failed attempt (its worker disconnected, it timed out):
        with a policy file, a background job is then retried later or dead (core/lifecycle.py)."""
        if failure is not None and self.lifecycle is not None and job.background and not job.ignore:
            self._attempt_failed(job, failure, now)
            return
        self._detach(job)
        if job.ignore:
            self._free(job)
            return
        job.retries += 1
        job.numerator = job.denominator = 0
        retries = self.config.job_retries
        if retries > 0 and job.retries >= retries:
            log.warning("Dropped job due to max retry count: %s %s", job.handle.decode(), job.unique.decode())
            job.function.stats.dropped += 1
            self._forward_packet(job, replies.WORK_FAIL, (job.handle,))
            self._free(job)
            return
        job.function.stats.requeued += 1
        self._enqueue(job, now)

    @property
    def job_count(self) -> int:
        return len(self.jobs)
