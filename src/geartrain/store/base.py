"""The persistent queue interface every store implements, and the record it stores.

Only background jobs are stored. A store is used from one thread at a time (the server's store thread); it opens
its connection, replays what it holds in submission order, then applies batches: each batch of adds and removes is
one transaction (group commit). A store that loses its database raises :class:`StoreUnavailable`; the server then
reconnects with backoff by calling :meth:`QueueStore.open` again.

Names and keys are bytes, as on the wire; a store keeps UTF-8 ones as text (gearmand's columns are text) and
others in a form it can give back unchanged.

The records (:class:`StoredJob`, :class:`Removal`) belong to the engine (:mod:`geartrain.server.core.records`).

A server holds its store alone (:meth:`QueueStore.hold`): two servers replaying one queue would each run the other's
jobs. SQLite by an OS lock on the database file; the network stores by an owner record that the holder renews.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from geartrain.errors import GearmanError
from geartrain.server.core.records import Removal, StoredJob

if TYPE_CHECKING:
    from geartrain.store.holder import Holder


class StoreError(GearmanError):
    """A store could not do what was asked."""


class StoreUnavailable(StoreError):
    """The database cannot be reached (down, restarted, network cut): retry after reconnecting."""


class ConnectionLost(StoreUnavailable, ConnectionError):
    """A store's connection closed, timed out, or sent something its protocol does not allow."""


class StoreMissingDriver(StoreError):
    """The Python package a store needs is not installed."""


class StoreHeld(StoreError):
    """Another server holds the store (its queue would be replayed and run twice)."""


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

    @property
    def hold_renewal(self) -> float | None:
        """Seconds between :meth:`renew_hold` calls, or ``None`` when the hold needs no renewing (an OS lock)."""

    def hold(self, holder: Holder) -> None:
        """Take the store for this server alone (after :meth:`open`). Raises StoreHeld naming the holder."""

    def renew_hold(self) -> bool:
        """Renew the hold; ``False`` when another server has taken the store. Raises StoreUnavailable."""

    def release_hold(self) -> None:
        """Give the store up (at a clean stop; a dead holder's hold lapses by itself)."""

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

    async def apply(
        self, adds: Sequence[StoredJob], removes: Sequence[Removal]
    ) -> frozenset[tuple[bytes, bytes]] | None:
        """Store ``adds`` and delete ``removes`` in one transaction (adds first; a key in both ends up deleted).

        In a cluster, returns the (key, function) of adds the store already held: another node stored a job under
        that unique first, and this node's copy must not run."""

    def remove_now(self, removes: Sequence[Removal], done: Callable[[BaseException | None], None]) -> bool:
        """Start deleting ``removes`` in one transaction, now, on a connection already open: ``done(None)`` once it
        has committed, ``done(error)`` when it failed (the server then applies the batch again with :meth:`apply`,
        which reconnects). ``False`` when it cannot start that way (nothing connected and idle): nothing was sent and
        ``done`` is never called.

        The reply is acted on where it is read, with no task to start and resume: each is a loop turn, and with
        one worker draining, every job waits for its deletion, so those turns are in every job's time."""

    def close(self) -> None:
        """Drop every connection."""
