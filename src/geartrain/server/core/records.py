"""The records the engine hands to a store: a background job as stored, a deletion, and the key it is stored under.

They belong to the core (the engine produces them); every store in :mod:`geartrain.store` implements the storing.

Keys: gearmand keys a record by (unique, function), so background jobs without a unique overwrite each other (sqlite)
or are refused (MySQL, PostgreSQL). geartrain gives such a job a key of its own, ``gt:empty:<uuid>``, and ``-``
uniques (coalesce on the payload) ``gt:dash:<uuid>``; both map back on replay.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import NamedTuple

EMPTY_UNIQUE_PREFIX = b"gt:empty:"
DASH_UNIQUE_PREFIX = b"gt:dash:"


@dataclass(frozen=True, slots=True)
class StoredJob:
    """One background job as stored: the key is (``key``, ``function``)."""

    key: bytes
    function: bytes
    unique: bytes
    priority: int
    data: bytes
    when: int = 0
    reducer: bytes | None = None
    #: In a cluster: the submitting node keeps the job (it has an idle worker for it) instead of leaving it to
    #: whichever node claims it first.
    owned: bool = False
    #: In a cluster: a foreground job whose client waits on the submitting node (which no worker of its serves);
    #: the node that runs it sends the job's packets back (``geartrain.server.core.cluster``).
    waiting: bool = False
    #: In a cluster: the handle the submitting node gave, which the node that runs the job keeps (one handle for a
    #: job across the cluster). Empty elsewhere: a replayed job gets a new handle, as in gearmand.
    handle: bytes = b""
    #: In a cluster: the job's metadata (protocol/meta.py: trace context, ...), for whichever node runs it. Elsewhere
    #: a side record beside the job keeps it (core/sides.py).
    meta: bytes = b""


class Removal(NamedTuple):
    """A stored job to delete: its (key, function).

    A named tuple rather than a frozen dataclass: one is made, hashed and compared per finished stored job, and a
    tuple does the three in C (the dataclass' ``__init__``, ``__hash__`` and ``__eq__`` are Python functions)."""

    key: bytes
    function: bytes


_TUPLE_NEW = tuple.__new__


def new_removal(key: bytes, function: bytes) -> Removal:
    """``Removal(key, function)``, made by ``tuple`` itself: a named tuple's own ``__new__`` is a Python function,
    which cost about 2,000 instructions a call (callgrind), once per finished stored job."""
    return _TUPLE_NEW(Removal, (key, function))


def storage_key(unique: bytes) -> bytes:
    """The key a new job is stored under: its unique, or a fresh one where gearmand's key would collide."""
    if not unique:
        return EMPTY_UNIQUE_PREFIX + uuid.uuid4().hex.encode()
    if unique == b"-":
        return DASH_UNIQUE_PREFIX + uuid.uuid4().hex.encode()
    return unique


def unique_from_key(key: bytes) -> bytes:
    """The unique a stored key stands for (inverse of :func:`storage_key`)."""
    if key.startswith(EMPTY_UNIQUE_PREFIX):
        return b""
    if key.startswith(DASH_UNIQUE_PREFIX):
        return b"-"
    return key
