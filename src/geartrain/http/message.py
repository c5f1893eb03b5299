"""HTTP/1.x messages: parse a request head, build response heads and chunked-encoding frames.

Only what the listener needs: requests with a ``Content-Length`` body, a chunked body or none, responses with a
``Content-Length`` or chunked body. Header names are matched case-insensitively.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from geartrain.errors import GearmanError

MAX_HEAD_SIZE = 64 * 1024
# A chunk-size line (hex size and extensions) longer than this is not a real client's.
MAX_CHUNK_LINE = 1024

REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    302: "Found",
    304: "Not Modified",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


class BadRequest(GearmanError):
    """The request cannot be understood: answered with ``status`` and the connection closed."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class Request:
    """One parsed request head, and its body once read."""

    method: str
    target: str
    version: str
    headers: dict[str, str]
    path: str = ""
    query: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def param(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default

    @property
    def keep_alive(self) -> bool:
        """HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 only when asked."""
        connection = (self.header("connection") or "").lower()
        if self.version == "HTTP/1.1":
            return "close" not in connection
        return "keep-alive" in connection

    @property
    def chunked(self) -> bool:
        """The body comes in chunks (``Transfer-Encoding: chunked``; parse_head refuses any other coding)."""
        return "transfer-encoding" in self.headers

    @property
    def content_length(self) -> int:
        raw = self.header("content-length")
        if raw is None:
            return 0
        if not raw.strip().isdigit():
            raise BadRequest(400, "bad Content-Length")
        return int(raw)


def parse_head(head: bytes) -> Request:
    """Parse the request line and headers (``head`` ends before the blank line)."""
    try:
        lines = head.decode("latin-1").split("\r\n")
    except UnicodeDecodeError as exc:  # latin-1 decodes any byte; kept for clarity of intent
        raise BadRequest(400, "undecodable head") from exc
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise BadRequest(400, "bad request line")
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequest(505, "only HTTP/1.0 and HTTP/1.1 are spoken here")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise BadRequest(400, "bad header line")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    coding = headers.get("transfer-encoding")
    if coding is not None:
        if coding.lower() != "chunked":
            raise BadRequest(501, f"transfer coding {coding!r} is not supported; send chunked or Content-Length")
        if "content-length" in headers:  # RFC 9112 6.3: both at once is how requests are smuggled
            raise BadRequest(400, "both Transfer-Encoding and Content-Length")
    split = urlsplit(target)
    request = Request(method.upper(), target, version, headers)
    request.path = unquote(split.path)
    request.query = parse_qs(split.query)
    return request


class ChunkedBody:
    """Decodes one chunked request body from the connection's buffer, resuming where the last read stopped.

    The buffer only grows while the body is incomplete (the request is consumed whole once it is), so offsets into
    it stay valid between reads, and each byte is looked at once however many reads the body takes. Extensions and
    trailer fields are read and dropped.
    """

    __slots__ = ("_in_trailers", "_limit", "_parts", "_pos", "_size", "_start")

    def __init__(self, start: int, limit: int) -> None:
        self._start = start
        self._limit = limit
        self._pos = start
        self._parts: list[bytes] = []
        self._size = 0
        self._in_trailers = False

    def read(self, buffer: bytes | bytearray) -> tuple[bytes, int] | None:
        """``(body, end)`` once complete, ``end`` being the offset after the final CRLF; ``None`` until then.

        Raises :class:`BadRequest`: 400 for a malformed chunk, 413 once the sizes announced pass ``limit`` (so
        nothing larger is ever waited for), 431 for trailer fields larger than a request head may be.
        """
        while not self._in_trailers:
            line_end = buffer.find(b"\r\n", self._pos, self._pos + MAX_CHUNK_LINE + 2)
            if line_end < 0:
                if len(buffer) - self._pos > MAX_CHUNK_LINE:
                    raise BadRequest(400, "chunk-size line too long")
                return None
            size_text = bytes(buffer[self._pos : line_end]).split(b";", 1)[0].strip()
            if not size_text or len(size_text) > 16 or size_text.strip(b"0123456789abcdefABCDEF"):
                raise BadRequest(400, "bad chunk size")
            size = int(size_text, 16)
            if self._size + size > self._limit:
                raise BadRequest(413, f"body larger than {self._limit} bytes")
            data_start = line_end + 2
            if size == 0:
                self._pos = data_start
                self._in_trailers = True
                break
            if len(buffer) < data_start + size + 2:
                return None  # the whole chunk is read again next time: its size line is short
            if buffer[data_start + size : data_start + size + 2] != b"\r\n":
                raise BadRequest(400, "chunk data not followed by CRLF")
            self._parts.append(bytes(buffer[data_start : data_start + size]))
            self._size += size
            self._pos = data_start + size + 2
        while True:  # trailer fields, then the blank line that ends the body
            line_end = buffer.find(b"\r\n", self._pos)
            if line_end < 0:
                if len(buffer) - self._pos > MAX_HEAD_SIZE:
                    raise BadRequest(431, "trailer fields too large")
                return None
            if line_end == self._pos:
                return b"".join(self._parts), line_end + 2
            if b":" not in buffer[self._pos : line_end]:
                raise BadRequest(400, "bad trailer field")
            self._pos = line_end + 2


def response_head(
    status: int, headers: list[tuple[str, str]], *, version: str = "HTTP/1.1", reason: str | None = None
) -> bytes:
    """A status line and headers, ending with the blank line."""
    lines = [f"{version} {status} {reason or REASONS.get(status, 'Unknown')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (empty data would end the body, so callers skip it)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def last_chunk(trailers: list[tuple[str, str]] | None = None) -> bytes:
    """The end of a chunked body, with optional trailer fields."""
    fields = "".join(f"{name}: {value}\r\n" for name, value in trailers or ())
    return b"0\r\n" + fields.encode("latin-1") + b"\r\n"
