"""What client and worker connections share: one asyncio.Protocol per server, addresses and reconnect backoff.

A :class:`PacketConnection` feeds every received chunk to a sans-IO :class:`~geartrain.protocol.codec.Decoder` and
dispatches each packet through a table (no coroutine per packet). Outgoing packets are gathered and written once per
loop turn, so a burst of submits, or a worker's WORK_COMPLETE and its next GRAB_JOB_ALL, leave in one ``write``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
from collections.abc import Callable
from typing import ClassVar, cast

from geartrain.errors import ConnectionLost, ProtocolError
from geartrain.protocol.codec import Decoder
from geartrain.protocol.packets import RES, Packet, PacketType

log = logging.getLogger("geartrain.client")

DEFAULT_PORT = 4730

Address = tuple[str, int]
ServerSpec = str | tuple[str, int]


def parse_address(server: ServerSpec) -> Address:
    """``"host:port"``, ``"host"`` (port 4730), ``"[::1]:4730"`` or a ``(host, port)`` tuple -> ``(host, port)``."""
    if isinstance(server, tuple):
        return server[0], int(server[1])
    text = server.strip()
    if text.startswith("["):  # bracketed IPv6 literal
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else DEFAULT_PORT
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host or "localhost", int(port)
    return text or "localhost", DEFAULT_PORT


def format_address(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_servers(servers: ServerSpec | list[ServerSpec] | tuple[ServerSpec, ...]) -> list[Address]:
    """One server or a list of them; a single string may hold several separated by commas (GEARMAN_SERVER style)."""
    if isinstance(servers, str):
        specs: list[ServerSpec] = [part for part in servers.split(",") if part.strip()]
    elif isinstance(servers, tuple) and len(servers) == 2 and isinstance(servers[1], int):
        specs = [servers]
    else:
        specs = list(cast("list[ServerSpec]", servers))
    if not specs:
        raise ValueError("no Gearman servers given")
    return [parse_address(spec) for spec in specs]


class Backoff:
    """Exponential reconnect delays with jitter: ``initial``, doubling up to ``maximum``, reset on success.

    Jitter (up to 20 % either way) keeps many clients from reconnecting to a recovered server in lock step.
    """

    __slots__ = ("_failures", "initial", "maximum")

    def __init__(self, initial: float = 0.05, maximum: float = 10.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self._failures = 0

    @property
    def failures(self) -> int:
        return self._failures

    def next_delay(self) -> float:
        """Record one more failure and return how long to wait before the next attempt."""
        delay = min(self.maximum, self.initial * 2.0 ** min(self._failures, 32))
        self._failures += 1
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self._failures = 0


def auth_option(secret: str) -> bytes:
    """The OPTION_REQ argument that presents ``secret`` to a server's access control (docs/security.md)."""
    raw = secret.encode()
    if not raw or b"\0" in raw:
        raise ValueError("a secret must be a non-empty string without NUL characters")
    return b"auth=" + raw


def _tune_socket(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        # Gearman is request/response with small packets: Nagle would add up to 40 ms to every round trip.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class PacketConnection(asyncio.Protocol):
    """One binary-protocol connection to a server; subclasses fill :attr:`HANDLERS` (packet type -> method name)."""

    HANDLERS: ClassVar[dict[int, str]] = {}

    def __init__(self, address: Address) -> None:
        self.address = address
        self.name = format_address(address)
        self._decoder = Decoder(accept=RES, admin=False)
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._handlers: dict[int, Callable[[tuple[bytes, ...]], None]] = {
            ptype: getattr(self, method) for ptype, method in self.HANDLERS.items()
        }
        #: Resolved when the connection is gone (with ``None``; the reason is in :attr:`lost_reason`).
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self.lost_reason: BaseException | None = None

    # ------------------------------------------------------------------ state

    @property
    def alive(self) -> bool:
        return self._transport is not None and not self.closed.done()

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        _tune_socket(transport)

    def data_received(self, data: bytes) -> None:
        handlers = self._handlers
        for item in self._decoder.feed(data):
            if type(item) is Packet:
                handler = handlers.get(item.type)
                if handler is None:
                    self.unexpected(item)
                else:
                    handler(item.args)
            else:
                # A reply we cannot frame or read would shift every later reply onto the wrong request: give up on
                # this connection rather than guess.
                error = cast(ProtocolError, item)
                log.warning("%s: protocol error from server: %s; closing", self.name, error)
                self.lost_reason = error
                self.abort()
                return

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed.done():
            return
        self._transport = None
        self._out.clear()
        if self.lost_reason is None:
            self.lost_reason = exc
        self.closed.set_result(None)
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()
        self.lost(self.connection_error())

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------------ hooks for subclasses

    def lost(self, error: ConnectionLost) -> None:
        """The connection is gone: fail whatever waits on it."""

    def unexpected(self, packet: Packet) -> None:
        log.debug("%s: ignoring unexpected %s", self.name, PacketType(packet.type).name)

    def connection_error(self) -> ConnectionLost:
        reason = self.lost_reason
        text = f"connection to {self.name} lost" + (f": {reason}" if reason else "")
        error = ConnectionLost(text)
        error.__cause__ = reason
        return error

    # ------------------------------------------------------------------ writing

    def send(self, packet: bytes) -> None:
        """Queue one encoded packet; everything queued in this loop turn goes out in one write."""
        if self._transport is None:
            return
        self._out.append(packet)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if not out:
            return
        transport = self._transport
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        if transport is not None and not transport.is_closing():
            transport.write(data)

    async def drain(self) -> None:
        """Wait while the kernel buffer is full (flow control for callers that queue many packets)."""
        if not self._paused or self.closed.done():
            return
        waiter = self._loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def close(self) -> None:
        """Write what is queued, then close."""
        self._flush()
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Close at once, dropping queued output."""
        self._out.clear()
        if self._transport is not None:
            self._transport.abort()


async def open_connection(
    factory: Callable[[], PacketConnection],
    address: Address,
    timeout: float | None,
    tls: ssl.SSLContext | None = None,
) -> PacketConnection:
    """Connect ``factory()``'s protocol to ``address`` (over TLS with ``tls``, the handshake within ``timeout``);
    OSError, TLS errors and timeouts become :class:`ConnectionLost`."""
    loop = asyncio.get_running_loop()
    host, port = address
    try:
        async with asyncio.timeout(timeout):
            _, protocol = await loop.create_connection(factory, host, port, ssl=tls)
    except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
        reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
        raise ConnectionLost(f"cannot connect to {format_address(address)}: {reason}") from exc
    return protocol
