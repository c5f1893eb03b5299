"""Peers: the engine's view of one connection, which may be a client, a worker, an admin session, or all three."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, cast

from geartrain.protocol.codec import LARGE_PACKET
from geartrain.protocol.packets import Packet

if TYPE_CHECKING:
    from geartrain.server.core.jobs import Job
    from geartrain.server.core.queues import Function


class Writer(Protocol):
    """What the transport layer keeps on a peer to write to it directly (an asyncio transport)."""

    def write(self, data: bytes) -> None: ...

    def is_closing(self) -> bool: ...

    def get_write_buffer_size(self) -> int: ...


class Outlet(Protocol):
    """Where the server writes a socket peer's output when not straight to its transport: the connection, which
    applies ``--max-unsent``."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class PacketSink(Protocol):
    """Where the server hands an in-process peer's output (an HTTP submission, a cluster relay): the packets the
    engine queued for it, as packets, never encoded to bytes (``Peer.in_process``)."""

    def packets(self, packets: list[Packet]) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class PendingAck:
    """A JOB_CREATED that may only be sent once the store holds the job: a placeholder in the peer's outbox.

    ``data`` stays ``None`` until the store's transaction ends; then it is the JOB_CREATED or the ERROR to send:
    encoded for a socket, a :class:`Packet` for an in-process peer.
    """

    __slots__ = ("data", "peer")

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.data: bytes | Packet | None = None


def _add_joined(buffers: list[bytes], run: list[bytes]) -> None:
    joined = b"".join(run)
    if joined:  # a barrier's reply is empty
        buffers.append(joined)


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
        "in_process",
        "jobs_done",
        "large",
        "meta",
        "outbox",
        "port",
        "rank_bottom",
        "rank_top",
        "ranks",
        "sleeping",
        "timeouts",
        "unresolved",
        "unslept",
        "waiting",
        "wide",
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
        # Abilities whose ``sleepers`` do not list this connection (a wake-up took it out, or it registered while
        # awake): PRE_SLEEP puts it back in those alone, so sleeping costs no pass over a long list of abilities.
        self.unslept: list[Function] = []
        # A worker of more functions than WIDE_WORKER (EngineState.abilities_changed) keeps, for each, a rank that
        # orders them as ``abilities`` does (the higher the nearer its front), so that the order of a few is known
        # without looking through the list: a registration ranks above all (rank_top), a function moved to the
        # back by round robin below all (rank_bottom).
        self.wide = False
        self.ranks: dict[Function, int] = {}
        self.rank_top = 0
        self.rank_bottom = 0
        self.timeouts: dict[Function, float] = {}
        self.assigned: dict[bytes, Job] = {}
        self.waiting: set[Job] = set()
        self.sleeping = False
        self.woken = False
        self.exceptions = False
        self.meta = False  # the geartrain-meta option (protocol/meta.py): meta blocks in submits and assignments
        # The engine's output for it: encoded bytes for a socket; for an in-process peer (``in_process``: an HTTP
        # submission, a cluster relay) the packets a client hears as Packet objects, read by :meth:`take_packets`.
        self.outbox: list[bytes | PendingAck | Packet] = []
        self.in_process = False
        self.unresolved = 0  # PendingAcks in the outbox whose data is not known yet
        self.large = False  # the outbox holds a large payload, to be written on its own (EngineState._send_large)
        self.closed = False
        self.close_after_flush = False
        # The transport's own write path for this connection, set and used by the transport layer only (the
        # engine never touches it): None where the output goes elsewhere (an HTTP gateway, a closed socket).
        self.writer: Writer | None = None

    def take_output(self) -> bytes:
        """What is queued for this connection and may be sent now, as one buffer (:meth:`take_buffers`)."""
        return b"".join(self.take_buffers())

    def take_buffers(self) -> list[bytes]:
        """What is queued for this connection and may be sent now, as the buffers to write in order.

        Output behind a reply still unknown (a JOB_CREATED waiting for the store) stays queued, so replies keep
        request order. Small items are joined into one buffer; a large payload is a buffer of its own, never
        copied into another.
        """
        buffers: list[bytes] = []
        run: list[bytes] = []
        for entry in self._take_ready():
            item = cast(bytes, entry)  # a socket peer's outbox holds bytes alone
            if len(item) >= LARGE_PACKET:
                _add_joined(buffers, run)
                run = []
                buffers.append(item)
            else:
                run.append(item)
        _add_joined(buffers, run)
        return buffers

    def take_packets(self) -> list[Packet]:
        """An in-process peer's :meth:`take_buffers`: the packets queued for it that may be handed over now, in
        order (behind an unresolved PendingAck the rest waits). The engine queues everything a client can hear as
        packets for it; encoded bytes have no reader there (the replies of a worker's or an admin's requests,
        which an in-process peer never makes) and are left out, as is a resolved barrier's empty reply."""
        return [entry for entry in self._take_ready() if isinstance(entry, Packet)]

    def _take_ready(self) -> list[bytes | Packet]:
        """The items at the head of the outbox that may go now, taken out of it: up to the first PendingAck whose
        reply is not known yet, each resolved one replaced by its reply."""
        outbox = self.outbox
        ready: list[bytes | Packet] = []
        for entry in outbox:
            if isinstance(entry, PendingAck):
                if entry.data is None:
                    break
                self.unresolved -= 1
                entry = entry.data
            ready.append(entry)
        if len(ready) == len(outbox):
            outbox.clear()
            self.large = False
        else:
            del outbox[: len(ready)]
        return ready

    def __repr__(self) -> str:
        return f"<Peer {self.id} fd={self.fd} {self.address}>"
