"""When the server runs Python's cycle collector.

The job table needs no cycle collector: every reference between jobs, peers and functions is dropped when a job
ends, so reference counting frees them. CPython's automatic collector does not know that. It traverses each
surviving object in every young collection it passes, and then the *whole* heap each time it has grown by a
quarter, so with a million queued jobs most of a submit's cost was the collector (measured: 7.5 µs per background
submit with it, 3.2 µs without).

So the server sets the collector's thresholds instead: the young generation is still collected after
``young_limit`` new container objects (what is garbage in it, cycles included, goes), and what survived is then
frozen (from the collector's callback), so a queued job is traversed once in its life; the older generations'
thresholds are out of reach. Cycles that form between frozen objects are caught by a full collection every
``full_interval`` seconds (a timer on the loop), skipped (and logged) while the frozen heap is larger than
``full_limit`` objects, because that pause grows with the heap. Thresholds rather than a check after every loop
turn: the policy then costs nothing on the turns that do not collect.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("geartrain.gc")

# gc.set_threshold takes C ints: this many young collections never happen between two full ones.
UNREACHABLE_THRESHOLD = 2**31 - 1


@dataclass(frozen=True, slots=True)
class GcSettings:
    """``enabled=False`` leaves CPython's automatic collector as it is."""

    enabled: bool = True
    young_limit: int = 20_000
    full_interval: float = 300.0
    full_limit: int = 2_000_000


class CollectionPolicy:
    """Owns the collector while a server runs: :meth:`start` on the server's loop, :meth:`stop` at the end."""

    __slots__ = ("_loop", "_settings", "_thresholds", "_timer", "_was_enabled", "full_collections", "young_collections")

    def __init__(self, settings: GcSettings) -> None:
        self._settings = settings
        self._was_enabled = gc.isenabled()
        self._thresholds = gc.get_threshold()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.young_collections = 0
        self.full_collections = 0

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Take over the collector; with ``loop``, full collections run every ``full_interval`` seconds on it."""
        if not self._settings.enabled:
            return
        gc.collect()
        gc.freeze()  # modules, classes and the replayed queue: never traversed again
        gc.set_threshold(self._settings.young_limit, UNREACHABLE_THRESHOLD, UNREACHABLE_THRESHOLD)
        gc.callbacks.append(self._after_collection)
        gc.enable()
        self._loop = loop
        self._schedule()

    def _after_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 0:
            gc.freeze()  # the survivors: never traversed again by a young collection
            self.young_collections += 1

    def _schedule(self) -> None:
        if self._loop is not None:
            self._timer = self._loop.call_later(self._settings.full_interval, self._periodic)

    def _periodic(self) -> None:
        self.collect_all()
        self._schedule()

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
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._after_collection in gc.callbacks:
            gc.callbacks.remove(self._after_collection)
        gc.set_threshold(*self._thresholds)
        gc.unfreeze()
        if not self._was_enabled:
            gc.disable()
