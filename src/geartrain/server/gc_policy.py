"""When the server runs Python's cycle collector.

The job table needs no cycle collector: every reference between jobs, peers and functions is dropped when a job
ends, so reference counting frees them. CPython's automatic collector does not know that. It traverses each
surviving object in every young collection it passes, and then the *whole* heap each time it has grown by a
quarter, so with a million queued jobs most of a submit's cost was the collector (measured: 7.5 µs per background
submit with it, 3.2 µs without).

So the server collects on its own schedule: automatic collection is off; after a loop turn that left more than
``young_limit`` new container objects, the young generation is collected (what is garbage in it, cycles
included, goes) and what survived is frozen, so a queued job is traversed once in its life. Cycles that form
between frozen objects are caught by a full collection every ``full_interval`` seconds, skipped (and logged) while
the frozen heap is larger than ``full_limit`` objects, because that pause grows with the heap.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass

log = logging.getLogger("geartrain.gc")


@dataclass(frozen=True, slots=True)
class GcSettings:
    """``enabled=False`` leaves CPython's automatic collector as it is."""

    enabled: bool = True
    young_limit: int = 20_000
    full_interval: float = 300.0
    full_limit: int = 2_000_000


class CollectionPolicy:
    """Owns the collector while a server runs; :meth:`after_turn` is called once per loop turn."""

    __slots__ = ("_last_full", "_settings", "_was_enabled", "full_collections", "young_collections")

    def __init__(self, settings: GcSettings) -> None:
        self._settings = settings
        self._was_enabled = gc.isenabled()
        self._last_full = time.monotonic()
        self.young_collections = 0
        self.full_collections = 0

    def start(self) -> None:
        if not self._settings.enabled:
            return
        gc.disable()
        gc.collect()
        gc.freeze()  # modules, classes and the replayed queue: never traversed again
        self._last_full = time.monotonic()

    def after_turn(self) -> None:
        settings = self._settings
        if not settings.enabled or gc.get_count()[0] < settings.young_limit:
            return
        gc.collect(0)
        gc.freeze()
        self.young_collections += 1
        now = time.monotonic()
        if now - self._last_full >= settings.full_interval:
            self._last_full = now
            self.collect_all()

    def collect_all(self) -> None:
        """A full collection, unless the heap is so large that its pause would hurt (then logged)."""
        frozen = gc.get_freeze_count()
        if frozen > self._settings.full_limit:
            log.info("skipping a full collection: %d objects would be traversed", frozen)
            return
        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        self.full_collections += 1
        log.debug("full collection: %d unreachable, %.1f ms", found, (time.perf_counter() - started) * 1000)

    def stop(self) -> None:
        if not self._settings.enabled:
            return
        gc.unfreeze()
        if self._was_enabled:
            gc.enable()
