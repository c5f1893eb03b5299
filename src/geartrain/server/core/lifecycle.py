"""The job life cycle beyond Gearman, in the engine: retries with backoff, the dead set, pause (issue 15).

It is off (``engine.lifecycle is None``) unless the server has a policy file, and then plain Gearman clients see no
byte change: a foreground client still gets each WORK_FAIL or WORK_EXCEPTION as it happens. What changes is what
becomes of a *background* job that fails (WORK_FAIL, WORK_EXCEPTION, its worker disconnected, it timed out):

* while its function's policy allows retries, it waits ``backoff_delay(attempt)`` seconds and is queued again,
  under the same handle and unique (GET_STATUS says known, not running, meanwhile); its store record stays;
* after the last, it goes to the dead set: out of the queues, kept with its last error for ``dead list``, ``dead
  retry`` and ``dead delete``. In the store a dead job is a record of its own, under the function
  ``gt:dead:<function>`` (so every store keeps it without a new table, and gearmand never runs it), written in the
  same batch that deletes the live record.

A paused function accepts submits and hands nothing out; the pause is a record in the store too
(``gt:meta:paused``), so it outlives a restart.

On a cluster the dead set is the cluster's: the ``gt:dead:`` records in its table, which every node reads back
(:meth:`Lifecycle.sync_dead`, from cluster/node.py) into :attr:`Lifecycle.dead`, so any node lists, shows, retries
and deletes the dead jobs of every node. A retry there does not queue the job in the engine: it asks the cluster
to move the dead record back into the queue (:attr:`Lifecycle.revive_requests`), which happens once however many
nodes ask at the same time, and whichever node's worker is free runs it.

``[[cron]]`` entries submit a background job at each firing of their schedule. The job's unique is made from the
firing's time (``cron:<function>:<epoch>`` unless the entry gives a template), and the time of the last firing is a
record (``gt:meta:cron``) stored in the same batch as the job: a restart does not fire an instant twice, and with
``catch_up = "once"`` fires one run missed while the server was down.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from geartrain.lifecycle.cron import parse_schedule
from geartrain.lifecycle.overrides import Overrides
from geartrain.lifecycle.policy import ONCE, cron_ident

# The dead set's and kept results' records, and the timer heap's entries, have modules of their own; their names
# stay importable from here (durable.py, compiled, imports them from this module).
from geartrain.server.core.dead import (
    DEAD_MAGIC,
    DEAD_PREFIX,
    DISCONNECTED,
    FAILED,
    TIMED_OUT,
    DeadJob,
    dead_from_record,
    dead_rows,
)
from geartrain.server.core.jobs import Job
from geartrain.server.core.kept import RESULT_MAGIC, RESULT_PREFIX, KeptResult, result_from_record
from geartrain.server.core.peers import Peer
from geartrain.server.core.queues import Function
from geartrain.server.core.records import Removal, StoredJob
from geartrain.server.core.shares import Shares
from geartrain.server.core.sides import Side
from geartrain.server.core.timers import Bucket, DeadSweep, Firing

if TYPE_CHECKING:
    from geartrain.lifecycle.policy import FunctionPolicy, Policies
    from geartrain.server.core.engine import Engine

__all__ = [
    "CRON_ENTRY_FUNCTION",
    "CRON_FUNCTION",
    "DEAD_MAGIC",
    "DEAD_PREFIX",
    "DISCONNECTED",
    "FAILED",
    "PAUSED_FUNCTION",
    "POLICY_FUNCTION",
    "RESULT_MAGIC",
    "RESULT_PREFIX",
    "TIMED_OUT",
    "Bucket",
    "DeadJob",
    "DeadSweep",
    "Firing",
    "KeptResult",
    "Lifecycle",
    "dead_from_record",
    "dead_rows",
    "is_lifecycle_record",
    "result_from_record",
]

log = logging.getLogger("geartrain.lifecycle")

PAUSED_FUNCTION = b"gt:meta:paused"
CRON_FUNCTION = b"gt:meta:cron"  # key: the entry's identity; data: the Unix time of its last firing
POLICY_FUNCTION = b"gt:meta:policy"  # key: a function; data: its run-time overrides (JSON)
CRON_ENTRY_FUNCTION = b"gt:meta:cronentry"  # key: an added entry's identity; data: the entry (JSON)


class Lifecycle:
    """The life-cycle state of one engine: policies, jobs waiting out a backoff, the dead set, paused functions."""

    def __init__(self, engine: Engine, policies: Policies) -> None:
        self.engine = engine
        self.file_policies = policies  # as the policy file says
        self.overrides = Overrides()  # changed at run time (core/overrides.py)
        # In a cluster, when this node last changed each run-time override, by its record (function, key), wall
        # clock: the records read back from the cluster's table (core/overrides.sync_overrides) may not show it yet.
        self.overrides_here: dict[tuple[bytes, bytes], float] = {}
        self.policies = policies  # in force: the file's with the overrides
        # Jobs waiting out a backoff, and the next firing of each cron entry, by time.
        self.retry_heap: list[tuple[float, int, Job | Firing | Function | KeptResult | DeadSweep]] = []
        self.crons: dict[bytes, Firing] = {}
        self._last_fired: dict[bytes, float] = {}  # replayed gt:meta:cron records, until the entries are armed
        self.failures: dict[bytes, tuple[int, float]] = {}  # handle -> (failed attempts, first failure)
        # handle -> (last error, when it failed, when it is due again): what a job's detail view shows; kept
        # beside ``failures`` and dropped with it. A replayed job's error is not stored: b"" then.
        self.last_failure: dict[bytes, tuple[bytes, float, float]] = {}
        self.dead: dict[bytes, DeadJob] = {}  # by handle, oldest first
        # When the timer comes back to drop the dead jobs past their retention (None: not armed).
        self._sweep_at: float | None = None
        self._sweep = DeadSweep()
        # In a cluster, when this node last buried or forgot each dead job (by handle, wall clock): the dead records
        # read back from the cluster's table (sync_dead) may not show a change this node made an instant ago yet.
        self.dead_here: dict[bytes, float] = {}
        # In a cluster, dead jobs `dead retry` chose here, which the cluster node moves back into the queue (the
        # move, not this node, decides whether the job is queued: once, whichever nodes asked); and how it is told.
        self.revive_requests: list[DeadJob] = []
        self.on_revive: Callable[[], None] | None = None
        self.paused: set[bytes] = set()
        # In a cluster, when this node last paused or resumed each function (wall clock): the store's pause records,
        # read back by every node (sync_paused), may not show a change this node made an instant ago yet.
        self.paused_here: dict[bytes, float] = {}
        self.deadlines: dict[bytes, float] = {}  # handle -> policy timeout moved by a WORK_STATUS
        self.buckets: dict[bytes, Bucket] = {}  # per function with a rate
        # On a cluster, concurrency and rate are the cluster's: this node's share of them (core/shares.py).
        self.shares = Shares(engine) if engine.config.cluster else None
        self.results: dict[bytes, KeptResult] = {}  # by handle (result_ttl)
        self._expiries: list[tuple[float, bytes]] = []  # (expires, handle), a heap
        self._timeouts: dict[bytes, float | None] = {}  # per function, from the policies (a cache)
        # Whether cron firings submit here: a cluster's nodes all keep the schedule, and only the leader submits
        # (cluster/node.py sets it), so a firing whose job ended fast is not submitted again by a later node.
        self.fires_here = not engine.config.cluster
        self.retried = 0  # counters for /metrics
        self.died = 0
        self._seq = 0

    def policy(self, function: bytes) -> FunctionPolicy:
        return self.policies.for_function(function)

    def reload(self, policies: Policies, now: float) -> None:
        """New policies (SIGHUP): they apply to the next failure, assignment and pruning; cron entries are armed
        again (an entry kept keeps its last firing). Run-time changes (core/overrides.py) stay over them."""
        self.file_policies = policies
        self.refresh(now)

    def refresh(self, now: float) -> None:
        """The policies in force again: the file's with the run-time changes over them."""
        self.policies = self.overrides.apply(self.file_policies)
        self._timeouts.clear()
        self._last_fired.update({ident: f.last_at for ident, f in self.crons.items() if f.last_at is not None})
        self.arm_cron(now)
        self.apply_limits()
        self.prune(now)  # a shorter retention or a lower dead_max applies at once

    # ------------------------------------------------------------------ cron

    def arm_cron(self, now: float) -> None:
        """Compute every entry's next firing (at start, once the store is replayed, and on reload); an entry with
        ``catch_up = "once"`` that missed firings since its last one fires once now."""
        self.crons.clear()
        # In place: the server holds the list (it arms its timer when the heap is not empty).
        self.retry_heap[:] = [entry for entry in self.retry_heap if not isinstance(entry[2], Firing)]
        heapq.heapify(self.retry_heap)
        current = datetime.fromtimestamp(now, UTC)
        for entry in self.policies.cron:
            ident = cron_ident(entry)
            firing = Firing(entry, parse_schedule(entry.schedule), ZoneInfo(entry.timezone), ident)
            firing.last_at = self._last_fired.get(ident)
            missed = None
            if entry.catch_up == ONCE and firing.last_at is not None:
                after = datetime.fromtimestamp(firing.last_at, UTC)
                missed = firing.schedule.next_after(after, firing.zone)
            if missed is not None and missed.timestamp() <= now:
                firing.next_at = missed.timestamp()
            else:
                firing.next_at = firing.schedule.next_after(current, firing.zone).timestamp()
            self.crons[ident] = firing
            self._push(firing.next_at, firing)

    def _push(self, at: float, item: Job | Firing | Function | KeptResult | DeadSweep) -> None:
        self._seq += 1
        heapq.heappush(self.retry_heap, (at, self._seq, item))

    def _fire(self, firing: Firing, now: float) -> None:
        at = firing.next_at
        if at is None or self.crons.get(firing.ident) is not firing:
            return  # an entry a reload replaced
        entry = firing.entry
        if self.fires_here:
            self.engine.submit_background(entry.function, firing.unique(at), entry.payload, entry.priority, now)
        firing.last_at = at  # in a cluster, the leader fired it
        if self.engine.config.persistent and not self.engine.config.cluster:  # a cluster's table only holds jobs
            self.engine.store_record(StoredJob(firing.ident, CRON_FUNCTION, firing.ident, 1, repr(at).encode()))
        following = firing.schedule.next_after(datetime.fromtimestamp(max(at, now), UTC), firing.zone)
        firing.next_at = following.timestamp()
        self._push(firing.next_at, firing)
        log.info("cron: %r fired (%s); next at %s", entry.function, entry.schedule, following.isoformat())

    def restore_fired(self, stored: StoredJob) -> None:
        with contextlib.suppress(ValueError):  # not a time: as if it never fired
            self._last_fired[stored.key] = float(stored.data)

    # ------------------------------------------------------------------ timeouts

    def timeout(self, function: bytes) -> float | None:
        """The policy's timeout of a running job of ``function`` (None: none)."""
        try:
            return self._timeouts[function]
        except KeyError:
            timeout = self._timeouts[function] = self.policy(function).timeout
            return timeout

    def heartbeat(self, job: Job, worker: Peer, now: float) -> None:
        """A WORK_STATUS: a job under its policy's timeout gets that long again (as Faktory's BEAT)."""
        if job.function in worker.timeouts:
            return  # the worker's own CAN_DO_TIMEOUT is gearmand's: not extended
        timeout = self.timeout(job.function.name)
        if timeout is None:
            return
        engine = self.engine
        deadline = self.deadlines[job.handle] = now + timeout
        engine._seq += 1
        heapq.heappush(engine.timeout_heap, (deadline, engine._seq, job, worker, job.retries))

    def extended(self, job: Job, due: float) -> bool:
        """Whether a timeout entry due at ``due`` was superseded by a later deadline."""
        deadline = self.deadlines.get(job.handle)
        return deadline is not None and deadline > due

    def forget(self, handle: bytes) -> None:
        """A job is gone from the engine."""
        if self.failures and self.failures.pop(handle, None) is not None:
            self.last_failure.pop(handle, None)
        if self.deadlines:
            self.deadlines.pop(handle, None)

    # ------------------------------------------------------------------ failures

    def failed(self, job: Job, error: bytes, now: float) -> bool:
        """A background job's attempt failed; its worker is detached already. Retry it later, or bury it (then
        ``True``)."""
        engine = self.engine
        self.deadlines.pop(job.handle, None)
        attempts, first = self.failures.get(job.handle, (0, now))
        attempts += 1
        policy = self.policy(job.function.name)
        if attempts <= policy.retries and not job.ignore:
            self.failures[job.handle] = (attempts, first)
            delay = policy.backoff_delay(attempts)
            self._push(now + delay, job)
            self.last_failure[job.handle] = (error, now, now + delay)
            if job.store_key is not None and engine.config.side_records:
                engine._store_side(job, Side(job.meta, attempts, first, now + delay))  # outlives a kill -9
            elif job.store_key is not None and engine.config.cluster:
                # No side record on a cluster: the cluster's store turns this one into an update of the job's own
                # row (attempts, first failure, the backoff's end as the time it may run), in the batch after this
                # failure, so a node that claims the job after this one died counts on and waits out the backoff.
                side = Side(job.meta, attempts, first, now + delay)
                engine.store_record(side.record(job.store_key, job.function.name, job.unique))
            self.retried += 1
            job.function.stats.retried += 1
            log.info("job %s failed (%r); retry %d in %.1f s", job.handle.decode(), error, attempts, delay)
            return False
        self.failures.pop(job.handle, None)
        self.last_failure.pop(job.handle, None)
        if job.ignore:
            engine._free(job)
            return False
        dead = DeadJob(
            job.handle,
            job.function.name,
            job.unique,
            job.data,
            job.priority,
            attempts,
            first,
            now,
            error,
            job.reducer,
            job.store_key,
        )
        engine._free(job)  # deletes its live record
        self._bury(dead, now)
        self.ended(job, "exception" if error not in (FAILED, DISCONNECTED, TIMED_OUT) else "failed", error, now)
        self.died += 1
        job.function.stats.dead += 1
        log.warning("job %s of %r is dead after %d attempts: %r", dead.handle.decode(), dead.function, attempts, error)
        return True

    def _bury(self, dead: DeadJob, now: float) -> None:
        engine = self.engine
        self.dead[dead.handle] = dead
        if engine.config.cluster:
            self.dead_here[dead.handle] = now
        if engine.config.persistent:
            engine.store_record(dead.record())
        self.prune(now, dead.function)

    def prune(self, now: float, function: bytes | None = None) -> None:
        """Drop dead jobs past their function's retention, and the oldest beyond its ``dead_max``; then arm the
        timer for the next one to pass its retention (it comes back to :meth:`prune` without a new failure)."""
        counts: dict[bytes, int] = {}
        # Newest first, so that the oldest go over the limit (replayed records need not come oldest first).
        for dead in sorted(self.dead.values(), key=lambda dead: dead.last_failed, reverse=True):
            if function is not None and dead.function != function:
                continue
            policy = self.policy(dead.function)
            counts[dead.function] = kept = counts.get(dead.function, 0) + 1
            if kept > policy.dead_max or dead.last_failed + policy.dead_retention <= now:
                self._forget(dead, now)
        self._arm_sweep(self.dead.values())

    def _arm_sweep(self, dead_jobs: Iterable[DeadJob]) -> None:
        """Arm the timer for the first of ``dead_jobs`` to pass its retention, if that is sooner than armed."""
        at = min((dead.last_failed + self.policy(dead.function).dead_retention for dead in dead_jobs), default=None)
        if at is not None and (self._sweep_at is None or at < self._sweep_at):
            self._sweep_at = at
            self._push(at, self._sweep)

    def _swept(self, at: float, now: float) -> None:
        if at == self._sweep_at:  # not an entry an earlier one superseded
            self._sweep_at = None
            self.prune(now)

    def _forget(self, dead: DeadJob, now: float) -> None:
        del self.dead[dead.handle]
        if self.engine.config.cluster:
            self.dead_here[dead.handle] = now
        if self.engine.config.persistent:
            self.engine.store_removal(dead.removal())

    def due(self, now: float) -> None:
        """Queue again the jobs whose backoff is over; fire the cron entries whose time has come."""
        heap = self.retry_heap
        engine = self.engine
        while heap and heap[0][0] <= now:
            at, _, item = heapq.heappop(heap)
            if isinstance(item, Firing):
                self._fire(item, now)
            elif isinstance(item, Function):
                self._refilled(item, now)
            elif isinstance(item, KeptResult):
                self.expire(now)
            elif isinstance(item, DeadSweep):
                self._swept(at, now)
            elif engine.jobs.get(item.handle) is item and item.worker is None and not item.ignore:
                engine._enqueue(item, now)

    def restore_failures(self, job: Job, side: Side, now: float) -> bool:
        """A replayed job's side record says it failed before: it counts on, and waits out what is left of its
        backoff. ``True`` when it waits (the caller takes it out of the queue the replay put it in)."""
        self.failures[job.handle] = (side.attempts, side.first_failed)
        self.last_failure[job.handle] = (b"", 0.0, side.retry_at)
        if side.retry_at <= now or job.when > now:
            return False
        self._push(side.retry_at, job)
        return True

    def next_deadline(self) -> float | None:
        return self.retry_heap[0][0] if self.retry_heap else None

    def finished(self, job: Job) -> None:
        """A job ended for good (its result came): forget its failed attempts."""
        if self.failures and self.failures.pop(job.handle, None) is not None:
            self.last_failure.pop(job.handle, None)

    def attempts(self, job: Job) -> int:
        """Failed attempts so far (0 for a job that has not failed)."""
        return self.failures.get(job.handle, (0, 0.0))[0]

    # ------------------------------------------------------------------ kept results

    def ended(self, job: Job, status: str, data: bytes, now: float) -> None:
        """A background job ended for good: keep how, if its function's policy says so (not for a job cancelled
        while it ran: nobody wants its result)."""
        ttl = self.policy(job.function.name).result_ttl
        if not ttl or job.ignore:
            return
        kept = KeptResult(job.handle, job.function.name, job.unique, status, data, now, now + ttl)
        self.results[job.handle] = kept
        heapq.heappush(self._expiries, (kept.expires, kept.handle))
        self._push(kept.expires, kept)  # the server's timer comes back to delete it
        if self.engine.config.persistent:
            self.engine.store_record(kept.record())
        self.expire(now)

    def result(self, handle: bytes, now: float) -> KeptResult | None:
        kept = self.results.get(handle)
        return kept if kept is not None and kept.expires > now else None

    def expire(self, now: float) -> None:
        """Forget the results past their time (and delete their records)."""
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            expires, handle = heapq.heappop(expiries)
            kept = self.results.get(handle)
            if kept is not None and kept.expires == expires:
                del self.results[handle]
                if self.engine.config.persistent:
                    self.engine.store_removal(Removal(handle, RESULT_PREFIX + kept.function))

    def restore_result(self, kept: KeptResult) -> None:
        self.results[kept.handle] = kept
        heapq.heappush(self._expiries, (kept.expires, kept.handle))
        self._push(kept.expires, kept)

    # ------------------------------------------------------------------ the dead set

    def dead_jobs(self, selector: bytes | None = None) -> list[DeadJob]:
        """``selector``: a handle, a function name, ``all`` (or ``None``: all)."""
        if selector is None or selector == b"all":
            return list(self.dead.values())
        if selector in self.dead:
            return [self.dead[selector]]
        return [dead for dead in self.dead.values() if dead.function == selector]

    def retry_dead(self, selector: bytes, now: float) -> int:
        """Queue these dead jobs again as new background jobs (their attempts start over); returns how many.

        On a cluster they leave this node's view at once and go to :attr:`revive_requests`: the cluster node moves
        each dead record back into the queue if it is still there (a job retried on two nodes at once is queued
        once), and the count is of the dead jobs this node saw."""
        engine = self.engine
        dead_jobs = self.dead_jobs(selector)
        for dead in dead_jobs:
            if engine.config.cluster:
                del self.dead[dead.handle]
                self.dead_here[dead.handle] = now
                self.revive_requests.append(dead)
            else:
                self._forget(dead, now)
                engine.revive(dead, now)
        if self.revive_requests and self.on_revive is not None:
            self.on_revive()
        return len(dead_jobs)

    def delete_dead(self, selector: bytes, now: float = 0.0) -> int:
        """Delete these dead jobs and their records (on a cluster, every node's); returns how many."""
        dead_jobs = self.dead_jobs(selector)
        for dead in dead_jobs:
            self._forget(dead, now)
        return len(dead_jobs)

    def sync_dead(self, stored: Iterable[DeadJob], now: float, settle: float) -> None:
        """A cluster's nodes share one dead set: the dead records in the cluster's table, which every node reads
        back (``stored``, oldest first) into :attr:`dead`. A dead job this node buried or forgot less than
        ``settle`` seconds ago keeps its state here (the read may have begun before that change was stored)."""
        for handle, at in list(self.dead_here.items()):
            if now - at >= settle:
                del self.dead_here[handle]
        recent = {handle: self.dead[handle] for handle in self.dead_here if handle in self.dead}
        synced = {dead.handle: dead for dead in stored if dead.handle not in self.dead_here}
        self.dead.clear()  # in place: the HTTP view reads this dict
        self.dead.update(synced)
        self.dead.update(recent)  # buried here, perhaps not stored yet: the newest
        self._arm_sweep(self.dead.values())

    def restore_dead(self, dead: DeadJob) -> None:
        """A replayed dead record. The timer's first turn prunes what is past the policies in force (its age, or a
        ``dead_max`` lowered while the server was down), and arms itself for the next one."""
        self.dead[dead.handle] = dead
        if self._sweep_at != 0.0:
            self._sweep_at = 0.0
            self._push(0.0, self._sweep)

    # ------------------------------------------------------------------ pause

    def pause(self, function: bytes, now: float = 0.0) -> bool:
        """``False`` if it was paused already."""
        if function in self.paused:
            return False
        self.restore_paused(function)
        if self.engine.config.persistent:
            self.engine.store_record(StoredJob(function, PAUSED_FUNCTION, function, 1, b""))
        if self.engine.config.cluster:
            self.paused_here[function] = now
        return True

    def resume(self, function: bytes, now: float) -> bool:
        if function not in self.paused:
            return False
        self._resume_here(function)
        if self.engine.config.persistent:
            self.engine.store_removal(Removal(function, PAUSED_FUNCTION))
        if self.engine.config.cluster:
            self.paused_here[function] = now
        return True

    def restore_paused(self, function: bytes) -> None:
        self.paused.add(function)
        known = self.engine.function(function)
        known.paused = True
        known.update_held()

    def _resume_here(self, function: bytes) -> None:
        self.paused.discard(function)
        known = self.engine.functions.get(function)
        if known is not None:
            known.paused = False
            known.update_held()
            self.engine.wake_sleepers(known)

    def sync_paused(self, stored: set[bytes], now: float, settle: float) -> tuple[list[bytes], list[bytes]]:
        """A cluster's nodes share one pause list: the pause records in the cluster's table, which every node reads
        back (``stored``). Pauses and resumes another node made are applied here, without storing anything; a
        function this node itself paused or resumed less than ``settle`` seconds ago keeps its state (the read may
        have begun before that change was stored). Returns the functions paused and resumed by this call."""
        for function, at in list(self.paused_here.items()):
            if now - at >= settle:
                del self.paused_here[function]
        paused = [f for f in stored - self.paused if f not in self.paused_here]
        resumed = [f for f in self.paused - stored if f not in self.paused_here]
        for function in paused:
            self.restore_paused(function)
        for function in resumed:
            self._resume_here(function)
        return paused, resumed

    def apply_limits(self) -> None:
        """Each function's concurrency from the policies (at start, on reload, for a function first seen)."""
        for name, function in self.engine.functions.items():
            self.limit(function, name)

    def limit(self, function: Function, name: bytes, now: float = 0.0) -> None:
        """Its policy's concurrency and rate, in force from now on."""
        policy = self.policy(name)
        function.gated = bool(policy.concurrency) or policy.rate is not None or policy.timeout is not None
        if self.shares is not None:
            self.shares.apply(function, policy)
            return
        function.limit = policy.concurrency or 0
        if policy.rate is None:
            self.buckets.pop(name, None)
            function.rate_blocked = False
        elif name not in self.buckets:
            self.buckets[name] = Bucket(*policy.rate, now)
        if function.update_held():
            self.engine.wake_sleepers(function)

    def started(self, function: Function, now: float, timeout: float | None) -> float | None:
        """A job of a gated function was handed out: count it against its concurrency and its rate. Returns the
        timeout to apply: the worker's own (``timeout``), else the policy's."""
        if function.limit and function.running >= function.limit:
            function.held = True  # nothing more until one ends (EngineState._release_hold)
        if self.shares is not None:
            self.shares.started(function)
            return timeout if timeout is not None else self.timeout(function.name)
        bucket = self.buckets.get(function.name)
        if bucket is not None:
            bucket.fill(now)
            bucket.tokens -= 1.0
            if bucket.tokens < 1.0:
                function.rate_blocked = function.held = True
                self._push(bucket.next_token_at(), function)
        return timeout if timeout is not None else self.timeout(function.name)

    def _refilled(self, function: Function, now: float) -> None:
        bucket = self.buckets.get(function.name)
        if bucket is not None:
            bucket.fill(now)
            if bucket.tokens < 1.0:
                self._push(bucket.next_token_at(), function)
                return
        function.rate_blocked = False
        if function.update_held():
            self.engine.wake_sleepers(function)


def is_lifecycle_record(function: bytes) -> bool:
    return function.startswith((DEAD_PREFIX, RESULT_PREFIX)) or function in (
        PAUSED_FUNCTION,
        CRON_FUNCTION,
        POLICY_FUNCTION,
        CRON_ENTRY_FUNCTION,
    )
