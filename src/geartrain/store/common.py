"""Helpers the database stores share: driver imports, table names, batch normalisation."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from geartrain.server.core.records import Removal, StoredJob, unique_from_key
from geartrain.store.base import StoreError, StoreMissingDriver, StoreUnavailable

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
T = TypeVar("T")


def require_driver(module: str, extra: str) -> None:
    """Fail early, with the install command, when a store's driver package is missing."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise StoreMissingDriver(
            f"the {extra} store needs the Python package {module!r}: pip install 'geartrain[{extra}]' ({exc})"
        ) from exc


def check_identifier(name: str) -> str:
    """``name`` if it is a plain SQL identifier (table names cannot be query parameters, so they are checked).

    63 characters at most: PostgreSQL silently truncates longer names.
    """
    if not _IDENTIFIER.fullmatch(name):
        raise StoreError(f"invalid table name {name!r}: use up to 63 letters, digits and underscores")
    return name


def job_from_row(
    key: bytes, function: bytes, priority: int | None, data: bytes | None, when: int | None, reducer: bytes | None
) -> StoredJob:
    """A record read back from a SQL row; NULL columns (old gearmand tables) get gearmand's defaults."""
    return StoredJob(
        key,
        function,
        unique_from_key(key),
        int(priority if priority is not None else 1),
        bytes(data or b""),
        int(when or 0),
        None if reducer is None else bytes(reducer),
    )


def latest_adds(adds: Sequence[StoredJob]) -> list[StoredJob]:
    """``adds`` with only the last add of each (key, function), in the order of those last adds.

    A batch normally names each key once; if not, the later add wins and counts as the later submission, as in the
    memory store. It also keeps PostgreSQL's ``ON CONFLICT DO UPDATE`` from touching one row twice in a statement.
    """
    latest: dict[tuple[bytes, bytes], StoredJob] = {}
    for job in adds:
        latest.pop((job.key, job.function), None)
        latest[(job.key, job.function)] = job
    if len(latest) == len(adds):
        return list(adds)
    return list(latest.values())


def net_batch(adds: Sequence[StoredJob], removes: Sequence[Removal]) -> tuple[list[StoredJob], Sequence[Removal]]:
    """A batch as what it leaves behind: the last add of each key (:func:`latest_adds`), less those it removes.

    A batch's adds come before its removes (the engine drops a removal that a later add of the same key makes
    moot), so a key in both ends up deleted. With the two sets disjoint, a store may run them in any order or as
    one statement.
    """
    adds = latest_adds(adds)
    if adds and removes:
        gone = {(r.key, r.function) for r in removes}
        adds = [j for j in adds if (j.key, j.function) not in gone]
    return adds, removes


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextmanager
def translate_errors(
    description: str,
    unavailable: tuple[type[BaseException], ...],
    failed: tuple[type[BaseException], ...],
) -> Iterator[None]:
    """Turn a driver's exceptions into the store's (rule 8: foreign exceptions are translated at the boundary).

    ``unavailable``: the connection is lost or the server cannot be reached (the server reopens the store and
    retries); ``failed``: the database refused the request itself (a value it cannot hold, a schema problem).
    """
    try:
        yield
    except StoreError:
        raise
    except unavailable as exc:
        raise StoreUnavailable(f"{description}: {driver_reason(exc)}") from exc
    except failed as exc:
        raise StoreError(f"{description}: {driver_reason(exc)}") from exc


def driver_reason(error: BaseException) -> str:
    """A driver's error as one line of text: PyMySQL's ``(2003, "Can't connect ...")`` without the tuple, an
    ``OSError`` as ``file: reason``, libpq's hint (on a line of its own) after a semicolon."""
    args = error.args
    if isinstance(error, OSError) and error.strerror:  # not "[Errno 17] File exists: '/x'"
        text = f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    elif len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        text = args[1]
    else:
        text = str(error)
    return "; ".join(line.strip() for line in text.splitlines() if line.strip()) or type(error).__name__
