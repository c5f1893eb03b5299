"""The job life-cycle policy file (``--policy-file``): read and checked into frozen records. Pure: no I/O but
:func:`load_policies`, no clock.

The file is TOML; every table and key is optional::

    [defaults]                    # what every function gets unless its own table says otherwise
    retries = 0

    [functions.resize]            # one function's settings; keys it leaves out come from [defaults]
    retries = 5                   # retries after the first attempt fails
    backoff = "exponential"       # or "fixed"
    backoff_base = "1s"           # first retry delay (exponential: doubles each retry, plus up to 25% jitter)
    backoff_max = "1h"            # no retry waits longer
    timeout = "30s"               # a job running longer is failed
    concurrency = 4               # jobs of this function running at once, over all workers
    rate = "100/s"                # jobs started per second ("/s"), minute ("/m") or hour ("/h")
    result_ttl = "1h"             # how long a finished job's result is kept
    dead_retention = "7d"         # how long jobs out of retries (dead jobs) are kept ...
    dead_max = 10000              # ... and how many of them, per function

    [[cron]]                      # a job submitted on a schedule
    function = "report"
    schedule = "0 7 * * *"        # 5 cron fields, 6 with seconds first, or "@every 10s"
    payload = "daily"
    timezone = "Europe/Berlin"    # the zone the schedule is read in (default UTC)
    unique = "report-{time}"      # unique-key template: one job per firing even if submitted twice
    priority = "normal"           # high, normal or low
    catch_up = "skip"             # after downtime: "skip" missed firings, or run "once" for all of them

Durations are ``"500ms"``, ``"30s"``, ``"5m"``, ``"2h"``, ``"7d"``, sums such as ``"1h30m"``, or a number of
seconds. The schedule is kept as written: the cron module reads it.
"""

from __future__ import annotations

import json
import math
import random
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from geartrain.errors import GearmanError
from geartrain.lifecycle.cron import CronError, parse_schedule

T = TypeVar("T")

EXPONENTIAL = "exponential"
FIXED = "fixed"
BACKOFF_KINDS = (EXPONENTIAL, FIXED)
# The most random jitter adds to an exponential delay (as a share of it): jobs that failed together (a database
# outage) then come back spread out instead of as one burst.
BACKOFF_JITTER = 0.25

HIGH, NORMAL, LOW = 0, 1, 2  # gearmand's queue numbers, highest first
PRIORITIES = {"high": HIGH, "normal": NORMAL, "low": LOW}
SKIP, ONCE = "skip", "once"
CATCH_UP_KINDS = (SKIP, ONCE)

DAY = 86_400.0
_SECONDS_PER_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY}
_SECONDS_PER_RATE_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0}
_NUMBER = r"[0-9]+(?:\.[0-9]+)?"  # ASCII digits only: float() would also take other scripts' digits
_DURATION_PART = re.compile(rf"({_NUMBER})(ms|s|m|h|d)")  # "ms" before "m" and "s", so "5ms" is not 5 minutes
_DURATION = re.compile(rf"(?:{_NUMBER}(?:ms|s|m|h|d))+")
_BARE_NUMBER = re.compile(_NUMBER)
_RATE = re.compile(rf"({_NUMBER})/([smh])")
_DURATION_EXAMPLES = "(e.g. 30s, 5m, 1h30m)"
_RATE_EXAMPLES = "(e.g. 100/s, 5/m, 1000/h)"
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOP_LEVEL = ("defaults", "functions", "cron")
_TOP_LEVEL_SHAPES = "[defaults], [functions.NAME], [[cron]]"


class PolicyError(GearmanError):
    """The policy file, or one value of it, is not valid; the one-line message names the file, the key and the value.

    Not :class:`geartrain.security.policy.PolicyError`, which is about the access-control file.
    """


