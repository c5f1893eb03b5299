"""Job submission over HTTP, compatible with gearmand's HTTP protocol plugin.

``POST /function`` (or PUT, or GET with an empty workload) submits the body as the workload. Headers, as gearmand
reads them: ``X-Gearman-Unique`` (absent means ``-``: coalesce on the workload, as gearmand does),
``X-Gearman-Background: true``, ``X-Gearman-Priority: high|low``. A background submit answers once the job is
created (and stored); a foreground one answers with the result. ``X-Gearman-Command`` says how the job ended.
geartrain's own: ``X-Gearman-Delay: 30s`` or ``X-Gearman-At: <RFC 3339>`` submit a delayed background job
(SUBMIT_JOB_EPOCH; docs/lifecycle.md).

The request becomes a client connection of the engine, like any other: an in-process peer that is handed the packets
a socket client would receive (as packets: nothing is encoded to bytes and parsed again), so coalescing,
priorities, maxqueue and persistence apply unchanged. When the worker sends WORK_DATA to an HTTP/1.1 client, the
response streams: each WORK_DATA is a chunk as it arrives, the result is the last one, and ``X-Gearman-Command``
comes as a trailer. Without WORK_DATA (or for HTTP/1.0) the response carries a ``Content-Length``, as gearmand's
does.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from geartrain.errors import ErrorCode
from geartrain.http.message import Request, chunk, last_chunk
from geartrain.lifecycle.when import WhenError, run_at
from geartrain.protocol.meta import TRACEPARENT, TRACESTATE, format_meta, join_meta, valid_traceparent
from geartrain.protocol.packets import Packet, PacketType

if TYPE_CHECKING:
    from geartrain.http.listener import HttpConnection
    from geartrain.http.node import NodeActions

P = PacketType

SUBMIT_TYPES = {
    ("high", False): P.SUBMIT_JOB_HIGH,
    ("normal", False): P.SUBMIT_JOB,
    ("low", False): P.SUBMIT_JOB_LOW,
    ("high", True): P.SUBMIT_JOB_HIGH_BG,
    ("normal", True): P.SUBMIT_JOB_BG,
    ("low", True): P.SUBMIT_JOB_LOW_BG,
}
ENDINGS: dict[int, str] = {
    P.WORK_COMPLETE: "WORK_COMPLETE",
    P.WORK_FAIL: "WORK_FAIL",
    P.WORK_EXCEPTION: "WORK_EXCEPTION",
}
# Errors that mean "try again later" rather than "your request is wrong" (QUEUE_ERROR: queue full or store down).
UNAVAILABLE_ERRORS = {ErrorCode.QUEUE_ERROR.encode(), ErrorCode.SERVER_ERROR.encode()}


def submit_job(actions: NodeActions, connection: HttpConnection, request: Request, function: str) -> None:
    """Submit the request's job and answer when the engine says how it went."""
    priority = (request.header("x-gearman-priority") or "normal").strip().lower()
    if priority not in ("high", "normal", "low"):
        connection.respond(400, b"X-Gearman-Priority must be high, normal or low\n")
        return
    background = (request.header("x-gearman-background") or "").strip().lower() in ("true", "1", "yes")
    unique = request.header("x-gearman-unique")
    unique_bytes = b"-" if unique is None else unique.encode("latin-1")
    workload = request.body if request.method != "GET" else b""
    try:
        when = run_at(request.header("x-gearman-delay"), request.header("x-gearman-at"), time.time())
    except WhenError as error:
        connection.respond(400, f"X-Gearman-Delay / X-Gearman-At: {error}\n".encode())
        return
    gateway = HttpClientPeer(actions, connection, background or when is not None)
    meta = trace_context(request)
    if meta is not None:  # kept with the job and handed to workers that ask (protocol/meta.py)
        gateway.peer.meta = True
        workload = join_meta(meta, workload)
    if when is not None:  # a delayed job is a background job (SUBMIT_JOB_EPOCH)
        args = (function.encode("utf-8"), unique_bytes, str(when).encode(), workload)
        gateway.submit(P.SUBMIT_JOB_EPOCH, args)
        return
    gateway.submit(SUBMIT_TYPES[priority, background], (function.encode("utf-8"), unique_bytes, workload))


