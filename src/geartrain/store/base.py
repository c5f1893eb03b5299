"""The persistent queue interface every store implements, and the record it stores.

Only background jobs are stored. A store is used from one thread at a time (the server's store thread); it opens
its connection, replays what it holds in submission order, then applies batches: each batch of adds and removes is
one transaction (group commit). A store that loses its database raises :class:`StoreUnavailable`; the server then
reconnects with backoff by calling :meth:`QueueStore.open` again.

Names and keys are bytes, as on the wire; a store keeps UTF-8 ones as text (gearmand's columns are text) and
others in a form it can give back unchanged.

Keys: gearmand keys a record by (unique, function), so background jobs without a unique overwrite each other (sqlite)
or are refused (MySQL, PostgreSQL). geartrain gives such a job a key of its own, ``gt:empty:<uuid>``, and ``-``
uniques (coalesce on the payload) ``gt:dash:<uuid>``; both map back on replay.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from geartrain.errors import GearmanError

EMPTY_UNIQUE_PREFIX = b"gt:empty:"
DASH_UNIQUE_PREFIX = b"gt:dash:"


class StoreError(GearmanError):
    """A store could not do what was asked."""


class StoreUnavailable(StoreError):
    """The database cannot be reached (down, restarted, network cut): retry after reconnecting."""


class StoreMissingDriver(StoreError):
    """The Python package a store needs is not installed."""


@dataclass(frozen=True, slots=True)
class StoredJob:
    """One background job as stored: the key is (``key``, ``function``)."""

    key: bytes
    function: bytes
    unique: bytes
    priority: int
    data: bytes
    when: int = 0
    reducer: bytes | None = None


def storage_key(unique: bytes) -> bytes:
    """The key a new job is stored under: its unique, or a fresh one where gearmand's key would collide."""
    if not unique:
        return EMPTY_UNIQUE_PREFIX + uuid.uuid4().hex.encode()
    if unique == b"-":
        return DASH_UNIQUE_PREFIX + uuid.uuid4().hex.encode()
    return unique


def unique_from_key(key: bytes) -> bytes:
    """The unique a stored key stands for (inverse of :func:`storage_key`)."""
    if key.startswith(EMPTY_UNIQUE_PREFIX):
        return b""
    if key.startswith(DASH_UNIQUE_PREFIX):
        return b"-"
    return key


@dataclass(frozen=True, slots=True)
class Removal:
    """A stored job to delete: its (key, function)."""

    key: bytes
    function: bytes


class QueueStore(Protocol):
    """What the server needs of a persistent queue."""

    #: Shown in logs and errors (``sqlite:///var/lib/geartrain/queue.db``; no password).
    description: str

    def open(self) -> None:
        """Connect (or reconnect) and create or upgrade the table. Raises StoreUnavailable."""

    def load(self) -> Iterator[StoredJob]:
        """Every stored job, oldest submission first."""

    def apply(self, adds: Sequence[StoredJob], removes: Sequence[Removal]) -> None:
        """Store ``adds`` and delete ``removes`` in one transaction; all or nothing. Raises StoreUnavailable."""

    def close(self) -> None:
        """Release the connection; the store may be opened again."""

    def batch_writer(self) -> BatchWriter | None:
        """A writer of batches on the event loop, or ``None``: the server then calls :meth:`apply` on its thread."""


class BatchWriter(Protocol):
    """A network store's batches written from the server's event loop, on a connection of its own.

    Handing each batch to a thread and back costs about as much as a round trip to the database (50 µs on the
    2-core test machine), and a drain with one worker pays it for every job; a writer does its I/O on the loop.
    The same rules as :meth:`QueueStore.apply`: one transaction per batch, StoreUnavailable when the connection is
    lost, StoreError when the database refuses the batch itself. A lost connection is dropped and the next batch
    connects afresh; :meth:`open` drops every connection and connects one (after an outage).

    ``concurrency`` batches may be applied at once (the server never runs a batch that adds jobs beside another).
    """

    concurrency: int

    async def open(self) -> None:
        """Drop every connection and connect one (raises StoreUnavailable)."""

    async def apply(self, adds: Sequence[StoredJob], removes: Sequence[Removal]) -> None:
        """Store ``adds`` and delete ``removes`` in one transaction (adds first; a key in both ends up deleted)."""

    def close(self) -> None:
        """Drop every connection."""