def parse_duration(text: str | int | float) -> float:
    """Seconds in ``text``: ``"500ms"``, ``"30s"``, ``"5m"``, ``"2h"``, ``"7d"``, sums such as ``"1h30m"``, or a
    number of seconds (``90``, ``"1.5"``). Raises :class:`PolicyError` for anything else, negatives included."""
    if isinstance(text, str):
        written = text.strip()
        if written.startswith("-"):
            raise PolicyError(f"{_shown(text)} is negative: a duration is 0 or more {_DURATION_EXAMPLES}")
        if _DURATION.fullmatch(written):
            seconds = sum(float(number) * _SECONDS_PER_UNIT[unit] for number, unit in _DURATION_PART.findall(written))
        elif _BARE_NUMBER.fullmatch(written):
            seconds = float(written)
        else:
            raise PolicyError(f"{_shown(text)} is not a duration {_DURATION_EXAMPLES}")
    elif isinstance(text, int | float) and not isinstance(text, bool):  # `timeout = true` is a slip, not 1 second
        if text < 0:
            raise PolicyError(f"{_shown(text)} is negative: a duration is 0 or more {_DURATION_EXAMPLES}")
        seconds = float(text) if text < 1e300 else math.inf  # float() of a huge int raises OverflowError
    else:
        raise PolicyError(f"{_shown(text)} is not a duration {_DURATION_EXAMPLES}")
    if not math.isfinite(seconds):
        raise PolicyError(f"{_shown(text)} is not a finite duration {_DURATION_EXAMPLES}")
    return seconds


def parse_rate(text: str) -> tuple[float, float]:
    """``(count, per_seconds)`` from ``"100/s"``, ``"5/m"`` or ``"1000/h"``; raises :class:`PolicyError`."""
    match = _RATE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise PolicyError(f"{_shown(text)} is not a rate {_RATE_EXAMPLES}")
    count = float(match[1])
    if not 0 < count < math.inf:
        raise PolicyError(f"{_shown(text)} is not a usable rate: the count must be above 0 {_RATE_EXAMPLES}")
    return count, _SECONDS_PER_RATE_UNIT[match[2]]


@dataclass(frozen=True, slots=True)
class FunctionPolicy:
    """What happens to the jobs of one function. ``None`` means no limit (no timeout, no concurrency or rate cap)
    or, for ``result_ttl``, that results are not kept. Durations are in seconds; ``rate`` is ``(count, per)``."""

    retries: int = 0
    backoff: str = EXPONENTIAL
    backoff_base: float = 1.0
    backoff_max: float = 3600.0
    timeout: float | None = None
    concurrency: int | None = None
    rate: tuple[float, float] | None = None
    result_ttl: float | None = None
    dead_retention: float = 7 * DAY
    dead_max: int = 10_000

    def backoff_delay(self, attempt: int, random: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``attempt`` (1 is the first retry).

        Exponential: ``backoff_base * 2 ** (attempt - 1)``, plus up to :data:`BACKOFF_JITTER` of that scaled by
        ``random()`` (in [0, 1)), capped at ``backoff_max``. Fixed: ``backoff_base``, no jitter. For a given
        ``random`` value the delay never shrinks as ``attempt`` grows.
        """
        if attempt < 1:
            raise ValueError(f"retries are counted from 1, not {attempt}")
        if self.backoff == FIXED:
            delay = self.backoff_base
        else:
            # Past 1023 doublings 2.0 ** n raises OverflowError; the product may still reach inf, which min() caps.
            doublings = min(attempt - 1, 1023)
            share = min(max(random(), 0.0), 1.0)
            delay = self.backoff_base * 2.0**doublings * (1.0 + BACKOFF_JITTER * share)
        return max(0.0, min(delay, self.backoff_max))


@dataclass(frozen=True, slots=True)
class CronEntry:
    """One ``[[cron]]`` table: submit ``payload`` to ``function`` whenever ``schedule`` fires in ``timezone``.

    ``priority`` is gearmand's queue number (:data:`HIGH`, :data:`NORMAL`, :data:`LOW`); ``catch_up`` is
    :data:`SKIP` or :data:`ONCE`; ``schedule`` is kept as written.
    """

    function: bytes
    schedule: str
    payload: bytes = b""
    timezone: str = "UTC"
    unique: str | None = None
    priority: int = NORMAL
    catch_up: str = SKIP


@dataclass(frozen=True)
class Policies:
    """The whole policy file. ``functions`` holds each named function's resolved policy ([defaults] already
    applied); :meth:`for_function` is the lookup the server makes."""

    defaults: FunctionPolicy = field(default_factory=FunctionPolicy)
    functions: dict[bytes, FunctionPolicy] = field(default_factory=dict)
    cron: tuple[CronEntry, ...] = ()

    @classmethod
    def default(cls) -> Policies:
        """The policies of a server started without a policy file: plain Gearman behaviour."""
        return cls()

    def for_function(self, name: bytes) -> FunctionPolicy:
        """The policy for jobs of function ``name``: its own table's settings over [defaults]."""
        return self.functions.get(name, self.defaults)

    @property
    def empty(self) -> bool:
        """True when every function gets the built-in defaults and nothing is scheduled: the server can then skip
        all life-cycle work."""
        builtin = FunctionPolicy()
        return not self.cron and self.defaults == builtin and all(p == builtin for p in self.functions.values())


