"""Moving the engine's store operations to the store: replay at start-up, group commit, outages.

One thread talks to the store. After each loop turn :meth:`Persistence.kick` hands everything the engine recorded
to it as one transaction; while that runs, later turns accumulate, so under load one commit serves many submits.
When the store is down, submits are refused at once (QUEUE_ERROR) rather than queued behind it; the store is
tried again after a backoff (0.1 s doubling to 5 s), removals are kept and retried, and jobs already in memory keep
flowing to workers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from geartrain.server.core.durable import StoreBatch
from geartrain.server.core.engine import Engine
from geartrain.server.core.stats import STORE_BUCKETS, Histogram
from geartrain.store.base import QueueStore, Removal, StoredJob, StoreError, StoreUnavailable, storage_key

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
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="geartrain-store")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_flight: StoreBatch | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._up = True
        self._reconnect = False
        self._backoff = MIN_BACKOFF
        self._next_attempt = 0.0
        self._retry_removes: list[Removal] = []
        self._retry_timer: asyncio.TimerHandle | None = None
        self.commits = 0
        self.commit_latency = Histogram(STORE_BUCKETS)  # for /metrics: transaction start to result
        self._batch_started = 0.0

    def replay(self, keep: bool = True) -> int:
        """Open the store and queue every job it holds (before the port opens). Returns the count.

        ``keep=False`` (store-on-shutdown mode) empties the store once the jobs are in memory; they are written
        back by :meth:`write_queue` at the stop.
        """
        self.store.open()
        started = time.monotonic()
        count = 0
        now = time.time()
        for stored in self.store.load():
            self.engine.restore(stored, now)
            count += 1
            if count % REPLAY_PROGRESS_EVERY == 0:
                log.warning("replaying %s: %d jobs so far", self.store.description, count)
        if count:
            log.warning("replayed %d jobs from %s in %.1f s", count, self.store.description, time.monotonic() - started)
        if not keep:
            removes = [Removal(job.store_key, job.function.name) for job in self.engine.jobs.values() if job.store_key]
            self.store.apply((), removes)
            for job in self.engine.jobs.values():
                job.store_key = None
        return count

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
        """Start a transaction for what the engine recorded, unless one is running (then it waits its turn)."""
        if self._in_flight is not None:
            return
        batch = self.engine.take_store_batch()
        if batch is None and not self._retry_removes:
            return
        batch = batch or StoreBatch()
        if not self._up and time.monotonic() < self._next_attempt:
            self._refuse(batch, "the store is unavailable; retrying")
            return
        if self._retry_removes:
            batch.removes[:0] = self._retry_removes
            self._retry_removes = []
        self._in_flight = batch
        self._batch_started = time.monotonic()
        self._idle.clear()
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        future = self._executor.submit(self._apply, batch, self._reconnect)
        future.add_done_callback(lambda done: loop.call_soon_threadsafe(self._finished, batch, done))

    def _apply(self, batch: StoreBatch, reconnect: bool) -> frozenset[int]:
        """Runs on the store thread; returns the positions of adds the store refused (bad values)."""
        if reconnect:
            self.store.open()
        try:
            self.store.apply(batch.adds, batch.removes)
        except StoreUnavailable:
            if reconnect:
                raise
            # The database may have dropped an idle connection (MySQL's wait_timeout): reopen and try once more.
            # Applying a batch twice has the effect of applying it once.
            self.store.open()
            self.store.apply(batch.adds, batch.removes)
        except StoreError as exc:
            log.error("store %s refused a batch (%s); storing its jobs one by one", self.store.description, exc)
            return self._apply_one_by_one(batch)
        return frozenset()

    def _apply_one_by_one(self, batch: StoreBatch) -> frozenset[int]:
        """Find the records the store refuses, so one bad job does not cost the others their place."""
        self.store.apply((), batch.removes)
        refused = set()
        for position, add in enumerate(batch.adds):
            try:
                self.store.apply((add,), ())
            except StoreUnavailable:
                raise
            except StoreError as exc:
                log.error("store %s refused job %r of %r: %s", self.store.description, add.unique, add.function, exc)
                refused.add(position)
        return frozenset(refused)

    def _finished(self, batch: StoreBatch, done: Future[frozenset[int]]) -> None:
        self._in_flight = None
        self._idle.set()
        error = done.exception()
        if error is None:
            if not self._up:
                log.warning("store %s is back", self.store.description)
            self._up, self._reconnect, self._backoff = True, False, MIN_BACKOFF
            self.commits += 1
            self.commit_latency.observe(time.monotonic() - self._batch_started)
            self.engine.store_committed(batch, time.time(), refused=done.result())
        else:
            if self._up:
                log.error("store %s failed: %s", self.store.description, error)
            self._up, self._reconnect = False, True
            self._next_attempt = time.monotonic() + self._backoff
            self._schedule_retry(self._backoff)
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            self._refuse(batch, str(error) or type(error).__name__)
        self._on_result()

    def _refuse(self, batch: StoreBatch, reason: str) -> None:
        self.engine.store_failed(batch, reason)
        self._retry_removes.extend(batch.removes)

    def _schedule_retry(self, delay: float) -> None:
        if self._loop is None or self._retry_timer is not None:
            return

        def retry() -> None:
            self._retry_timer = None
            if self._retry_removes:
                self.kick()
                self._on_result()

        self._retry_timer = self._loop.call_later(delay, retry)

    @property
    def up(self) -> bool:
        return self._up

    async def flush(self) -> None:
        """Wait until everything recorded so far has been tried (for shutdown)."""
        for _ in range(3):
            await self._idle.wait()
            self.kick()
            if self._in_flight is None:
                break
        await self._idle.wait()

    def close(self) -> None:
        if self._retry_timer is not None:
            self._retry_timer.cancel()
        self._executor.shutdown(wait=True)
        self.store.close()
