"""asyncio glue: one :class:`GearmanConnection` per socket, feeding the decoder and the engine.

Everything a ``data_received`` call completes is handled in that call (no coroutine per packet); the engine's
output for every connection it touched is written once at the end, one ``write`` per connection.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from time import time as wall_clock
from typing import TYPE_CHECKING, cast

from geartrain.errors import ErrorCode, ProtocolError
from geartrain.protocol.codec import Decoder, deliver
from geartrain.protocol.packets import AdminLine
from geartrain.server.core.replies import error_packet

if TYPE_CHECKING:
    from geartrain.server.core.peers import Peer
    from geartrain.server.server import GearmanServer

log = logging.getLogger("geartrain.connection")


def _after_close(item: AdminLine | ProtocolError) -> None:
    """Input of a closed connection is not acted on (data_received checks first; this keeps the type whole)."""


class GearmanConnection(asyncio.Protocol):
    """One client, worker or admin connection."""

    __slots__ = (
        "_decoder",
        "_feed_to",
        "_flush",
        "_handlers",
        "_on_other",
        "_peer",
        "_reading",
        "_server",
        "_silent",
        "_transport",
    )

    def __init__(self, server: GearmanServer) -> None:
        self._server = server
        self._decoder = Decoder(max_packet_size=server.config.max_packet_size)
        self._transport: asyncio.Transport | None = None
        self._peer: Peer | None = None
        self._silent = True  # nothing valid received yet (--idle-timeout)
        self._reading = True  # whether to read on once a large packet read in place is complete
        # What every input needs, bound once: data_received runs per read, and each lookup is bytecode there.
        # The engine replaces handler entries in place, never the list, so holding the list is safe.
        self._feed_to = self._decoder.feed_to
        self._handlers = server.engine.handlers
        self._on_other: Callable[[AdminLine | ProtocolError], None] = self._other_input
        self._flush = server.flush

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        guard = self._server.guard
        if not guard.admit(len(self._server.connections), transport):
            return
        guard.set_buffer_limits(self._transport)
        guard.opened(self, time.monotonic())
        sock = transport.get_extra_info("socket")
        peername = transport.get_extra_info("peername")
        address = peername[0] if isinstance(peername, tuple) else "unix"
        port = int(peername[1]) if isinstance(peername, tuple) and len(peername) > 1 else 0
        fd = sock.fileno() if sock is not None else -1
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            self._server.tune_socket(sock)
        peer = self._peer = self._server.engine.connect(fd, address, port, wall_clock())
        peer.writer = self._transport  # the server's flush writes to it directly while nothing is unsent
        self._server.access.connected(peer, transport)  # TLS certificate names become the peer's identity
        self._server.connections[peer.id] = self

    def data_received(self, data: bytes) -> None:
        peer = self._peer
        if peer is None or peer.closed:
            return
        try:
            if self._silent:
                self._first_input(data, peer)
            else:
                self._feed_to(data, self._handlers, peer, wall_clock(), self._on_other)
        except Exception:
            self._internal_error(peer)
        self._flush(peer)
        if self._decoder.assembling and not peer.close_after_flush:
            self._read_in_place()

    def _internal_error(self, peer: Peer) -> None:
        # A bug of ours must cost this connection, never the server and everyone else on it.
        log.exception("internal error handling input from %s; closing that connection", peer.address)
        self._server.engine.reply(
            peer, error_packet(ErrorCode.SERVER_ERROR, "Internal server error; see the server log")
        )
        peer.close_after_flush = True

    # ------------------------------------------------------------------ large packets, read in place

    def _read_in_place(self) -> None:
        """A large packet is under way (codec.LARGE_PACKET): the transport reads the rest of it straight into its
        place (:class:`LargePacketReader`), instead of into buffers of its own that are then copied there."""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            _switch_protocol(transport, LargePacketReader(self))

    def read_into(self) -> memoryview:
        return self._decoder.assembly_space()

    def read_done(self, nbytes: int) -> None:
        """``nbytes`` more of the large packet came. Once it is whole, read nothing until the transport has let
        go of the space it read into (it does after this call), then take the packet (:meth:`_large_packet`)."""
        if not self._decoder.assembly_filled(nbytes):
            return
        transport = self._transport
        if transport is not None:
            self._reading = transport.is_reading()
            transport.pause_reading()
            transport.set_protocol(self)
            asyncio.get_running_loop().call_soon(self._large_packet)

    def _large_packet(self) -> None:
        """Read on as before, and handle the large packet (unless input came first: data_received took it)."""
        transport = self._transport
        if transport is None or transport.is_closing() or not self._decoder.assembling:
            return
        if self._reading:
            transport.resume_reading()
        packet = self._decoder.assembled()
        peer = self._peer
        if peer is None or peer.closed:
            return
        try:
            if self._silent:
                self._silent = False
                self._server.guard.spoke(self)
            self._handlers[packet.type](peer, packet.args, wall_clock())
        except Exception:
            self._internal_error(peer)
        self._flush(peer)

    def _first_input(self, data: bytes, peer: Peer) -> None:
        """Input while nothing valid has come yet: the first valid item ends the --idle-timeout watch."""
        items = self._decoder.feed(data)
        if any(not isinstance(item, ProtocolError) for item in items):
            self._silent = False
            self._server.guard.spoke(self)
        deliver(items, self._handlers, peer, wall_clock(), self._on_other)

    def _other_input(self, item: AdminLine | ProtocolError) -> None:
        """An admin command line, or input that is no valid packet."""
        peer = self._peer
        assert peer is not None
        if type(item) is AdminLine:
            self._server.admin.run(peer, item.line)
        else:
            self._server.engine.protocol_error(peer, cast(ProtocolError, item))
            log.info("bad input from %s: %s", peer.address, item)

    def write(self, data: bytes) -> None:
        """Send bytes the engine queued; the server calls this once per connection per flush."""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            # Nothing unsent is the common case, and the cap never cuts then: check it without a call.
            if transport.get_write_buffer_size() and not self._server.guard.may_write(
                transport, len(data), self._peer.address if self._peer else "?"
            ):
                transport.abort()  # it stopped reading: its unsent output must not grow the server without bound
                return
            transport.write(data)

    def pause_writing(self) -> None:
        """Unsent output passed --output-high-water: read nothing more from this peer until it catches up."""
        if self._transport is not None:
            self._server.guard.paused += 1
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_other = _after_close  # the bound method refers back to this object: leave no cycle behind
        peer = self._peer
        if peer is None:
            return
        peer.writer = None
        self._server.guard.forget(self)
        self._server.connections.pop(peer.id, None)
        try:
            self._server.engine.disconnect(peer, time.time())
        except Exception:
            log.exception("internal error cleaning up after %s", peer.address)
        self._server.flush()


def _switch_protocol(transport: asyncio.Transport, protocol: asyncio.BaseProtocol) -> None:
    """Hand the transport's input to ``protocol`` from its next read on. uvloop chooses how it reads (into a
    buffer of its own, or into one the protocol gives) when reading starts, hence the pause; reading paused by
    someone else (--output-high-water) stays paused, and starts the new way when they resume it."""
    reading = transport.is_reading()
    transport.pause_reading()
    transport.set_protocol(protocol)
    if reading:
        transport.resume_reading()


class LargePacketReader(asyncio.BufferedProtocol):
    """Stands in for a connection while the rest of a large packet is read straight into the bytes object the
    engine will keep (the kernel copies it once, from the socket to its place); then hands the connection back."""

    __slots__ = ("_connection",)

    def __init__(self, connection: GearmanConnection) -> None:
        self._connection = connection

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._connection.read_into()  # never beyond the packet: what follows is the connection's to read

    def buffer_updated(self, nbytes: int) -> None:
        self._connection.read_done(nbytes)

    def eof_received(self) -> bool | None:
        return self._connection.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._connection.connection_lost(exc)

    def pause_writing(self) -> None:
        self._connection.pause_writing()

    def resume_writing(self) -> None:
        self._connection.resume_writing()