def load_policies(path: str | Path) -> Policies:
    """Read and check a policy file; raises :class:`PolicyError` naming the file and the offending key."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise PolicyError(f"policy file {path}: cannot read: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"policy file {path}: not UTF-8 text (bad byte at offset {exc.start})") from exc
    return parse_policies(text, str(path))


def parse_policies(text: str, source: str = "<policy>") -> Policies:
    """Check the TOML text of a policy file (see the module docstring); ``source`` names it in errors."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy file {source}: not valid TOML: {_one_line(str(exc))}") from exc
    try:
        return _policies(document)
    except PolicyError as exc:  # raised with the key's place only: the file is named once, here
        raise PolicyError(f"policy file {source}: {exc}") from None


def _policies(document: dict[str, Any]) -> Policies:
    for key in document:
        if key not in _TOP_LEVEL:
            raise PolicyError(f"{_key(key)}: unknown at the top level (allowed: {_TOP_LEVEL_SHAPES})")
    # Inheritance is replace(): a function table starts from [defaults] and changes only the keys it sets.
    defaults = replace(FunctionPolicy(), **_function_settings(document.get("defaults", {}), "defaults"))
    tables = document.get("functions", {})
    if not isinstance(tables, dict):
        raise PolicyError("functions: must be a table of function tables ([functions.NAME])")
    functions: dict[bytes, FunctionPolicy] = {}
    for name, table in tables.items():
        where = f"functions.{_key(name)}"
        functions[_checked(where, _function_name, name)] = replace(defaults, **_function_settings(table, where))
    entries = document.get("cron", [])
    if not isinstance(entries, list):
        raise PolicyError("cron: must be an array of tables ([[cron]])")
    cron = tuple(_cron_entry(entry, f"cron #{number}") for number, entry in enumerate(entries, 1))
    return Policies(defaults, functions, cron)


def check_function_settings(table: object, where: str) -> dict[str, Any]:
    """A function table's settings (as :func:`parse_policies` reads them), checked; for run-time overrides."""
    return _function_settings(table, where)


def check_cron_entry(entry: object, where: str) -> CronEntry:
    """A [[cron]] table, checked; for entries added at run time."""
    return _cron_entry(entry, where)


def cron_ident(entry: CronEntry) -> bytes:
    """What identifies a cron entry across restarts and reloads: its function and schedule."""
    return cron_key(entry.function, entry.schedule)


def cron_key(function: bytes, schedule: str) -> bytes:
    """``function|schedule``, the schedule's runs of spaces as one (``0  7 * * *`` is ``0 7 * * *``)."""
    return function + b"|" + " ".join(schedule.split()).encode()


def _function_settings(table: object, where: str) -> dict[str, Any]:
    """The keys a function table (or [defaults]) sets, checked: each value has its FunctionPolicy field's type."""
    if not isinstance(table, dict):
        hint = "; settings for every function go in [defaults]" if where.split(".")[-1] in _FUNCTION_KEYS else ""
        raise PolicyError(f"{where}: must be a table ([{where}]){hint}")
    _no_unknown_keys(table, _FUNCTION_KEYS, where)
    return {key: _checked(f"{where}.{key}", _FUNCTION_KEYS[key], value) for key, value in table.items()}


def _cron_entry(entry: object, where: str) -> CronEntry:
    if not isinstance(entry, dict):
        raise PolicyError(f"{where}: must be a table ([[cron]])")
    _no_unknown_keys(entry, _CRON_KEYS, where)
    for key in ("function", "schedule"):
        if key not in entry:
            raise PolicyError(f"{where}: {key} is missing (every [[cron]] entry needs a function and a schedule)")

    def value(key: str, convert: Callable[[object], T], default: object = None) -> T:
        return _checked(f"{where}.{key}", convert, entry.get(key, default))

    return CronEntry(
        function=value("function", _function_name),
        schedule=value("schedule", _schedule),
        payload=value("payload", _payload, ""),
        timezone=value("timezone", _timezone, "UTC"),
        unique=None if "unique" not in entry else value("unique", _text),
        priority=value("priority", _priority, "normal"),
        catch_up=value("catch_up", lambda kind: _choice(kind, CATCH_UP_KINDS, "catch-up kind"), SKIP),
    )


