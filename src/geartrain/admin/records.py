"""Typed records for the admin protocol's listings, and the parsers that read gearmand's exact text formats.

Listings are lines ending ``\\n`` closed by a ``.`` line; fields are tab-separated, except ``workers`` whose lines
read ``FD ADDRESS CLIENT_ID : FUNCTION FUNCTION ...``. Row order is the server's hash-table order: do not rely on it.
"""

from __future__ import annotations

from dataclasses import dataclass


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class FunctionStatus:
    """A ``status`` row: ``total`` jobs (queued and running), ``running`` jobs, registered ``workers``."""

    name: str
    total: int
    running: int
    workers: int

    @property
    def queued(self) -> int:
        return self.total - self.running


@dataclass(frozen=True, slots=True)
class PriorityStatus:
    """A ``prioritystatus`` row: queued (not running) jobs per priority, and registered workers."""

    name: str
    high: int
    normal: int
    low: int
    workers: int


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A ``workers`` row: one per connection (clients and admin connections too, with no functions).

    ``client_id`` is ``"-"`` until the connection sends SET_CLIENT_ID.
    """

    fd: int
    address: str
    client_id: str
    functions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A ``show jobs`` row: ``ignore`` marks a cancelled or abandoned job, ``stored`` one held by the persistent
    queue."""

    handle: str
    retries: int
    ignore: bool
    stored: bool


def _fields(line: bytes, count: int, what: str) -> list[bytes]:
    fields = line.split(b"\t")
    if len(fields) != count:
        raise ValueError(f"malformed {what} line {line!r}: {len(fields)} fields, expected {count}")
    return fields


def parse_status(lines: list[bytes]) -> list[FunctionStatus]:
    rows = []
    for line in lines:
        name, total, running, workers = _fields(line, 4, "status")
        rows.append(FunctionStatus(_text(name), int(total), int(running), int(workers)))
    return rows


def parse_priority_status(lines: list[bytes]) -> list[PriorityStatus]:
    rows = []
    for line in lines:
        name, high, normal, low, workers = _fields(line, 5, "prioritystatus")
        rows.append(PriorityStatus(_text(name), int(high), int(normal), int(low), int(workers)))
    return rows


def parse_workers(lines: list[bytes]) -> list[WorkerInfo]:
    rows = []
    for line in lines:
        # "40 127.0.0.1 worker-1 : f2 f1" or "41 127.0.0.1 - :" (no space after the colon without functions)
        head, colon, tail = line.partition(b" :")
        parts = head.split(b" ", 2)
        if not colon or len(parts) != 3:
            raise ValueError(f"malformed workers line {line!r}")
        fd, address, client_id = parts
        functions = tuple(_text(name) for name in tail.split(b" ") if name)
        rows.append(WorkerInfo(int(fd), _text(address), _text(client_id), functions))
    return rows


def parse_jobs(lines: list[bytes]) -> list[JobInfo]:
    rows = []
    for line in lines:
        handle, retries, ignore, stored = _fields(line, 4, "show jobs")
        rows.append(JobInfo(_text(handle), int(retries), ignore != b"0", stored != b"0"))
    return rows


def parse_unique_jobs(lines: list[bytes]) -> list[str]:
    return [_text(line) for line in lines]