def trace_context(request: Request) -> bytes | None:
    """The request's W3C trace context as meta lines, or ``None`` (no ``traceparent``, or one that is not valid:
    W3C Trace Context says to ignore it then, and start a new trace)."""
    parent = (request.header("traceparent") or "").strip().lower()
    if not valid_traceparent(parent):
        return None
    fields = {TRACEPARENT: parent}
    state = (request.header("tracestate") or "").strip()
    if state and len(state) <= 512 and state.isascii() and state.isprintable():
        fields[TRACESTATE] = state
    return format_meta(fields)


class HttpClientPeer:
    """Stands where a client socket would: the engine's packets for it become the response.

    The node's flush hands the peer's packets here (``actions.open_peer``), as it writes a socket's bytes.
    """

    def __init__(self, actions: NodeActions, connection: HttpConnection, background: bool) -> None:
        self.actions = actions
        self.connection = connection
        self.background = background
        self.peer = actions.open_peer(f"http:{connection.peer_address}", self)
        self.peer.identity = connection.identity  # the access policy judges the submit as the HTTP request's
        self.peer.exceptions = True  # the response carries the exception's data
        self.handle = ""
        self.streaming = False
        self.collected: list[bytes] = []
        self.done = False

    def submit(self, ptype: int, args: tuple[bytes, ...]) -> None:
        self.connection.on_lost = self._client_gone
        self.actions.submit(self.peer, ptype, args)

    # ------------------------------------------------------------------ what the server's flush calls

    def packets(self, packets: list[Packet]) -> None:
        for packet in packets:
            if self.done:
                return
            self._packet(packet)

    def close(self) -> None:
        """The engine closes the connection after a fatal error (already answered by then)."""
        if not self.done:
            self._fail(500, "ERROR", b"the server closed the job's connection\n")

    abort = close

    # ------------------------------------------------------------------ packets to HTTP

    def _packet(self, packet: Packet) -> None:
        ptype, args = packet.type, packet.args
        if ptype == P.JOB_CREATED:
            self.handle = args[0].decode("latin-1")
            if self.background:
                self._final(200, "JOB_CREATED", b"")
        elif ptype == P.WORK_DATA:
            self._data(args[1])
        elif ptype in ENDINGS:
            self._final(200, ENDINGS[ptype], args[1] if len(args) > 1 else b"")
        elif ptype == P.ERROR:
            code, text = args[0], args[1]
            status = 503 if code in UNAVAILABLE_ERRORS else 400
            self._fail(status, "ERROR", text + b"\n", [("X-Gearman-Error", code.decode("latin-1"))])
        # WORK_STATUS and WORK_WARNING have no place in the response.

    def _gearman_headers(self) -> list[tuple[str, str]]:
        return [("X-Gearman-Job-Handle", self.handle)]

    def _data(self, data: bytes) -> None:
        connection = self.connection
        if not connection.streaming_allowed:
            self.collected.append(data)
            return
        if not self.streaming:
            self.streaming = True
            headers = [
                *self._gearman_headers(),
                ("Content-Type", "application/octet-stream"),
                ("Transfer-Encoding", "chunked"),
                ("Trailer", "X-Gearman-Command"),
            ]
            connection.start_response(200, headers)
            for earlier in self.collected:
                connection.write(chunk(earlier))
            self.collected.clear()
        if data:
            connection.write(chunk(data))

    def _final(self, status: int, command: str, data: bytes) -> None:
        connection = self.connection
        if self.streaming:
            if data:
                connection.write(chunk(data))
            connection.write(last_chunk([("X-Gearman-Command", command)]))
            connection.end_response()
        else:
            body = b"".join([*self.collected, data])
            headers = [*self._gearman_headers(), ("X-Gearman-Command", command)]
            connection.respond(status, body, "application/octet-stream", headers)
        self._finish()

    def _fail(self, status: int, command: str, body: bytes, headers: list[tuple[str, str]] | None = None) -> None:
        connection = self.connection
        if self.streaming:  # too late for a status code: cut the body short so the client sees it incomplete
            if connection.transport is not None:
                connection.transport.abort()
        else:
            all_headers = [*self._gearman_headers(), ("X-Gearman-Command", command), *(headers or [])]
            connection.respond(status, body, headers=all_headers, close=True)
        self._finish()

    def _client_gone(self) -> None:
        """The HTTP client hung up before the end: like a Gearman client disconnecting."""
        if not self.done:
            self._finish()

    def _finish(self) -> None:
        # Leave the engine on the next loop turn: we are inside the server's flush, which must not recurse.
        self.done = True
        asyncio.get_running_loop().call_soon(self._disconnect)

    def _disconnect(self) -> None:
        self.actions.close_peer(self.peer)
