"""A store in this process's memory: nothing survives a restart. For tests, and as the contract's reference."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from geartrain.server.core.records import Removal, StoredJob
from geartrain.store.base import StoreHeld, StoreUnavailable
from geartrain.store.holder import Holder, held_message


class MemoryStore:
    """Keeps records in a dict (insertion order is submission order). ``available`` simulates an outage."""

    hold_renewal: float | None = None

    description = "memory"

    def __init__(self) -> None:
        self.records: dict[tuple[bytes, bytes], StoredJob] = {}
        self.available = True
        self.opened = False
        self.transactions = 0
        self.holder: Holder | None = None

    def open(self) -> None:
        self._check()
        self.opened = True

    def load(self) -> Iterator[StoredJob]:
        self._check()
        yield from list(self.records.values())

    def apply(self, adds: Sequence[StoredJob], removes: Sequence[Removal]) -> None:
        self._check()
        for job in adds:
            self.records.pop((job.key, job.function), None)  # a re-add moves to the end, like INSERT OR REPLACE
            self.records[(job.key, job.function)] = job
        for removal in removes:
            self.records.pop((removal.key, removal.function), None)
        self.transactions += 1

    def close(self) -> None:
        self.opened = False

    def hold(self, holder: Holder) -> None:
        self._check()
        if self.holder is not None and self.holder != holder:
            raise StoreHeld(held_message(self.description, self.holder.encode(), None))
        self.holder = holder

    def renew_hold(self) -> bool:
        self._check()
        return self.holder is not None

    def release_hold(self) -> None:
        self.holder = None

    def batch_writer(self) -> None:
        return None  # nothing to wait for: applied where it is called

    def _check(self) -> None:
        if not self.available:
            self.opened = False
            raise StoreUnavailable("memory store switched off")
