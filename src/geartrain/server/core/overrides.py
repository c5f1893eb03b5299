"""Run-time changes to the life cycle's policies and cron entries (admin ``policy``/``cron add``, HTTP, CLI).

The rules are :mod:`geartrain.lifecycle.overrides`; this applies them to a running engine: the policies in force
change at once (limits, timeouts, the next failure's retries), cron entries are armed, and each change is a store
record (``gt:meta:policy``, ``gt:meta:cronentry``) written in the next batch, so it outlives a restart.

On a cluster the records are the cluster's: each node reads them back from the cluster's table every second
(:func:`sync_overrides`, called by cluster/node.py) and at start, so a change made on any node is in force on every
node, and the leader fires a cron entry added on any node (only the leader fires: ``Lifecycle.fires_here``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from geartrain.lifecycle.policy import (
    FunctionPolicy,
    PolicyError,
    check_cron_entry,
    check_function_settings,
    cron_ident,
)
from geartrain.server.core.lifecycle import CRON_ENTRY_FUNCTION, POLICY_FUNCTION, Lifecycle
from geartrain.server.core.records import Removal, StoredJob

if TYPE_CHECKING:
    from geartrain.lifecycle.policy import CronEntry

log = logging.getLogger(__name__)

#: The record functions of run-time changes, which a cluster's nodes read back (cluster/node.py).
OVERRIDE_FUNCTIONS = (POLICY_FUNCTION, CRON_ENTRY_FUNCTION)


def set_policy(lifecycle: Lifecycle, function: bytes, settings: dict[str, Any], now: float) -> dict[str, Any]:
    """Set keys of a function's policy (raises PolicyError for a bad one); returns its overrides now."""
    overrides = lifecycle.overrides.set(function, settings)
    _store(lifecycle, StoredJob(function, POLICY_FUNCTION, function, 1, json.dumps(overrides).encode()), now)
    lifecycle.refresh(now)
    return overrides


def unset_policy(lifecycle: Lifecycle, function: bytes, keys: tuple[str, ...], now: float) -> dict[str, Any] | None:
    """Drop overrides of a function (all of them without ``keys``); the file's settings apply again."""
    left = lifecycle.overrides.unset(function, keys)
    if left is None:
        _remove(lifecycle, Removal(function, POLICY_FUNCTION), now)
    else:
        _store(lifecycle, StoredJob(function, POLICY_FUNCTION, function, 1, json.dumps(left).encode()), now)
    lifecycle.refresh(now)
    return left


def add_cron(lifecycle: Lifecycle, raw: dict[str, Any], now: float) -> CronEntry:
    """Add a cron entry (a [[cron]] table's keys); raises PolicyError for a bad one."""
    entry = lifecycle.overrides.add_cron(raw, lifecycle.file_policies)
    ident = cron_ident(entry)
    _store(lifecycle, StoredJob(ident, CRON_ENTRY_FUNCTION, ident, 1, json.dumps(raw).encode()), now)
    lifecycle.refresh(now)
    return entry


def remove_cron(lifecycle: Lifecycle, function: bytes, schedule: str | None, now: float) -> int:
    """Remove entries added at run time (of ``function``, at ``schedule`` or all); returns how many."""
    before = set(lifecycle.overrides.cron)
    count = lifecycle.overrides.remove_cron(function, schedule)
    for ident in before - set(lifecycle.overrides.cron):
        _remove(lifecycle, Removal(ident, CRON_ENTRY_FUNCTION), now)
    if count:
        lifecycle.refresh(now)
    return count


def restore_override(lifecycle: Lifecycle, stored: StoredJob) -> None:
    """A replayed ``gt:meta:policy`` or ``gt:meta:cronentry`` record (one that does not read is skipped); the
    policies are refreshed once the replay is over."""
    raw = _read(stored.data)
    if raw is None:
        return
    if stored.function == POLICY_FUNCTION:
        lifecycle.overrides.functions[stored.key] = raw
    else:
        lifecycle.overrides.cron[stored.key] = raw


