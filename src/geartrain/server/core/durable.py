"""Durable background jobs: acknowledged only once the store holds them.

On a persistent server a background submit creates a *pending* job: indexed (so equal submits coalesce onto it) but
in no queue, with a :class:`PendingAck` in the submitter's outbox where its JOB_CREATED belongs. The transport takes
the turn's store operations with :meth:`DurableRules.take_store_batch`, applies them in one transaction, and reports
back with :meth:`DurableRules.store_committed` (acks become JOB_CREATED, jobs are queued) or
:meth:`DurableRules.store_failed` (acks become ERROR QUEUE_ERROR, the jobs vanish). The engine stays pure: it only
records what to store.
"""

from __future__ import annotations

from geartrain.errors import ErrorCode
from geartrain.protocol.packets import Packet
from geartrain.server.core import replies
from geartrain.server.core.jobs import UNIQUE_BY_PAYLOAD, Job
from geartrain.server.core.lifecycle import (
    CRON_ENTRY_FUNCTION,
    CRON_FUNCTION,
    PAUSED_FUNCTION,
    POLICY_FUNCTION,
    RESULT_PREFIX,
    DeadJob,
    dead_from_record,
    is_lifecycle_record,
    result_from_record,
)
from geartrain.server.core.overrides import restore_override
from geartrain.server.core.peers import Peer, PendingAck
from geartrain.server.core.queues import Function
from geartrain.server.core.records import Removal, StoredJob, storage_key
from geartrain.server.core.sides import SIDE_PREFIX, Side, side_from_record, side_removal
from geartrain.server.core.state import EngineState, log

#: Background jobs left to the cluster whose unique this node remembers for GET_STATUS_UNIQUE (the newest).
ELSEWHERE_LIMIT = 100_000


class StoreBatch:
    """One transaction's worth of store operations, and the jobs waiting for it.

    A plain class, not a dataclass: mypyc compiles this one to a native class, where the dataclass' ``__init__``
    stayed a Python function (about 2,000 instructions per batch, one batch per finished job in a drain)."""

    __slots__ = ("adds", "barriers", "jobs", "removes")

    def __init__(
        self,
        adds: list[StoredJob] | None = None,
        removes: list[Removal] | None = None,
        jobs: list[tuple[Job | None, bool]] | None = None,
        barriers: list[PendingAck] | None = None,
    ) -> None:
        self.adds: list[StoredJob] = adds if adds is not None else []
        self.removes: list[Removal] = removes if removes is not None else []
        # Per add, (job, fresh): fresh jobs are in no queue yet; None for a record that is no live job (a dead job,
        # a pause: geartrain.server.core.lifecycle).
        self.jobs: list[tuple[Job | None, bool]] = jobs if jobs is not None else []
        self.barriers: list[PendingAck] = barriers if barriers is not None else []  # replies held until applied

    def __bool__(self) -> bool:
        return bool(self.adds or self.removes)


