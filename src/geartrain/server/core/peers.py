"""Peers: the engine's view of one connection, which may be a client, a worker, an admin session, or all three."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from geartrain.server.core.jobs import Job
    from geartrain.server.core.queues import Function


class Writer(Protocol):
    """What the transport layer keeps on a peer to write to it directly (an asyncio transport)."""

    def write(self, data: bytes) -> None: ...

    def is_closing(self) -> bool: ...

    def get_write_buffer_size(self) -> int: ...


class Outlet(Protocol):
    """Where the server writes a peer's output when not straight to its transport: a socket's connection (which
    applies ``--max-unsent``), or an internal peer's sink (an HTTP request, a cluster relay)."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class PendingAck:
    """A JOB_CREATED that may only be sent once the store holds the job: a placeholder in the peer's outbox.

    ``data`` stays ``None`` until the store's transaction ends; then it is the JOB_CREATED or the ERROR to send.
    """

    __slots__ = ("data", "peer")

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.data: bytes | None = None


class Peer:
    """Per-connection state. The transport owns the socket; the engine only appends bytes to ``outbox``.

    ``abilities`` lists the functions this connection can do, most recently registered first (duplicates kept,
    as gearmand keeps them). ``assigned`` maps the handles of the jobs it is working on to those jobs;
    ``waiting`` holds the jobs it is a foreground client of. ``identity`` holds the names the connection proved
    (TLS client certificate names, the name of a secret it presented); empty for an anonymous one.
    """

    __slots__ = (
        "abilities",
        "address",
        "assigned",
        "client_id",
        "close_after_flush",
        "closed",
        "connected",
        "exceptions",
        "fd",
        "id",
        "identity",
        "jobs_done",
        "meta",
        "outbox",
        "port",
        "sleeping",
        "timeouts",
        "unresolved",
        "waiting",
        "woken",
        "writer",
    )

    def __init__(self, peer_id: int, fd: int, address: str, port: int = 0, connected: float = 0.0) -> None:
        self.id = peer_id
        self.fd = fd
        self.address = address  # the host alone, as gearmand's `workers` shows it
        self.port = port  # 0 where there is none (a Unix socket, an HTTP request's gateway)
        self.connected = connected  # when the connection was made (the transport's clock), for the views
        self.jobs_done = 0  # results (complete, fail, exception) it sent as a worker
        self.client_id = b"-"
        self.identity: tuple[str, ...] = ()
        self.abilities: list[Function] = []
        self.timeouts: dict[Function, float] = {}
        self.assigned: dict[bytes, Job] = {}
        self.waiting: set[Job] = set()
        self.sleeping = False
        self.woken = False
        self.exceptions = False
        self.meta = False  # the geartrain-meta option (protocol/meta.py): meta blocks in submits and assignments
        self.outbox: list[bytes | PendingAck] = []
        self.unresolved = 0  # PendingAcks in the outbox whose data is not known yet
        self.closed = False
        self.close_after_flush = False
        # The transport's own write path for this connection, set and used by the transport layer only (the
        # engine never touches it): None where the output goes elsewhere (an HTTP gateway, a closed socket).
        self.writer: Writer | None = None

    def take_output(self) -> bytes:
        """Everything queued for this connection that may be sent now, as one buffer.

        Output behind a JOB_CREATED still waiting for the store stays queued, so replies keep request order.
        """
        outbox = self.outbox
        if self.unresolved:
            return self._take_resolved()
        data = outbox[0] if len(outbox) == 1 else b"".join(outbox)  # type: ignore[arg-type]
        outbox.clear()
        return data  # type: ignore[return-value]

    def _take_resolved(self) -> bytes:
        outbox = self.outbox
        ready: list[bytes] = []
        taken = 0
        for item in outbox:
            if isinstance(item, PendingAck):
                if item.data is None:
                    break
                ready.append(item.data)
                self.unresolved -= 1
            else:
                ready.append(item)
            taken += 1
        del outbox[:taken]
        return b"".join(ready)

    def __repr__(self) -> str:
        return f"<Peer {self.id} fd={self.fd} {self.address}>"
