"""HTTP/1.x messages: parse a request head, build response heads and chunked-encoding frames.

Only what the listener needs: requests with a ``Content-Length`` body (or none), responses with a
``Content-Length`` or chunked body. Header names are matched case-insensitively.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

MAX_HEAD_SIZE = 64 * 1024

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
    409: "Conflict",
    411: "Length Required",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


class BadRequest(Exception):
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
    if "transfer-encoding" in headers:
        raise BadRequest(501, "chunked request bodies are not supported; send Content-Length")
    split = urlsplit(target)
    request = Request(method.upper(), target, version, headers)
    request.path = unquote(split.path)
    request.query = parse_qs(split.query)
    return request


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
