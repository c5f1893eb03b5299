"""The dead set's records (issue 15): a background job out of retries, as the life cycle keeps it
(core/lifecycle.py) and as a store keeps it: a record of its own under the function ``gt:dead:<function>``, whose
data is :data:`DEAD_MAGIC`, a JSON header line, then the job's payload (so every store keeps the dead set without a
table of its own, and gearmand, reading the same queue, never runs it)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from geartrain.server.core.records import Removal, StoredJob, storage_key

DEAD_PREFIX = b"gt:dead:"
DEAD_MAGIC = b"GTDEAD1\n"  # a dead record's data: this, a JSON header line, then the job's payload

# What a failure was, for the dead set's "last error".
FAILED = b"WORK_FAIL"
DISCONNECTED = b"worker disconnected"
TIMED_OUT = b"timed out"


@dataclass(slots=True)
class DeadJob:
    """A background job out of retries."""

    handle: bytes
    function: bytes
    unique: bytes
    data: bytes
    priority: int
    attempts: int
    first_failed: float
    last_failed: float
    error: bytes
    reducer: bytes | None
    store_key: bytes | None  # its live record's key; the dead record is under (key, DEAD_PREFIX + function)

    def record(self) -> StoredJob:
        header = {
            "handle": self.handle.decode("latin-1"),
            "attempts": self.attempts,
            "first_failed": self.first_failed,
            "last_failed": self.last_failed,
            "error": self.error.decode("latin-1"),
        }
        data = DEAD_MAGIC + json.dumps(header).encode() + b"\n" + self.data
        key = self.store_key or self.handle
        return StoredJob(key, DEAD_PREFIX + self.function, self.unique, self.priority, data, 0, self.reducer)

    def removal(self) -> Removal:
        """Its dead record's key, for a deletion."""
        return Removal(self.store_key or self.handle, DEAD_PREFIX + self.function)

    def revived(self) -> StoredJob:
        """The live record of this job queued again on a cluster (``dead retry``): a background job left to any
        node, under its old key and handle, its attempts starting over (no side record)."""
        key = self.store_key if self.store_key is not None else storage_key(self.unique)
        return StoredJob(key, self.function, self.unique, self.priority, self.data, 0, self.reducer, handle=self.handle)

    def view(self) -> dict[str, object]:
        """For the JSON views (HTTP API, dashboard)."""
        return {
            "handle": self.handle.decode("latin-1"),
            "function": self.function.decode("utf-8", "replace"),
            "unique": self.unique.decode("utf-8", "replace"),
            "priority": self.priority,
            "attempts": self.attempts,
            "first_failed": self.first_failed,
            "last_failed": self.last_failed,
            "error": self.error.decode("utf-8", "replace"),
            "size": len(self.data),
        }


def dead_from_record(stored: StoredJob) -> DeadJob | None:
    """The dead job a replayed ``gt:dead:`` record stands for (``None``: not one of ours)."""
    data = stored.data
    if not data.startswith(DEAD_MAGIC):
        return None
    header_line, _, payload = data[len(DEAD_MAGIC) :].partition(b"\n")
    try:
        header = json.loads(header_line)
        return DeadJob(
            str(header["handle"]).encode("latin-1"),
            stored.function[len(DEAD_PREFIX) :],
            stored.unique,
            payload,
            stored.priority,
            int(header["attempts"]),
            float(header["first_failed"]),
            float(header["last_failed"]),
            str(header["error"]).encode("latin-1"),
            stored.reducer,
            stored.key,
        )
    except (ValueError, KeyError, TypeError, UnicodeEncodeError):
        return None


def dead_rows(dead_jobs: Iterable[DeadJob]) -> list[tuple[bytes | int, ...]]:
    """``dead list``: HANDLE, FUNCTION, UNIQUE, ATTEMPTS, LAST FAILED (Unix time), LAST ERROR (one line)."""
    return [
        (
            dead.handle,
            dead.function,
            dead.unique,
            dead.attempts,
            int(dead.last_failed),
            dead.error.replace(b"\r", b" ").replace(b"\n", b" ").replace(b"\t", b" ")[:200],
        )
        for dead in dead_jobs
    ]