class DurableRules(EngineState):
    """Store bookkeeping for background jobs."""

    def _store_new(self, peer: Peer, job: Job, waiting: bool = False) -> None:
        """Record a new background job for the store; its JOB_CREATED waits for the transaction. ``waiting``: a
        cluster node's foreground job for a function none of its workers serves, stored for another node to run."""
        job.acks = []
        self._record_add(job, fresh=True, waiting=waiting)
        self._pending_ack(peer, job)

    def _store_attached(self, peer: Peer, job: Job) -> None:
        """A background submit coalesced onto a job the store does not hold yet (a foreground one)."""
        if job.acks is None:
            job.acks = []
            self._record_add(job, fresh=False)
        self._pending_ack(peer, job)

    def _record_add(self, job: Job, fresh: bool, waiting: bool = False) -> None:
        job.store_key = storage_key(job.unique)
        if self.store_removed:
            self._cancel_removal(Removal(job.store_key, job.function.name))
        owned = self.hungry is not None and not waiting and self._keep_here(job)
        self.store_adds.append(
            StoredJob(
                job.store_key,
                job.function.name,
                job.unique,
                job.priority,
                job.data,
                job.when,
                job.reducer,
                owned,
                waiting,
                job.handle if self.hungry is not None else b"",
                job.meta if self.hungry is not None else b"",
            )
        )
        self.store_jobs.append((job, fresh))
        if job.meta and self.config.side_records:
            self._store_side(job, Side(job.meta))

    def _store_side(self, job: Job, side: Side) -> None:
        """Store (or replace) the job's side record (core/sides.py), beside its own."""
        assert job.store_key is not None
        self.store_record(side.record(job.store_key, job.function.name, job.unique))
        self.sided.add(job)

    def _attach_meta(self, job: Job, meta: bytes) -> None:
        """A submit with metadata joined a job without: the job takes it (stored too, if the job is)."""
        job.meta = meta
        if job.store_key is not None and self.config.side_records:
            self._store_side(job, Side(meta))

    def store_record(self, record: StoredJob) -> None:
        """Store a record that is no live job (geartrain.server.core.lifecycle), in the next batch."""
        removal = Removal(record.key, record.function)
        if self.store_removed:
            self._cancel_removal(removal)
        self.store_adds.append(record)
        self.store_jobs.append((None, False))

    def store_removal(self, removal: Removal) -> None:
        self.store_removes.append(removal)
        self.store_removed.add(removal)

    def _keep_here(self, job: Job) -> bool:
        """Cluster mode: keep a new job on this node when one of its workers sleeps for it (no claim round trip),
        at most one per sleeping worker; the others are left in the store for whichever node claims them. Not
        while the function is held here (paused, or its concurrency used up): another node may run it now."""
        function = job.function
        pending = self.owned_pending.get(function, 0)
        if job.when or function.held or pending >= len(function.sleepers) or function.has_runnable():
            return False
        self.owned_pending[function] = pending + 1
        return True

    def _cancel_removal(self, removal: Removal) -> None:
        """A job finished and a new one under the same key was submitted within one batch: the store replaces the
        record on the add, so the removal must not follow it (a store runs a batch's adds before its removes)."""
        if removal in self.store_removed:
            self.store_removed.discard(removal)
            self.store_removes = [r for r in self.store_removes if r != removal]

    def _pending_ack(self, peer: Peer, job: Job) -> None:
        assert job.acks is not None
        job.acks.append(self._hold_place(peer))

    def take_store_batch(self) -> StoreBatch | None:
        """The store operations recorded since the last call, or ``None`` if there are none."""
        if not self.store_adds and not self.store_removes:
            return None
        batch = StoreBatch(self.store_adds, self.store_removes, self.store_jobs, self.store_barriers)
        self.store_adds, self.store_removes, self.store_jobs, self.store_barriers = [], [], [], []
        self.store_removed = set()
        return batch

    def store_committed(
        self,
        batch: StoreBatch,
        now: float,
        refused: frozenset[int] = frozenset(),
        elsewhere: frozenset[int] = frozenset(),
    ) -> None:
        """The store holds the batch: acknowledge its jobs and let workers have them.

        ``refused`` lists the positions (in ``batch.jobs``) of jobs the store would not take: those are answered
        like a failed batch. ``elsewhere`` (a cluster) lists those the store already held under their key: another
        node stored the job first, so it is acknowledged here and left to the cluster, as a coalesced submit.
        """
        self._release(batch)
        cluster = self.hungry is not None
        for position, (job, fresh) in enumerate(batch.jobs):
            if job is None:
                continue
            claimed_back = False
            if cluster:
                self._owned_settled(batch.adds[position])
                claimed_back = self._was_claimed_back(job)
            if position in refused:
                self._refuse(job, fresh, "the store refused the record")
                continue
            acks, job.acks = job.acks, None
            created = replies.job_created(job.handle)
            for ack in acks or ():
                if ack.peer.in_process:
                    self._resolve(ack, Packet(replies.JOB_CREATED, (job.handle,)))
                else:
                    self._resolve(ack, created)
            if not fresh or job.handle not in self.jobs:
                continue  # a foreground job turned background is already queued or running
            add = batch.adds[position]
            if job.ignore:
                self._free(job)  # cancelled while being stored
            elif add.waiting:
                self._run_elsewhere(job, position in elsewhere, now)
            elif cluster and (not add.owned or position in elsewhere) and not claimed_back:
                # The store keeps it for whichever node claims it; this node keeps only what GET_STATUS needs.
                self._track_elsewhere(job)
                job.store_key = None
                self._free(job)
            else:
                self._enqueue(job, now)

    def _unused_handle(self) -> bytes:
        """A new handle no job here has: in a cluster, claimed jobs keep their submitting node's handles, which
        this node's own counter may reach too when nodes share a ``--job-handle-prefix``."""
        handle = self._new_handle()
        while handle in self.jobs:
            handle = self._new_handle()
        return handle

    def _track_elsewhere(self, job: Job) -> None:
        if job.unique and job.unique != UNIQUE_BY_PAYLOAD:
            known = self.elsewhere_by_unique
            known.pop(job.unique, None)  # to the back: the newest are kept
            known[job.unique] = job.handle
            if len(known) > ELSEWHERE_LIMIT:
                del known[next(iter(known))]

    def forget_elsewhere(self, unique: bytes, handle: bytes) -> None:
        """A job left to the cluster is gone from the store (finished, or dropped)."""
        if self.elsewhere_by_unique.get(unique) == handle:
            del self.elsewhere_by_unique[unique]

    def _run_elsewhere(self, job: Job, taken: bool, now: float) -> None:
        """A foreground job stored for another node: this node's relay peer stands for that node's worker, and the
        packets the runner sends back come in through it (``geartrain.server.core.cluster.relayed``). ``taken``:
        another node stored a job under the same unique first; this node's clients coalesce onto it, once the
        cluster node has told that job's runner to send its packets here too (``watch_requests``)."""
        relay = self.cluster_relay
        if relay is None or job.store_key is None:
            job.store_key = None
            self._forward_packet(job, replies.WORK_FAIL, (job.handle,))
            for client in job.clients:
                client.waiting.discard(job)
            job.clients = ()
            self._free(job)
            return
        job.worker = relay
        relay.assigned[job.handle] = job
        job.function.running += 1
        job.since = now
        remote = (job.store_key, job.function.name)
        self.remote_jobs[remote] = job
        if taken:
            self.watched.add(remote)
            self.watch_requests.append(remote)

    @staticmethod
    def _same_record(job: Job, stored: StoredJob, function: Function) -> bool:
        return job.store_key == stored.key and job.function is function

    def _was_claimed_back(self, job: Job) -> bool:
        if job.handle in self.claimed_back:
            self.claimed_back.discard(job.handle)
            return True
        return False

    def _owned_settled(self, add: StoredJob) -> None:
        if add.owned:
            function = self.function(add.function)
            left = self.owned_pending.get(function, 0) - 1
            if left > 0:
                self.owned_pending[function] = left
            else:
                self.owned_pending.pop(function, None)

    def store_failed(self, batch: StoreBatch, reason: str, release_barriers: bool = True) -> None:
        """The store could not take the batch: its submits get QUEUE_ERROR and its new jobs are forgotten.

        Removals are retried by the transport; the workers need not wait for that, unless ``release_barriers`` is
        false (a cluster: the transport keeps their barriers until the retried deletion commits)."""
        if release_barriers:
            self._release(batch)
        for position, (job, fresh) in enumerate(batch.jobs):
            if job is None:
                continue
            if self.hungry is not None:
                self._owned_settled(batch.adds[position])
            self._refuse(job, fresh, reason)

    def _refuse(self, job: Job, fresh: bool, reason: str) -> None:
        error = replies.ErrorReply(ErrorCode.QUEUE_ERROR, f"Job not stored: {reason}")
        acks, job.acks = job.acks, None
        if fresh and not acks and job.clients:  # submitted again for clients already told JOB_CREATED
            self._forward_packet(job, replies.WORK_FAIL, (job.handle,))
        job.store_key = None
        self.sided.discard(job)  # its side record was in the batch that failed
        for ack in acks or ():
            self._resolve(ack, Packet(replies.ERROR, error.args) if ack.peer.in_process else error.packet)
            ack.peer.waiting.discard(job)
            job.clients = tuple(client for client in job.clients if client is not ack.peer)
        if fresh:
            job.clients = ()
            self._free(job)

    def removals_applied(self, batch: StoreBatch) -> None:
        """:meth:`store_committed` for a batch of deletions alone (no jobs to acknowledge or queue): the workers
        waiting for them may have their replies. Spelt out, for a drain runs it once per job."""
        dirty = self.dirty
        for barrier in batch.barriers:
            barrier.data = b""
            if not barrier.peer.closed:
                dirty.append(barrier.peer)

    def _release(self, batch: StoreBatch) -> None:
        for barrier in batch.barriers:
            self._resolve(barrier, b"")

    def _resolve(self, ack: PendingAck, data: bytes | Packet) -> None:
        ack.data = data
        peer = ack.peer
        if not peer.closed:
            self.dirty.append(peer)

    def restore_record(self, stored: StoredJob, now: float) -> None:
        """A record replayed at start-up: a job, a job's side record, or (with a policy file) a dead job, a pause,
        a cron firing or a kept result. :meth:`replay_done` follows the last one."""
        if stored.function.startswith(SIDE_PREFIX):
            side = side_from_record(stored)
            if side is not None:
                self.replayed_sides[(stored.key, stored.function[len(SIDE_PREFIX) :])] = side
            return
        if self.lifecycle is not None and is_lifecycle_record(stored.function):
            if stored.function in (POLICY_FUNCTION, CRON_ENTRY_FUNCTION):
                restore_override(self.lifecycle, stored)
                self.overrides_replayed = True
            elif stored.function == PAUSED_FUNCTION:
                self.lifecycle.restore_paused(stored.key)
            elif stored.function == CRON_FUNCTION:
                self.lifecycle.restore_fired(stored)
            elif stored.function.startswith(RESULT_PREFIX):
                kept = result_from_record(stored)
                if kept is not None:
                    self._keep_handle(kept.handle)
                    self.lifecycle.restore_result(kept)
            elif (dead := dead_from_record(stored)) is not None:
                self._keep_handle(dead.handle)
                self.lifecycle.restore_dead(dead)
            return
        self.restore(stored, now).function.stats.replayed += 1  # not a submit: counted apart (core/stats.py)

    def _keep_handle(self, handle: bytes) -> None:
        """A dead job's or a kept result's handle, replayed: no new job gets it (a job that died or finished under
        it would replace its record), not even one replayed before it (those get new handles anyway, unknown to
        any client yet: the one that took it moves to a fresh one)."""
        self._new_handle.skip_past(handle)
        job = self.jobs.get(handle)
        if job is not None and self.hungry is None:
            del self.jobs[handle]
            job.handle = self._unused_handle()
            self.jobs[job.handle] = job

    def replay_done(self, now: float) -> None:
        """Every record is replayed: give the jobs their side records (their metadata, and a job that was waiting
        out a backoff waits again, for what is left of it); delete the sides whose job is gone."""
        if self.lifecycle is not None and self.overrides_replayed:
            self.lifecycle.refresh(now)  # the run-time changes of before the restart are in force again
        sides, self.replayed_sides = self.replayed_sides, {}
        if not sides:
            return
        waiting: dict[Function, set[Job]] = {}
        for job in self.jobs.values():
            side = sides.pop((job.store_key, job.function.name), None) if job.store_key is not None else None
            if side is None:
                continue
            job.meta = side.meta
            self.sided.add(job)
            if side.attempts and self.lifecycle is not None and self.lifecycle.restore_failures(job, side, now):
                waiting.setdefault(job.function, set()).add(job)
        for function, jobs in waiting.items():  # they were queued by the replay: taken out, the life cycle has them
            for priority, queue in enumerate(function.queues):
                kept = [job for job in queue if job not in jobs]
                function.queued[priority] -= len(queue) - len(kept)
                queue.clear()
                queue.extend(kept)
        for key, name in sides:
            self.store_removal(side_removal(key, name))

    def revive(self, dead: DeadJob, now: float) -> Job:
        """A dead job queued again (``dead retry``): a background job as when first submitted, its attempts
        starting over, under its old handle unless a live job has it now."""
        handle = dead.handle if dead.handle not in self.jobs else self._unused_handle()
        job = self._new_background(handle, dead.function, dead.unique, dead.data, dead.priority, dead.reducer, now)
        job.function.stats.revived += 1
        return job

    def submit_background(self, function: bytes, unique: bytes, data: bytes, priority: int, now: float) -> Job | None:
        """A background job the server submits itself (a cron firing); ``None`` when a job with that unique is
        already queued or running (it coalesces, as a client's submit would)."""
        known = self.functions.get(function)
        if unique and known is not None and unique in known.by_unique:
            return None
        handle = self._new_handle() if self.hungry is None else self._unused_handle()
        job = self._new_background(handle, function, unique, data, priority, None, now)
        job.function.stats.submitted[priority * 2 + 1] += 1
        return job

    def _new_background(
        self, handle: bytes, name: bytes, unique: bytes, data: bytes, priority: int, reducer: bytes | None, now: float
    ) -> Job:
        function = self.function(name)
        job = Job(handle, function, unique, data, priority, True, 0, reducer, now)
        self.jobs[handle] = job
        function.total += 1
        self.queued_bytes += len(data)
        if unique == UNIQUE_BY_PAYLOAD:
            function.by_payload.setdefault(data, job)
        elif unique:
            function.by_unique.setdefault(unique, job)
        if self.config.persistent:
            job.acks = []  # nobody waits for its JOB_CREATED: queued once the store holds it
            self._record_add(job, fresh=True)
        else:
            self._enqueue(job, now)
        return job

    def restore(self, stored: StoredJob, now: float) -> Job:
        """Queue a job replayed from the store at start-up (it gets a new handle, as in gearmand), or claimed from
        the cluster (it keeps the handle the submitting node gave, unless this node already has a job under it)."""
        function = self.function(stored.function)
        pending = self.jobs.get(stored.handle) if stored.handle else None
        if pending is not None and pending.acks is not None and self._same_record(pending, stored, function):
            # This node's own job, claimed before this node heard that the store took it (the claim's connection
            # can see the commit first): one job, under the handle its client was given, queued at the commit.
            self.claimed_back.add(pending.handle)
            return pending
        handle = stored.handle if stored.handle and stored.handle not in self.jobs else self._unused_handle()
        job = Job(
            handle,
            function,
            stored.unique,
            stored.data,
            stored.priority,
            True,
            stored.when,
            stored.reducer,
            now,
        )
        job.store_key = stored.key
        if stored.meta:  # claimed in a cluster: the submitting node's metadata
            job.meta = stored.meta
        self.jobs[job.handle] = job
        function.total += 1
        self.queued_bytes += len(stored.data)  # replay never refuses a stored job, even past the byte cap
        if stored.unique:
            index, key = (
                (function.by_payload, stored.data)
                if stored.unique == UNIQUE_BY_PAYLOAD
                else (function.by_unique, stored.unique)
            )
            if key in index:
                log.warning("stored job %s duplicates unique %r; keeping both", stored.key, stored.unique)
            else:
                index[key] = job
        self._enqueue(job, now)
        return job
