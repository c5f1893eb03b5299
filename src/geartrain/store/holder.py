"""Who holds a store: one server at a time, so that no queue is replayed (and run) by two servers.

SQLite holds its file with an OS lock, which dies with the process. The network stores keep an owner record (a row,
a key) that the holder renews every few seconds; :func:`take` decides, from the record and its age by the database's
clock, whether a starting server may take it over:

* no record, or a record of this very server (same token);
* a record not renewed within the lease (the holder died, or lost the database, :data:`LEASE` seconds ago);
* a record of a process on this host that is gone (kill -9, then a restart: no need to wait out the lease).

Anything else refuses the start, naming the holder.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from geartrain.store.base import StoreError, StoreHeld

LEASE = 15.0  # seconds a holder's record stays good without renewal
RENEWAL = LEASE / 3  # how often the holder renews it: two renewals may fail before the record lapses


@dataclass(frozen=True, slots=True)
class Holder:
    """A server holding a store: its node name (``host:port``), process and host; ``token`` tells runs apart."""

    node: str
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def encode(self) -> str:
        return json.dumps({"node": self.node, "pid": self.pid, "host": self.host, "token": self.token})

    @classmethod
    def decode(cls, text: str) -> Holder | None:
        """The holder a record names, or ``None`` for a record this version cannot read."""
        try:
            fields = json.loads(text)
            return cls(str(fields["node"]), int(fields["pid"]), str(fields["host"]), str(fields["token"]))
        except (ValueError, TypeError, KeyError):
            return None

    def describe(self) -> str:
        return f"node {self.node} (pid {self.pid} on {self.host})"

    def is_gone(self) -> bool:
        """The holder is a process of this host that no longer runs."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # it runs, as another user
            return False
        return False


class OwnerRecords(Protocol):
    """A network store's owner record: one per queue (table, key prefix)."""

    def read_owner(self) -> tuple[str, float] | None:
        """The record's text and its age in seconds by the database's clock, or ``None`` when there is none."""

    def insert_owner(self, text: str) -> bool:
        """Create the record unless one exists; ``True`` when this call created it."""

    def replace_owner(self, old: str, new: str) -> bool:
        """Swap the record's text (and renew it) if it still reads ``old``; ``True`` when it did."""

    def delete_owner(self, text: str) -> None:
        """Delete the record if it reads ``text``."""


def held_message(description: str, text: str, age: float | None) -> str:
    holder = Holder.decode(text)
    who = holder.describe() if holder is not None else repr(text)
    renewed = f", renewed {age:.0f} s ago" if age is not None else ""
    return (
        f"{description} is held by another server: {who}{renewed}; stop that server, or give this one its own "
        "store (another file, table or prefix)"
    )


def take(records: OwnerRecords, holder: Holder, description: str) -> None:
    """Make ``holder`` the store's holder, or raise StoreHeld naming the one that is."""
    mine = holder.encode()
    for _ in range(5):  # each miss means the record changed under us: read it again
        current = records.read_owner()
        if current is None:
            if records.insert_owner(mine):
                return
            continue
        text, age = current
        other = Holder.decode(text)
        if text == mine or age > LEASE or (other is not None and other.is_gone()):
            if records.replace_owner(text, mine):
                return
            continue
        raise StoreHeld(held_message(description, text, age))
    raise StoreHeld(f"{description}: its owner record keeps changing; is another server starting on it?")


def renew(records: OwnerRecords, holder: Holder) -> bool:
    """Renew ``holder``'s record (taking it again if it lapsed and nobody took it); ``False`` when another has."""
    mine = holder.encode()
    if records.replace_owner(mine, mine):
        return True
    current = records.read_owner()
    if current is None:
        return records.insert_owner(mine)
    return current[0] == mine and records.replace_owner(mine, mine)


class StoreHold:
    """A network store's hold on its queue, kept in owner records reached through ``records`` (on the store's own
    connection) under the store's error translation ``errors``."""

    def __init__(
        self,
        description: str,
        records: Callable[[], OwnerRecords],
        errors: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self._description = description
        self._records = records
        self._errors = errors
        self.holder: Holder | None = None

    def take(self, holder: Holder) -> None:
        with self._errors():
            take(self._records(), holder, self._description)
        self.holder = holder

    def renew(self) -> bool:
        assert self.holder is not None, "renew before take"
        with self._errors():
            return renew(self._records(), self.holder)

    def release(self) -> None:
        holder, self.holder = self.holder, None
        if holder is not None:
            with contextlib.suppress(StoreError), self._errors():  # else the record lapses by itself
                self._records().delete_owner(holder.encode())
