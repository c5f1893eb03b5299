"""The HTTP listener: a small HTTP/1.1 server on the Gearman server's own event loop.

Standard library only (the core server needs nothing else): one :class:`HttpConnection` per socket reads a request
head and its body (``Content-Length`` or chunked), hands the request to the router, and serves the next request of
a keep-alive connection only once the current response has ended (responses may stream: job results, server-sent
events).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from geartrain.http.message import MAX_HEAD_SIZE, BadRequest, ChunkedBody, Request, parse_head, response_head
from geartrain.listening import listen_error

if TYPE_CHECKING:
    from geartrain.http.node import NodeActions, NodeView

log = logging.getLogger("geartrain.http")

# A request body and the offset where it ends in the connection's buffer, or None while it is incomplete.
BodyRead = tuple[bytes, int] | None

SERVER_HEADER = "geartrain"
# The HTTP side shares the process's file descriptors with the Gearman port: its connections are capped, and a
# connection that has not completed a request within REQUEST_TIMEOUT seconds (an idle keep-alive connection, or a
# client sending a head or body a byte at a time) is closed, so that slow clients cannot hold sockets without end.
MAX_CONNECTIONS = 1024
REQUEST_TIMEOUT = 30.0


class HttpConnection(asyncio.Protocol):
    """One HTTP client connection."""

    def __init__(self, listener: HttpListener) -> None:
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.peer_address = "?"
        self.identity: tuple[str, ...] = ()  # what the access policy knows this request as (set per request)
        self._buffer = bytearray()
        # The request whose head is parsed and whose body is still arriving, with the reader of that body.
        self._pending: tuple[Request, Callable[[bytearray], BodyRead]] | None = None
        self._busy = False  # a response is in progress; later requests wait in the buffer
        self._keep_alive = False
        self._closing = False  # the last response said Connection: close; later requests are ignored
        self.waiting_since: float | None = None  # when it began waiting for a complete request (None: busy)
        self.version = "HTTP/1.1"
        self.on_lost: Callable[[], None] | None = None  # set by a streaming response that must hear of a hang-up

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.waiting_since = time.monotonic()
        if len(self.listener.connections) >= self.listener.max_connections:
            self.listener.refused += 1
            self._reject(BadRequest(503, "too many HTTP connections; try again later"))
            return
        peername = transport.get_extra_info("peername")
        self.peer_address = str(peername[0]) if isinstance(peername, tuple) else "unix"
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # responses are written whole
        self.listener.connections.add(self)

    @property
    def ssl_object(self) -> object:
        """The TLS session (for the client certificate), or ``None`` on plain HTTP."""
        return self.transport.get_extra_info("ssl_object") if self.transport is not None else None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._next_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.connections.discard(self)
        self.transport = None
        on_lost, self.on_lost = self.on_lost, None
        if on_lost is not None:
            on_lost()

    # ------------------------------------------------------------------ requests

    def _next_request(self) -> None:
        while not self._busy and not self._closing and self.transport is not None:
            buffer = self._buffer
            if self._pending is None:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(buffer) > MAX_HEAD_SIZE:
                        self._reject(BadRequest(431, "request head too large"))
                    return
                try:
                    self._pending = self._start_body(parse_head(bytes(buffer[:end])), end + 4)
                except BadRequest as error:
                    self._reject(error)
                    return
            request, reader = self._pending
            try:
                body = reader(buffer)
            except BadRequest as error:
                self._reject(error)
                return
            if body is None:
                return  # the body is still on its way
            self._pending = None
            request.body, consumed = body
            del buffer[:consumed]
            self._busy = True
            self.waiting_since = None
            self._keep_alive = request.keep_alive
            self.version = request.version
            try:
                self.listener.router(self, request)
            except Exception:
                log.exception("internal error answering %s %s", request.method, request.target)
                if self._busy:
                    self.respond(500, b"internal error; see the server log\n", close=True)

    def _start_body(self, request: Request, start: int) -> tuple[Request, Callable[[bytearray], BodyRead]]:
        """The request and how to read its body, which begins at ``start`` in the buffer."""
        limit = self.listener.max_body_size
        if request.chunked:
            return request, ChunkedBody(start, limit).read
        length = request.content_length
        if length > limit:
            raise BadRequest(413, f"body larger than {limit} bytes")

        def fixed_length(buffer: bytearray) -> BodyRead:
            if len(buffer) < start + length:
                return None
            return bytes(buffer[start : start + length]), start + length

        return request, fixed_length

    def time_out(self) -> None:
        """No complete request within REQUEST_TIMEOUT: 408 for one that had begun, a plain close for an idle one."""
        if self._buffer:
            self._reject(BadRequest(408, "request not completed in time"))
        elif self.transport is not None:
            self._closing = True
            self.transport.close()

    def _reject(self, error: BadRequest) -> None:
        self._busy = True
        self.respond(error.status, (error.reason + "\n").encode(), close=True)

    # ------------------------------------------------------------------ responses

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def start_response(
        self, status: int, headers: list[tuple[str, str]], *, close: bool = False, body: bytes = b""
    ) -> None:
        """Send a status line, headers and the start of the body, in one write (the caller writes the rest of the
        body, if any, and calls :meth:`end_response`).

        ``close``: the body ends when the connection does (an event stream).
        """
        if close:
            self._keep_alive = False
        connection = "keep-alive" if self._keep_alive else "close"
        all_headers = [("Server", SERVER_HEADER), *headers, ("Connection", connection)]
        self.write(response_head(status, all_headers, version=self.version) + body)

    def respond(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "text/plain; charset=utf-8",
        headers: list[tuple[str, str]] | None = None,
        *,
        head_only: bool = False,
        close: bool = False,
    ) -> None:
        """A complete response with a ``Content-Length``; ends it."""
        if close:
            self._keep_alive = False
        extra = list(headers or [])
        if body or status not in (204, 304):
            extra += [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        self.start_response(status, extra, body=b"" if head_only else body)
        self.end_response()

    def respond_json(self, data: object, status: int = 200, *, head_only: bool = False) -> None:
        body = json.dumps(data, separators=(",", ":")).encode()
        self.respond(status, body, "application/json", [("Cache-Control", "no-store")], head_only=head_only)

    def end_response(self) -> None:
        """The response is complete: close, or serve the next request of a keep-alive connection."""
        self.on_lost = None
        self._busy = False
        self.waiting_since = time.monotonic()
        if not self._keep_alive:
            self._closing = True
            if self.transport is not None:
                self.transport.close()
            return
        if self._buffer:
            asyncio.get_running_loop().call_soon(self._next_request)

    @property
    def streaming_allowed(self) -> bool:
        """Chunked transfer encoding is HTTP/1.1 only."""
        return self.version == "HTTP/1.1"


class HttpListener:
    """Listening sockets and shared state of the HTTP side of one node: it reads the node through ``view`` and
    acts on it through ``actions`` (:mod:`geartrain.http.node`)."""

    def __init__(self, view: NodeView, actions: NodeActions, hosts: tuple[str, ...], port: int) -> None:
        from geartrain.http.routes import Router  # the router imports the features; keep this module small

        self.view = view
        self.actions = actions
        self.hosts = hosts
        self.port_wanted = port
        self.started = time.time()
        self.connections: set[HttpConnection] = set()
        self.max_connections = MAX_CONNECTIONS
        self.request_timeout = REQUEST_TIMEOUT
        self.refused = 0  # connections answered 503 for MAX_CONNECTIONS
        self._sweeper: asyncio.TimerHandle | None = None
        self.addresses: list[tuple[str, int]] = []
        self.max_body_size = view.max_packet_size
        self._servers: list[asyncio.AbstractServer] = []
        self.router = Router(self)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        tls_context = self.view.tls_context
        handshake_timeout = self.view.tls_handshake_timeout
        for host in self.hosts:
            try:
                server = await loop.create_server(
                    lambda: HttpConnection(self),
                    host=host or None,
                    port=self.port_wanted,
                    reuse_address=True,
                    ssl=tls_context,  # --ssl serves HTTPS here too, with the same certificate
                    ssl_handshake_timeout=handshake_timeout,
                )
            except (OSError, OverflowError) as error:
                raise listen_error(host, self.port_wanted, error, "HTTP") from error
            self._servers.append(server)
            self.addresses.extend(sock.getsockname()[:2] for sock in server.sockets)
        for address in self.addresses:
            log.info("HTTP%s listening on %s", "S" if tls_context is not None else "", address)
        self.router.start()
        self._sweep()

    def _sweep(self) -> None:
        """Close the connections that have waited longer than ``request_timeout`` for a complete request."""
        deadline = time.monotonic() - self.request_timeout
        for connection in list(self.connections):
            if connection.waiting_since is not None and connection.waiting_since < deadline:
                connection.time_out()
        interval = min(max(self.request_timeout / 4, 0.05), 5.0)
        self._sweeper = asyncio.get_running_loop().call_later(interval, self._sweep)

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return int(self.addresses[0][1])

    async def close(self) -> None:
        self.router.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
        for server in self._servers:
            await server.wait_closed()