def sync_overrides(
    lifecycle: Lifecycle, stored: Iterable[tuple[bytes, bytes, bytes]], now: float, settle: float
) -> list[str]:
    """A cluster's nodes share the run-time changes: the ``gt:meta:policy`` and ``gt:meta:cronentry`` records in
    the cluster's table, which every node reads back (``stored``: function, key, data) and puts in force here,
    without storing anything. A record this node itself changed less than ``settle`` seconds ago keeps its state
    here (the read may have begun before the change was stored). Returns what changed, for the log; the policies
    are computed again only then (so cron entries are not armed again each second)."""
    here = lifecycle.overrides_here
    for record, at in list(here.items()):
        if now - at >= settle:
            del here[record]
    current = lifecycle.overrides
    functions: dict[bytes, dict[str, Any]] = {}
    cron: dict[bytes, dict[str, Any]] = {}
    for function, key, data in stored:
        raw = _read(data)
        if (function, key) in here or raw is None or not _checks(function, key, raw):
            continue
        (functions if function == POLICY_FUNCTION else cron)[key] = raw
    for function, key in here:  # changed here an instant ago: as this node has it, set or gone
        mine, synced = (current.functions, functions) if function == POLICY_FUNCTION else (current.cron, cron)
        synced.pop(key, None)
        if key in mine:
            synced[key] = mine[key]
    changes = [
        f"policy of {name.decode('utf-8', 'replace')} " + ("unset" if name not in functions else "set")
        for name in sorted({*functions, *current.functions})
        if functions.get(name) != current.functions.get(name)
    ]
    changes += [
        f"cron entry {ident.decode('utf-8', 'replace')} "
        + ("removed" if ident not in cron else "changed" if ident in current.cron else "added")
        for ident in sorted({*cron, *current.cron})
        if cron.get(ident) != current.cron.get(ident)
    ]
    if changes:
        current.functions, current.cron = functions, cron
        lifecycle.refresh(now)
    return changes


def _checks(function: bytes, key: bytes, raw: dict[str, Any]) -> bool:
    """Whether a record read back holds what this version takes (one stored by a newer version may not): a bad one
    is left out rather than stopping every change after it."""
    try:
        if function == POLICY_FUNCTION:
            check_function_settings(raw, f"functions.{key.decode('utf-8', 'replace')}")
        else:
            check_cron_entry(raw, "cron")
    except PolicyError as error:
        log.debug("a run-time change stored in the cluster is left out: %s", error)
        return False
    return True


def policy_view(lifecycle: Lifecycle, function: bytes | None = None) -> dict[str, object]:
    """The policies in force, and what run-time changes set: for ``policy show`` and the HTTP API."""
    names = (
        [function] if function is not None else sorted({*lifecycle.policies.functions, *lifecycle.overrides.functions})
    )
    return {
        "defaults": _fields(lifecycle.policies.defaults),
        "functions": {
            name.decode("utf-8", "replace"): {
                "policy": _fields(lifecycle.policy(name)),
                "overrides": lifecycle.overrides.functions.get(name, {}),
            }
            for name in names
        },
    }


def cron_source(lifecycle: Lifecycle, ident: bytes) -> str:
    """``file`` or ``runtime``: where a cron entry comes from."""
    return "runtime" if ident in lifecycle.overrides.cron else "file"


def _fields(policy: FunctionPolicy) -> dict[str, object]:
    return {
        "retries": policy.retries,
        "backoff": policy.backoff,
        "backoff_base": policy.backoff_base,
        "backoff_max": policy.backoff_max,
        "timeout": policy.timeout,
        "concurrency": policy.concurrency,
        "rate": None if policy.rate is None else f"{policy.rate[0]:g}/{policy.rate[1]:g}s",
        "result_ttl": policy.result_ttl,
        "dead_retention": policy.dead_retention,
        "dead_max": policy.dead_max,
    }


def _read(data: bytes) -> dict[str, Any] | None:
    """A record's overrides or cron entry (a JSON object); ``None`` for one that does not read."""
    try:
        raw = json.loads(data)
    except ValueError:
        return None
    return raw if isinstance(raw, dict) else None


def _store(lifecycle: Lifecycle, record: StoredJob, now: float) -> None:
    config = lifecycle.engine.config
    if config.persistent:
        lifecycle.engine.store_record(record)
    if config.cluster:
        lifecycle.overrides_here[(record.function, record.key)] = now


def _remove(lifecycle: Lifecycle, removal: Removal, now: float) -> None:
    config = lifecycle.engine.config
    if config.persistent:
        lifecycle.engine.store_removal(removal)
    if config.cluster:
        lifecycle.overrides_here[(removal.function, removal.key)] = now
