"""Policies and cron entries changed at run time (admin commands, the HTTP API, the CLI), over the policy file.

An override sets some keys of one function's policy (``retries = 5``); the function's policy is then the file's
(its own table over ``[defaults]``) with those keys replaced. A cron entry added at run time joins the file's
``[[cron]]`` entries; one with the same function and schedule as a file entry is refused (edit the file instead).
Both are kept by the server as store records, so they outlive a restart, and are checked by the same rules as the
file (:mod:`geartrain.lifecycle.policy`), so an error reads the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote

from geartrain.lifecycle.policy import (
    CronEntry,
    Policies,
    PolicyError,
    check_cron_entry,
    check_function_settings,
    cron_ident,
    cron_key,
)

#: The keys an override may set: those of a [functions.NAME] table.
SETTING_KEYS = (
    "retries",
    "backoff",
    "backoff_base",
    "backoff_max",
    "timeout",
    "concurrency",
    "rate",
    "result_ttl",
    "dead_retention",
    "dead_max",
)
_WHOLE_NUMBERS = ("retries", "concurrency", "dead_max")


@dataclass
class Overrides:
    """Run-time changes: per function, the keys set (raw, as the file would hold them); added cron entries."""

    functions: dict[bytes, dict[str, Any]] = field(default_factory=dict)
    cron: dict[bytes, dict[str, Any]] = field(default_factory=dict)  # by cron_ident, the entry as a [[cron]] table

    def apply(self, policies: Policies) -> Policies:
        """The policies in force: the file's with these changes."""
        if not self.functions and not self.cron:
            return policies
        functions = dict(policies.functions)
        for name, settings in self.functions.items():
            checked = check_function_settings(settings, f"functions.{name.decode('utf-8', 'replace')}")
            functions[name] = replace(policies.for_function(name), **checked)
        from_file = {cron_ident(entry) for entry in policies.cron}
        added = tuple(check_cron_entry(raw, "cron") for ident, raw in self.cron.items() if ident not in from_file)
        return Policies(policies.defaults, functions, policies.cron + added)

    def set(self, function: bytes, settings: dict[str, Any]) -> dict[str, Any]:
        """Set keys of ``function``'s policy; raises :class:`PolicyError` (and changes nothing) for a bad one.
        Returns the function's overrides now."""
        merged = {**self.functions.get(function, {}), **settings}
        check_function_settings(merged, f"functions.{function.decode('utf-8', 'replace')}")
        self.functions[function] = merged
        return merged

    def unset(self, function: bytes, keys: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """Drop some (or, without ``keys``, all) overrides of ``function``; returns what is left, ``None``: none."""
        current = self.functions.get(function)
        if current is None:
            return None
        left = {key: value for key, value in current.items() if keys and key not in keys}
        if left:
            self.functions[function] = left
            return left
        del self.functions[function]
        return None

    def add_cron(self, raw: dict[str, Any], policies: Policies) -> CronEntry:
        """Add a cron entry (a [[cron]] table's keys); raises :class:`PolicyError` for a bad one or one the file
        has."""
        entry = check_cron_entry(raw, "cron")
        ident = cron_ident(entry)
        if any(cron_ident(existing) == ident for existing in policies.cron):
            raise PolicyError(f"cron: {entry.function.decode()} at {entry.schedule!r} is in the policy file already")
        self.cron[ident] = dict(raw)
        return entry

    def remove_cron(self, function: bytes, schedule: str | None) -> int:
        """Remove the added entries of ``function`` (at ``schedule``, or all); returns how many."""
        if schedule is not None:
            gone = [cron_key(function, schedule)] if cron_key(function, schedule) in self.cron else []
        else:
            gone = [ident for ident, raw in self.cron.items() if str(raw.get("function", "")).encode() == function]
        for ident in gone:
            del self.cron[ident]
        return len(gone)


def parse_setting(token: bytes) -> tuple[str, Any]:
    """``key=value`` from an admin line (the value percent-decoded): numbers for the keys that take numbers."""
    key, sep, raw = token.decode("utf-8", "replace").partition("=")
    key = key.strip().lower()
    if not sep or key not in SETTING_KEYS:
        raise PolicyError(
            f"{key or token.decode('utf-8', 'replace')}: not a policy key (one of {', '.join(SETTING_KEYS)})"
        )
    value = unquote(raw)
    if key in _WHOLE_NUMBERS and value.isdigit():
        return key, int(value)
    return key, value


def parse_cron_tokens(tokens: tuple[bytes, ...]) -> dict[str, Any]:
    """``FUNCTION SCHEDULE-FIELDS... [key=value...]`` from an admin line as a [[cron]] table (values
    percent-decoded, so ``payload=two%20words``)."""
    if len(tokens) < 2:
        raise PolicyError(
            "cron add FUNCTION SCHEDULE [payload=..] [timezone=..] [unique=..] [priority=..] [catch_up=..]"
        )
    raw: dict[str, Any] = {"function": unquote(tokens[0].decode("utf-8", "replace"))}
    fields: list[str] = []
    for token in tokens[1:]:
        text = token.decode("utf-8", "replace")
        key, sep, value = text.partition("=")
        if sep and key:
            raw[key.strip().lower()] = unquote(value)
        else:
            fields.append(text)
    raw["schedule"] = " ".join(fields)
    return raw
