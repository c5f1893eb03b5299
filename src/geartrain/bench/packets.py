"""Gearman packets for the load generator: built once before timing, recognised by scanning bytes.

Deliberately independent of :mod:`geartrain.protocol`: the generator measures the server, so it must not share
the server's codec (a slow or wrong codec would then hide itself on both sides), and it only needs the handful of
packet types below.
"""

from __future__ import annotations

import struct

HEADER = struct.Struct(">4sII")
HEADER_SIZE = HEADER.size
REQ = b"\x00REQ"
RES = b"\x00RES"

# Packet type numbers from the Gearman protocol document.
CAN_DO = 1
PRE_SLEEP = 4
NOOP = 6
SUBMIT_JOB = 7
JOB_CREATED = 8
GRAB_JOB = 9
NO_JOB = 10
JOB_ASSIGN = 11
WORK_COMPLETE = 13
WORK_FAIL = 14
ECHO_REQ = 16
ECHO_RES = 17
SUBMIT_JOB_BG = 18
ERROR = 19


def request(packet_type: int, *arguments: bytes) -> bytes:
    """One request packet: NUL-separated arguments behind the 12-byte header."""
    body = b"\x00".join(arguments)
    return HEADER.pack(REQ, packet_type, len(body)) + body


def response_header(packet_type: int, size: int | None = None) -> bytes:
    """The first 8 bytes of a response of ``packet_type`` (magic + type), or all 12 when ``size`` is known."""
    head = RES + struct.pack(">I", packet_type)
    return head if size is None else head + struct.pack(">I", size)


def bg_submits(function: bytes, payload: bytes, count: int, unique_prefix: bytes | None, start: int = 0) -> bytes:
    """``count`` SUBMIT_JOB_BG packets back to back, ready to pipeline.

    ``unique_prefix=None`` sends an empty unique (every packet identical, so the blob is one packet repeated);
    otherwise each job gets the distinct unique ``prefix + number`` (``start`` onwards), as libgearman clients do.
    """
    if unique_prefix is None:
        return request(SUBMIT_JOB_BG, function, b"", payload) * count
    return b"".join(
        request(SUBMIT_JOB_BG, function, unique_prefix + str(n).encode(), payload) for n in range(start, start + count)
    )


class PatternCounter:
    """Counts a byte pattern in a stream that arrives in arbitrary chunks (a match may straddle two chunks).

    Used for background submits, whose only reply is JOB_CREATED: counting its header is far cheaper than
    decoding every reply, so the generator stays ahead of the server. The pattern must not be able to overlap
    itself inside the stream (Gearman headers start with a NUL, which handles and function names never contain).
    """

    __slots__ = ("_keep", "_tail", "count", "pattern")

    def __init__(self, pattern: bytes) -> None:
        self.pattern = pattern
        self.count = 0
        self._tail = b""
        self._keep = len(pattern) - 1

    def feed(self, chunk: bytes) -> int:
        """Add the matches in ``chunk``; returns how many it completed."""
        data = self._tail + chunk if self._tail else chunk
        found = data.count(self.pattern)
        self.count += found
        # A match can only straddle the boundary if it starts in the last len-1 bytes; those bytes cannot hold a
        # whole match, so keeping them never counts one twice.
        self._tail = data[-self._keep :] if self._keep else b""
        return found


class FrameReader:
    """Splits a response stream into ``(type, body)`` frames; bytes of an incomplete frame wait for the next feed."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[tuple[int, bytes]]:
        """Add ``chunk``; returns every frame it completed, in order."""
        frames: list[tuple[int, bytes]] = []
        buffer = self._buffer
        buffer += chunk
        offset = 0
        end = len(buffer)
        unpack = HEADER.unpack_from
        while end - offset >= HEADER_SIZE:
            magic, packet_type, size = unpack(buffer, offset)
            if magic != RES:
                raise ValueError(f"not a Gearman response: {bytes(buffer[offset : offset + 12])!r}")
            if end - offset - HEADER_SIZE < size:
                break
            start = offset + HEADER_SIZE
            offset = start + size
            frames.append((packet_type, bytes(buffer[start:offset])))
        del buffer[:offset]
        return frames

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of their frame."""
        return len(self._buffer)
