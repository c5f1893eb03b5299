"""Job metadata on the wire: geartrain's ``geartrain-meta`` option (an extension; plain Gearman peers see nothing).

A connection that sends ``OPTION_REQ "geartrain-meta"`` and gets ``OPTION_RES`` back (gearmand answers ERROR: the
option is unknown there) has, from then on, a *meta block* in front of the data argument of:

* every SUBMIT_JOB* packet it sends (SUBMIT_JOB_EPOCH and SUBMIT_REDUCE_JOB* included): the job's metadata, which
  the server stores with the job (``traceparent``/``tracestate`` carry a W3C trace context);
* every JOB_ASSIGN, JOB_ASSIGN_UNIQ and JOB_ASSIGN_ALL it receives: ``attempt=N`` (1 for a job's first run; a job
  retried by the life cycle, or taken back from a worker that left, counts up), then the job's stored metadata.

A meta block is ``<n>:`` (``n`` in decimal, at most :data:`MAX_META_SIZE`) followed by ``n`` bytes of ``key=value``
lines joined by ``\\n``; the job's payload follows, unchanged. Keys are lower-case letters, digits, ``-`` and
``_``; values are printable ASCII. ``0:`` is an empty block. A client should wait for OPTION_RES before it sends a
submit with a block (a server reads each packet with the options set when the packet arrives).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from geartrain.errors import GearmanError

OPTION = b"geartrain-meta"
MAX_META_SIZE = 8192
ATTEMPT = "attempt"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

_KEY = re.compile(rb"[a-z0-9_-]{1,64}\Z")
_VALUE = re.compile(rb"[\x20-\x7e]*\Z")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}\Z")


class MetaError(GearmanError):
    """A meta block that does not follow the format above (the server answers ERROR, the job is not taken)."""


def split_meta(data: bytes) -> tuple[bytes, bytes]:
    """``(meta, payload)`` of a data argument that starts with a meta block; the meta is checked line by line."""
    colon = data.find(b":", 0, 6)
    digits = data[:colon] if colon > 0 else b""
    if not digits.isdigit():
        raise MetaError("the data does not start with a meta block (<length>:)")
    size = int(digits)
    if size > MAX_META_SIZE:
        raise MetaError(f"meta block of {size} bytes (at most {MAX_META_SIZE})")
    start = colon + 1
    end = start + size
    if end > len(data):
        raise MetaError(f"meta block of {size} bytes but only {len(data) - start} follow")
    meta = data[start:end]
    for line in meta.split(b"\n") if meta else ():
        key, sep, value = line.partition(b"=")
        if not sep or not _KEY.match(key) or not _VALUE.match(value):
            raise MetaError(f"bad meta line {line[:80]!r} (key=value, key of [a-z0-9_-], printable value)")
    return meta, data[end:]


def join_meta(meta: bytes, payload: bytes) -> bytes:
    """A meta block (already formatted lines) in front of ``payload``."""
    return b"%d:%s%s" % (len(meta), meta, payload)


def format_meta(fields: Mapping[str, str]) -> bytes:
    """``key=value`` lines of ``fields`` (checked as :func:`split_meta` checks them)."""
    lines = []
    for key, value in fields.items():
        line = f"{key}={value}".encode("ascii", "replace")
        lines.append(line)
    meta = b"\n".join(lines)
    split_meta(join_meta(meta, b""))  # the same rules both ways
    return meta


def parse_meta(meta: bytes) -> dict[str, str]:
    """The fields of a meta block's content (as returned by :func:`split_meta`)."""
    fields: dict[str, str] = {}
    for line in meta.split(b"\n") if meta else ():
        key, _, value = line.partition(b"=")
        fields[key.decode("ascii")] = value.decode("ascii")
    return fields


def worker_meta(attempt: int, meta: bytes) -> bytes:
    """The block content a worker with the option gets: its attempt first, then the job's own fields."""
    head = b"attempt=%d" % attempt
    return head + b"\n" + meta if meta else head


def valid_traceparent(value: str) -> bool:
    """A W3C ``traceparent`` of version 00 shape (version ff is invalid; all-zero ids are invalid)."""
    if not _TRACEPARENT.match(value) or value.startswith("ff"):
        return False
    _, trace_id, span_id, _ = value.split("-")
    return trace_id != "0" * 32 and span_id != "0" * 16