def _checked(where: str, convert: Callable[[object], T], value: object) -> T:
    """``convert(value)``, with the key's place put in front of its error."""
    try:
        return convert(value)
    except PolicyError as exc:
        raise PolicyError(f"{where}: {exc}") from None


def _no_unknown_keys(table: dict[str, Any], allowed: dict[str, Any] | tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise PolicyError(f"{where}.{_key(unknown[0])}: unknown key (allowed: {', '.join(sorted(allowed))})")


# Values in the file, one checker each; they raise PolicyError with the value but not its place.


def _whole_number(value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(f"{_shown(value)} is not a whole number")
    if value < minimum:
        raise PolicyError(f"must be {minimum} or more, not {value}")
    return value


def _duration(value: object) -> float:
    if not isinstance(value, str | int | float):
        raise PolicyError(f"{_shown(value)} is not a duration {_DURATION_EXAMPLES}")
    return parse_duration(value)


def _timeout(value: object) -> float:
    seconds = _duration(value)
    if seconds == 0:  # it would fail every job at once; leave the key out for no timeout
        raise PolicyError(f"{_shown(value)} is no time at all: a timeout must be more than 0")
    return seconds


def _rate(value: object) -> tuple[float, float]:
    if not isinstance(value, str):
        raise PolicyError(f"{_shown(value)} is not a rate {_RATE_EXAMPLES}")
    return parse_rate(value)


def _choice(value: object, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise PolicyError(f"{_shown(value)} is not a {what} (use {_alternatives(allowed)})")
    return str(value)


def _priority(value: object) -> int:
    return PRIORITIES[_choice(value, tuple(PRIORITIES), "priority")]


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PolicyError(f"must be a non-empty string, not {_shown(value)}")
    return value


def _schedule(value: object) -> str:
    text = _text(value)
    try:
        parse_schedule(text)
    except CronError as error:
        raise PolicyError(str(error)) from None
    return text


def _payload(value: object) -> bytes:
    if not isinstance(value, str):
        raise PolicyError(f"must be a string, not {_shown(value)}")
    return value.encode()


def _function_name(value: object) -> bytes:
    name = _text(value).encode()
    if b"\0" in name:
        raise PolicyError(f"{_shown(value)} cannot be a function name: NUL separates Gearman packet arguments")
    return name


def _timezone(value: object) -> str:
    zone = _text(value)
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # ValueError: not a zone key (absolute path, "..", ...)
        raise PolicyError(f"{_shown(value)} is not a known time zone (e.g. UTC, Europe/Berlin)") from None
    return zone


_FUNCTION_KEYS: dict[str, Callable[[object], object]] = {
    "retries": lambda value: _whole_number(value, minimum=0),
    "backoff": lambda value: _choice(value, BACKOFF_KINDS, "backoff kind"),
    "backoff_base": _duration,
    "backoff_max": _duration,
    "timeout": _timeout,
    "concurrency": lambda value: _whole_number(value, minimum=1),
    "rate": _rate,
    "result_ttl": _duration,
    "dead_retention": _duration,
    "dead_max": lambda value: _whole_number(value, minimum=0),
}
_CRON_KEYS = ("function", "schedule", "payload", "timezone", "unique", "priority", "catch_up")


def _shown(value: object) -> str:
    """A value as an error message shows it: strings in double quotes with line breaks escaped (one line)."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


def _key(name: str) -> str:
    """A key as TOML would write it in a dotted path: bare when it can be, quoted otherwise ("my.func")."""
    return name if _BARE_KEY.fullmatch(name) else _shown(name)


def _alternatives(words: tuple[str, ...]) -> str:
    """``"high, normal or low"``."""
    return " or ".join(filter(None, (", ".join(words[:-1]), words[-1])))


def _one_line(text: str) -> str:
    return " ".join(text.split())
