"""What geartrain stores about a job beyond gearmand's columns: its metadata and the life cycle's retry state.

A *side record* sits beside the job's own record, under the same key and the function ``gt:job:<function>`` (so
every store keeps it without a new column, and gearmand, sharing the queue, never runs it). It is written in the
batch that stores the job (metadata from the ``geartrain-meta`` option, :mod:`geartrain.protocol.meta`) or that
records a failed attempt (so a job waiting out a backoff after a kill -9 still waits, and counts on), and deleted
with the job. Outside a cluster only: a cluster's table hands every record to claims.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from geartrain.server.core.records import Removal, StoredJob

SIDE_PREFIX = b"gt:job:"
SIDE_MAGIC = b"GTJOB1\n"


@dataclass(slots=True)
class Side:
    """A job's side record: its metadata, and (after a failed attempt) the life cycle's count and next run."""

    meta: bytes = b""
    attempts: int = 0  # failed attempts so far
    first_failed: float = 0.0
    retry_at: float = 0.0  # when its backoff ends (0: not waiting)

    def record(self, key: bytes, function: bytes, unique: bytes) -> StoredJob:
        header: dict[str, object] = {"meta": self.meta.decode("latin-1")}
        if self.attempts:
            header.update(attempts=self.attempts, first_failed=self.first_failed, retry_at=self.retry_at)
        return StoredJob(key, SIDE_PREFIX + function, unique, 1, SIDE_MAGIC + json.dumps(header).encode())


def side_removal(key: bytes, function: bytes) -> Removal:
    return Removal(key, SIDE_PREFIX + function)


def side_from_record(stored: StoredJob) -> Side | None:
    """The side a replayed ``gt:job:`` record stands for (``None``: not one of ours)."""
    if not stored.data.startswith(SIDE_MAGIC):
        return None
    try:
        header = json.loads(stored.data[len(SIDE_MAGIC) :])
        return Side(
            str(header.get("meta", "")).encode("latin-1"),
            int(header.get("attempts", 0)),
            float(header.get("first_failed", 0.0)),
            float(header.get("retry_at", 0.0)),
        )
    except (ValueError, TypeError, AttributeError, UnicodeEncodeError):
        return None
