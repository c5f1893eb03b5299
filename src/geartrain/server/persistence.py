"""Moving the engine's store operations to the store: replay at start-up, group commit, outages.

After each loop turn :meth:`Persistence.kick` hands everything the engine recorded to the store as one
transaction: on the event loop for stores with a :class:`~geartrain.store.base.BatchWriter` (the network stores),
else on the store thread; while that runs, later turns accumulate, so under load one commit serves many submits.
When the store is down, submits are refused at once (QUEUE_ERROR) rather than queued behind it; the store is
tried again after a backoff (0.1 s doubling to 5 s), removals are kept and retried, and jobs already in memory keep
flowing to workers.

The server holds its store alone (:meth:`Persistence.replay` takes the hold, a timer renews it); a server that finds
another has taken it stops, for that server now runs the queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from geartrain.server.core.durable import StoreBatch
from geartrain.server.core.engine import Engine
from geartrain.server.core.peers import PendingAck
from geartrain.server.core.records import Removal, StoredJob, storage_key
from geartrain.server.core.sides import side_removal
from geartrain.server.core.stats import STORE_BUCKETS, Histogram
from geartrain.store.base import QueueStore, StoreError, StoreUnavailable
from geartrain.store.holder import Holder

log = logging.getLogger("geartrain.store")

MIN_BACKOFF = 0.1
MAX_BACKOFF = 5.0
REPLAY_PROGRESS_EVERY = 100_000


class Persistence:
    """The store's side of one server."""

    def __init__(self, store: QueueStore, engine: Engine, on_result: Callable[[], None]) -> None:
        self.store = store
        self.engine = engine
        self._on_result = on_result
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="geartrain-store")
        self._writer = store.batch_writer()  # network stores write batches on the loop; others on the thread
        self._slots = self._writer.concurrency if self._writer is not None else 1
        self._running: set[asyncio.Task[None]] = set()
        self._answering = 0  # deletions started by the writer's remove_now, whose replies are awaited
        self._running_adds = False  # the running batch stores jobs: nothing runs beside it
        self._idle_waiters: list[asyncio.Future[None]] = []  # flush() waiting for every batch to end
        self._up = True
        self._reconnect = self._writer is not None  # (re)open before the next batch: a writer connects lazily
        self._backoff = MIN_BACKOFF
        self._next_attempt = 0.0
        self._retry_removes: list[Removal] = []
        # In a cluster a worker's next reply waits until its finished job is deleted, however long the database is
        # away: another node may run the job once its lease lapses, and this worker must not have been told
        # anything after its result by then. Its barrier goes with the retried deletion.
        self._retry_barriers: list[PendingAck] = []
        self._retry_timer: asyncio.TimerHandle | None = None
        self._probing: asyncio.Task[None] | None = None  # reconnecting after an outage with nothing to write
        self._holder: Holder | None = None
        self._renewal: asyncio.TimerHandle | None = None
        self._renewing: asyncio.Task[None] | None = None
        self._renewal_failing = False
        self._on_lost: Callable[[str], None] | None = None
        self.commits = 0
        self.commit_latency = Histogram(STORE_BUCKETS)  # for /metrics: transaction start to result

    def replay(self, keep: bool = True, holder: Holder | None = None) -> int:
        """Open the store, take it for ``holder`` and queue every job it holds (before the port opens). Returns the
        count; raises StoreHeld when another server holds the store.

        ``keep=False`` (store-on-shutdown mode) empties the store once the jobs are in memory; they are written
        back by :meth:`write_queue` at the stop.
        """
        self.store.open()
        if self.engine.config.cluster:
            return 0  # the table is the cluster's queue: jobs come to this node by claims, not by replay
        if holder is not None:
            self.store.hold(holder)
            self._holder = holder
        started = time.monotonic()
        count = 0
        now = time.time()
        for stored in self.store.load():
            self.engine.restore_record(stored, now)
            count += 1
            if count % REPLAY_PROGRESS_EVERY == 0:
                log.warning("replaying %s: %d jobs so far", self.store.description, count)
        self.engine.replay_done(now)
        if count:
            log.warning("replayed %d jobs from %s in %.1f s", count, self.store.description, time.monotonic() - started)
        if not keep:
            removes = [Removal(job.store_key, job.function.name) for job in self.engine.jobs.values() if job.store_key]
            removes += [side_removal(job.store_key, job.function.name) for job in self.engine.sided if job.store_key]
            self.store.apply((), removes)
            for job in self.engine.jobs.values():
                job.store_key = None
            self.engine.sided.clear()
        elif self._writer is not None and self._holder is None:
            self.store.close()  # the writer's connections take every batch from here: this one would only idle
        return count

    def keep_holding(self, on_lost: Callable[[str], None]) -> None:
        """Renew the hold on the store from now on; ``on_lost(message)`` when another server has taken it."""
        if self._holder is None or self.store.hold_renewal is None:
            return
        self._on_lost = on_lost
        self._loop = self._loop or asyncio.get_running_loop()
        self._renewal = self._loop.call_later(self.store.hold_renewal, self._renew_soon)

    def _renew_soon(self) -> None:
        assert self._loop is not None
        self._renewal = None
        self._renewing = self._loop.create_task(self._renew())

    async def _renew(self) -> None:
        # On the store thread and its own connection: the writer's connections stay with the batches.
        loop = asyncio.get_running_loop()
        try:
            if self._renewal_failing:
                await loop.run_in_executor(self._executor, self.store.open)
            held = await loop.run_in_executor(self._executor, self.store.renew_hold)
        except StoreError as error:
            if not self._renewal_failing:
                log.error("store %s: cannot renew this server's hold (%s); retrying", self.store.description, error)
            self._renewal_failing = True
        else:
            if self._renewal_failing:
                log.warning("store %s: hold renewed", self.store.description)
            self._renewal_failing = False
            if not held:
                self._holder = None
                if self._on_lost is not None:
                    self._on_lost(
                        f"store {self.store.description}: another server has taken it (this server's hold lapsed)"
                    )
                return
        interval = self.store.hold_renewal
        if interval is not None:
            self._renewal = loop.call_later(interval, self._renew_soon)

    async def write_queue(self) -> None:
        """Store every background job still wanted (store-on-shutdown mode, at the stop)."""
        adds = []
        for job in self.engine.jobs.values():
            if job.background and not job.ignore:
                key = storage_key(job.unique)
                adds.append(
                    StoredJob(key, job.function.name, job.unique, job.priority, job.data, job.when, job.reducer)
                )
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.store.apply, adds, ())
        log.warning("stored %d jobs in %s at shutdown", len(adds), self.store.description)

    def kick(self) -> None:
        """Start a transaction for what the engine recorded, unless it must wait for those running.

        A batch that stores jobs runs alone: the database numbers them for replay in the order its transactions
        commit. Batches that only delete, and that a worker waits for (its next reply waits for its deletion), may
        run side by side, as many as the writer has connections for: one transaction per finishing worker, instead
        of every worker waiting for the one before. Their keys cannot overlap: a job is deleted once, and adding a
        key again waits until nothing runs. Deletions nobody waits for (``--store-ack submits``) wait for the next
        free turn and go together: under load one transaction then deletes hundreds of jobs.
        """
        engine = self.engine
        if not engine.store_adds and not engine.store_removes and not self._retry_removes:
            return  # the common case after a reply was read: kept to one call
        running = len(self._running) + self._answering
        if running and (
            self._running_adds
            or running >= self._slots
            or engine.store_adds
            or not engine.store_barriers  # nobody waits for these deletions: they can join the next batch
            or self._reconnect
            or not self._up
        ):
            return
        batch = engine.take_store_batch()
        if batch is None:
            batch = StoreBatch()
        if not self._up and time.monotonic() < self._next_attempt:
            self._refuse(batch, "the store is unavailable; retrying")
            self._schedule_retry(self._next_attempt - time.monotonic())  # what was refused is retried (no-op if due)
            return
        if self._retry_removes:
            # Older than anything in the batch; one whose key the batch adds again is moot (see _cancel_removal).
            added = {Removal(add.key, add.function) for add in batch.adds}
            batch.removes[:0] = [r for r in self._retry_removes if r not in added]
            self._retry_removes = []
            batch.barriers[:0] = self._retry_barriers
            self._retry_barriers = []
        self._running_adds = bool(batch.adds)
        started = time.monotonic()
        writer = self._writer
        if (
            not batch.adds
            and writer is not None
            and self._up
            and not self._reconnect
            and writer.remove_now(batch.removes, partial(self._removed, batch, started))
        ):
            self._answering += 1
            return
        self._start(batch, started)

    def _start(self, batch: StoreBatch, started: float) -> None:
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        task = loop.create_task(self._run(batch, started))
        self._running.add(task)  # held here: the loop keeps only a weak reference

    def _removed(self, batch: StoreBatch, started: float, error: BaseException | None) -> None:
        """The end of a deletion started by ``remove_now`` (called where the database's reply was read)."""
        self._answering -= 1
        if error is not None:
            # Applied again the usual way: it reconnects, retries once, or refuses the batch and backs off.
            self._start(batch, started)
            return
        # _committed and _settle spelt out for the case at hand (the store was up, the batch holds no jobs): this
        # runs once per finished job in a drain.
        self.commits += 1
        self.commit_latency.observe(time.monotonic() - started)
        self.engine.removals_applied(batch)
        if not self._answering and not self._running:
            self._running_adds = False
            self._wake_idle()
        self._on_result()

    async def _run(self, batch: StoreBatch, started: float) -> None:
        try:
            refused, elsewhere = await self._apply(batch, self._reconnect)
        except Exception as error:  # every failure refuses the batch; the store is tried again after a backoff
            self._failed(batch, error)
        else:
            self._committed(batch, refused, elsewhere, started)
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._running.discard(task)
            self._settle()
        self._on_result()

    def _settle(self) -> None:
        if not self._running and not self._answering:
            self._running_adds = False
            self._wake_idle()

    def _wake_idle(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _until_idle(self) -> None:
        if self._running or self._answering:
            waiter = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(waiter)
            await waiter

    async def _apply(self, batch: StoreBatch, reconnect: bool) -> tuple[frozenset[int], frozenset[int]]:
        """Returns the positions of adds the store refused (bad values), and of those it already held under the
        same key (in a cluster: another node stored that job first)."""
        if reconnect:
            await self._open()
        try:
            held = await self._write(batch.adds, batch.removes)
        except StoreUnavailable:
            if reconnect:
                raise
            # The database may have dropped an idle connection (MySQL's wait_timeout): reopen and try once more.
            # Applying a batch twice has the effect of applying it once. A writer has dropped the lost connection
            # and connects afresh by itself; reopening it would also cut the batches running beside this one.
            if self._writer is None:
                await self._open()
            held = await self._write(batch.adds, batch.removes)
        except StoreError as exc:
            log.error("store %s refused a batch (%s); storing its jobs one by one", self.store.description, exc)
            return await self._apply_one_by_one(batch), frozenset()
        if not held:
            return frozenset(), frozenset()
        return frozenset(), frozenset(i for i, add in enumerate(batch.adds) if (add.key, add.function) in held)

    async def _open(self) -> None:
        if self._writer is not None:
            await self._writer.open()
        else:
            await asyncio.get_running_loop().run_in_executor(self._executor, self.store.open)

    async def _write(
        self, adds: Sequence[StoredJob], removes: Sequence[Removal]
    ) -> frozenset[tuple[bytes, bytes]] | None:
        if self._writer is not None:
            return await self._writer.apply(adds, removes)
        await asyncio.get_running_loop().run_in_executor(self._executor, self.store.apply, adds, removes)
        return None

    async def _apply_one_by_one(self, batch: StoreBatch) -> frozenset[int]:
        """Find the records the store refuses, so one bad job does not cost the others their place."""
        await self._write((), batch.removes)
        refused = set()
        for position, add in enumerate(batch.adds):
            try:
                await self._write((add,), ())
            except StoreUnavailable:
                raise
            except StoreError as exc:
                log.error("store %s refused job %r of %r: %s", self.store.description, add.unique, add.function, exc)
                refused.add(position)
        return frozenset(refused)

    def _committed(self, batch: StoreBatch, refused: frozenset[int], elsewhere: frozenset[int], started: float) -> None:
        if not self._up:
            log.warning("store %s is back", self.store.description)
        self._up, self._reconnect, self._backoff = True, False, MIN_BACKOFF
        self.commits += 1
        self.commit_latency.observe(time.monotonic() - started)
        self.engine.store_committed(batch, time.time(), refused=refused, elsewhere=elsewhere)

    def _failed(self, batch: StoreBatch, error: Exception) -> None:
        if self._up:
            log.error("store %s failed: %s", self.store.description, error)
        self._up, self._reconnect = False, True
        self._next_attempt = time.monotonic() + self._backoff
        self._schedule_retry(self._backoff)
        self._backoff = min(self._backoff * 2, MAX_BACKOFF)
        self._refuse(batch, str(error) or type(error).__name__)

    def _refuse(self, batch: StoreBatch, reason: str) -> None:
        hold = self.engine.config.cluster
        self.engine.store_failed(batch, reason, release_barriers=not hold)
        self._retry_removes.extend(batch.removes)
        if hold:
            self._retry_barriers.extend(batch.barriers)

    def _schedule_retry(self, delay: float) -> None:
        if self._loop is None or self._retry_timer is not None:
            return

        def retry() -> None:
            self._retry_timer = None
            # The backoff is over, whatever time.monotonic() says: uvloop's timers count whole milliseconds and can
            # run a hair early, and kick() would then refuse the batch again with no timer left to retry it.
            self._next_attempt = 0.0
            if self._retry_removes:
                self.kick()
                self._on_result()
            elif not self._up and not self._running and not self._answering and self._loop is not None:
                # Nothing to write, yet the store must be found again: a server that is not ready (/readyz) gets no
                # work from a load balancer, and a cluster node that lost its lease writes nothing until it has.
                self._probing = self._loop.create_task(self._probe())

        self._retry_timer = self._loop.call_later(delay, retry)

    async def _probe(self) -> None:
        """Connect to the store again after an outage, with no batch to write."""
        try:
            await self._open()
        except Exception:  # still away: the next try after a longer backoff
            self._next_attempt = time.monotonic() + self._backoff
            self._schedule_retry(self._backoff)
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            return
        if not self._up:
            log.warning("store %s is back", self.store.description)
        self._up, self._reconnect, self._backoff = True, False, MIN_BACKOFF
        self._on_result()

    @property
    def up(self) -> bool:
        return self._up

    @property
    def description(self) -> str:
        return self.store.description

    async def flush(self) -> None:
        """Wait until everything recorded so far has been tried (for shutdown)."""
        for _ in range(3):
            await self._until_idle()
            self.kick()
            if not self._running and not self._answering:
                break
        await self._until_idle()

    def close(self) -> None:
        for handle in (self._retry_timer, self._renewal, self._renewing, self._probing):
            if handle is not None:
                handle.cancel()
        if self._writer is not None:
            self._writer.close()
        self._executor.shutdown(wait=True)
        if self._holder is not None:
            self.store.release_hold()
        self.store.close()
