"""Run-time changes to the life cycle's policies and cron entries (admin ``policy``/``cron add``, HTTP, CLI).

The rules are :mod:`geartrain.lifecycle.overrides`; this applies them to a running engine: the policies in force
change at once (limits, timeouts, the next failure's retries), cron entries are armed, and each change is a store
record (``gt:meta:policy``, ``gt:meta:cronentry``) written in the next batch, so it outlives a restart.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from geartrain.lifecycle.policy import FunctionPolicy, cron_ident
from geartrain.server.core.lifecycle import CRON_ENTRY_FUNCTION, POLICY_FUNCTION, Lifecycle
from geartrain.server.core.records import Removal, StoredJob

if TYPE_CHECKING:
    from geartrain.lifecycle.policy import CronEntry


def set_policy(lifecycle: Lifecycle, function: bytes, settings: dict[str, Any], now: float) -> dict[str, Any]:
    """Set keys of a function's policy (raises PolicyError for a bad one); returns its overrides now."""
    overrides = lifecycle.overrides.set(function, settings)
    _store(lifecycle, StoredJob(function, POLICY_FUNCTION, function, 1, json.dumps(overrides).encode()))
    lifecycle.refresh(now)
    return overrides


def unset_policy(lifecycle: Lifecycle, function: bytes, keys: tuple[str, ...], now: float) -> dict[str, Any] | None:
    """Drop overrides of a function (all of them without ``keys``); the file's settings apply again."""
    left = lifecycle.overrides.unset(function, keys)
    if left is None:
        _remove(lifecycle, Removal(function, POLICY_FUNCTION))
    else:
        _store(lifecycle, StoredJob(function, POLICY_FUNCTION, function, 1, json.dumps(left).encode()))
    lifecycle.refresh(now)
    return left


def add_cron(lifecycle: Lifecycle, raw: dict[str, Any], now: float) -> CronEntry:
    """Add a cron entry (a [[cron]] table's keys); raises PolicyError for a bad one."""
    entry = lifecycle.overrides.add_cron(raw, lifecycle.file_policies)
    ident = cron_ident(entry)
    _store(lifecycle, StoredJob(ident, CRON_ENTRY_FUNCTION, ident, 1, json.dumps(raw).encode()))
    lifecycle.refresh(now)
    return entry


def remove_cron(lifecycle: Lifecycle, function: bytes, schedule: str | None, now: float) -> int:
    """Remove entries added at run time (of ``function``, at ``schedule`` or all); returns how many."""
    before = set(lifecycle.overrides.cron)
    count = lifecycle.overrides.remove_cron(function, schedule)
    for ident in before - set(lifecycle.overrides.cron):
        _remove(lifecycle, Removal(ident, CRON_ENTRY_FUNCTION))
    if count:
        lifecycle.refresh(now)
    return count


def restore_override(lifecycle: Lifecycle, stored: StoredJob) -> None:
    """A replayed ``gt:meta:policy`` or ``gt:meta:cronentry`` record (one that does not read is skipped); the
    policies are refreshed once the replay is over."""
    try:
        raw = json.loads(stored.data)
    except ValueError:
        return
    if not isinstance(raw, dict):
        return
    if stored.function == POLICY_FUNCTION:
        lifecycle.overrides.functions[stored.key] = raw
    else:
        lifecycle.overrides.cron[stored.key] = raw


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


def _store(lifecycle: Lifecycle, record: StoredJob) -> None:
    if lifecycle.engine.config.persistent:
        lifecycle.engine.store_record(record)


def _remove(lifecycle: Lifecycle, removal: Removal) -> None:
    if lifecycle.engine.config.persistent:
        lifecycle.engine.store_removal(removal)
