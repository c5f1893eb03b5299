"""Peers: the engine's view of one connection, which may be a client, a worker, an admin session, or all three."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from geartrain.server.core.jobs import Job
    from geartrain.server.core.queues import Function


class Peer:
    """Per-connection state. The transport owns the socket; the engine only appends bytes to ``outbox``.

    ``abilities`` lists the functions this connection can do, most recently registered first (duplicates kept,
    as gearmand keeps them). ``assigned`` maps the handles of the jobs it is working on to those jobs;
    ``waiting`` holds the jobs it is a foreground client of.
    """

    __slots__ = (
        "abilities",
        "address",
        "assigned",
        "client_id",
        "close_after_flush",
        "closed",
        "exceptions",
        "fd",
        "id",
        "outbox",
        "sleeping",
        "timeouts",
        "waiting",
        "woken",
    )

    def __init__(self, peer_id: int, fd: int, address: str) -> None:
        self.id = peer_id
        self.fd = fd
        self.address = address
        self.client_id = b"-"
        self.abilities: list[Function] = []
        self.timeouts: dict[Function, float] = {}
        self.assigned: dict[bytes, Job] = {}
        self.waiting: set[Job] = set()
        self.sleeping = False
        self.woken = False
        self.exceptions = False
        self.outbox: list[bytes] = []
        self.closed = False
        self.close_after_flush = False

    def take_output(self) -> bytes:
        """Everything queued for this connection since the last call, as one buffer."""
        outbox = self.outbox
        data = outbox[0] if len(outbox) == 1 else b"".join(outbox)
        outbox.clear()
        return data

    def __repr__(self) -> str:
        return f"<Peer {self.id} fd={self.fd} {self.address}>"
