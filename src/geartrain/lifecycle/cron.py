"""Cron schedules: when a scheduled job fires. Pure: no clock, no I/O; callers pass the instants in.

:func:`parse_schedule` reads three spellings:

- five cron fields, ``minute hour day-of-month month day-of-week``, or six with seconds first (``*/2 * * * * *``).
  A field is a list (``a,b,c``) of ``*``, ``n``, ``a-b``, ``*/step``, ``a-b/step`` or ``a/step`` (``a`` to the end of
  the field). Months may be named ``JAN``-``DEC`` and weekdays ``SUN``-``SAT``, in any case; weekday 7 is Sunday.
- the nicknames ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily`` (``@midnight``) and ``@hourly``.
- ``@every <duration>``, such as ``@every 10s`` or ``@every 1h30m`` (units ``d``, ``h``, ``m``, ``s``, ``ms``).

Day-of-month and day-of-week combine as in Vixie cron: when both are restricted a day matches if either does,
otherwise it must match both. Like Vixie cron, a field that starts with ``*`` (``*/2`` too) counts as unrestricted.

Cron schedules are read in the wall-clock time of a zone. A wall time the clocks skip (spring forward) fires once, at
the end of the skipped stretch, as cronie runs the jobs of the gap; a wall time the clocks repeat (fall back) fires
once, the first time round. ``@every`` schedules ignore zones: they fire at the multiples of their period since the
Unix epoch, so every node of a cluster computes the same instants.
"""

from __future__ import annotations

import abc
import calendar
import re
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import MAXYEAR, UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from geartrain.errors import GearmanError

__all__ = ["CronError", "CronSchedule", "EverySchedule", "Schedule", "parse_schedule"]


class CronError(GearmanError):
    """A schedule that cannot be read, or that never fires. The message is one line naming the field at fault."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_SECOND = timedelta(seconds=1)
# The Gregorian calendar repeats every 400 years, so a search that finds no date in 400 years would never find one.
# Parsing refuses the schedules that never fire, and the rarest that do (29 February on a given weekday) wait at most
# 40 years: the bound is a backstop, reached only near the end of the calendar (year 9999).
_SEARCH_YEARS = 400
# The most days each month can have (February in leap years): a date beyond it, such as 30 February, never comes.
_LONGEST_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class Schedule(abc.ABC):
    """When a job fires: :meth:`next_after` gives the next firing, :meth:`fires_between` the ones in a stretch."""

    __slots__ = ()
    text: str  # the schedule as written

    @abc.abstractmethod
    def next_after(self, after: datetime, zone: ZoneInfo) -> datetime:
        """The first firing strictly after ``after`` (an aware datetime), as an aware datetime in UTC."""

    def fires_between(self, start: datetime, end: datetime, zone: ZoneInfo, limit: int = 1000) -> list[datetime]:
        """The firings in ``(start, end]``, oldest first, at most ``limit`` of them (the catch-up after downtime)."""
        fires: list[datetime] = []
        moment = start
        while len(fires) < limit:
            moment = self.next_after(moment, zone)
            if moment > end:
                break
            fires.append(moment)
        return fires


@dataclass(frozen=True, slots=True)
class EverySchedule(Schedule):
    """``@every <period>``: fires at each multiple of ``period`` since the Unix epoch, whatever the zone."""

    text: str
    period: timedelta

    def next_after(self, after: datetime, zone: ZoneInfo) -> datetime:
        _require_aware(after)
        periods_done = (after - _EPOCH) // self.period  # whole microseconds: exact, and the same on every node
        return _EPOCH + (periods_done + 1) * self.period


@dataclass(frozen=True, slots=True)
class CronSchedule(Schedule):
    """Cron fields, each the sorted values it allows; a five-field schedule has ``seconds == (0,)``."""

    text: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: tuple[int, ...]
    months: tuple[int, ...]
    days_of_week: tuple[int, ...]  # 0 is Sunday
    either_day_matches: bool  # both day fields restricted: a day matching either one is enough (Vixie cron)

    def next_after(self, after: datetime, zone: ZoneInfo) -> datetime:
        _require_aware(after)
        local = after.astimezone(zone)
        start = local.replace(tzinfo=None, microsecond=0) + _ONE_SECOND
        if local.fold:
            # The clocks went back and `after` is in the stretch they repeat: its wall times fired the first time round.
            start = max(start, _end_of_repeat(local, zone))
        return _wall_to_utc(self._first_wall_time_from(start), zone)

    def _first_wall_time_from(self, start: datetime) -> datetime:
        """The first wall-clock time at or after ``start`` (naive, whole seconds) that the fields allow."""
        for day in self._dates_from(start.date()):
            earliest = start.time() if day == start.date() else time()
            clock = next(self._times_of_day_from(earliest), None)
            if clock is not None:
                return datetime.combine(day, clock)
        raise CronError(f"schedule {self.text!r} does not fire after {start.isoformat()} (wall-clock time)")

    def _dates_from(self, first: date) -> Iterator[date]:
        """The days the schedule fires on, from ``first`` on, skipping whole months the month field leaves out."""
        for year in range(first.year, min(first.year + _SEARCH_YEARS, MAXYEAR) + 1):
            for month in _at_least(self.months, first.month if year == first.year else 1):
                earliest_day = first.day if (year, month) == (first.year, first.month) else 1
                for day in self._days_of(year, month):
                    if day >= earliest_day:
                        yield date(year, month, day)

    def _days_of(self, year: int, month: int) -> Iterator[int]:
        weekday_of_first, length = calendar.monthrange(year, month)  # Monday is 0 there, Sunday is 0 in cron
        for day in range(1, length + 1):
            by_month_day = day in self.days_of_month
            by_weekday = (weekday_of_first + day) % 7 in self.days_of_week
            if (by_month_day or by_weekday) if self.either_day_matches else (by_month_day and by_weekday):
                yield day

    def _times_of_day_from(self, earliest: time) -> Iterator[time]:
        for hour in _at_least(self.hours, earliest.hour):
            same_hour = hour == earliest.hour
            for minute in _at_least(self.minutes, earliest.minute if same_hour else 0):
                same_minute = same_hour and minute == earliest.minute
                for second in _at_least(self.seconds, earliest.second if same_minute else 0):
                    yield time(hour, minute, second)


def _at_least(values: Sequence[int], lowest: int) -> Sequence[int]:
    """The values (sorted) from ``lowest`` up."""
    return values[bisect_left(values, lowest) :]


def _require_aware(moment: datetime) -> None:
    if moment.utcoffset() is None:
        raise ValueError(f"a schedule needs an aware datetime, not the naive {moment.isoformat()}")


def _utc_offset(moment: datetime) -> timedelta:
    offset = moment.utcoffset()
    assert offset is not None  # every moment here carries a ZoneInfo or UTC
    return offset


def _wall_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant a wall-clock time of ``zone`` fires at: a repeated time the first time round (fold 0), a skipped
    time when the clocks have jumped past it (the instant the skipped stretch ends)."""
    first = wall.replace(tzinfo=zone).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # Skipped: read with the offsets before and after the change, the wall time gives two instants around it.
    other = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return _clock_change_between(min(first, other), max(first, other), zone)


def _end_of_repeat(local: datetime, zone: ZoneInfo) -> datetime:
    """Given a moment in the second pass of a stretch of wall time the clocks repeat, the wall time it ends at."""
    second_pass = local.replace(microsecond=0)  # clock changes fall on whole seconds, so this is still a second pass
    first_pass = second_pass.replace(fold=0)
    clocks_back = _clock_change_between(first_pass.astimezone(UTC), second_pass.astimezone(UTC), zone)
    # The clocks were turned back from this wall time; after the repeat they reach it again, new ground from there.
    return (clocks_back + _utc_offset(first_pass)).replace(tzinfo=None)


def _clock_change_between(early: datetime, late: datetime, zone: ZoneInfo) -> datetime:
    """The instant in ``(early, late]`` (whole seconds, UTC offsets in ``zone`` differing) the offset changes at.

    zoneinfo does not list its transitions, so this bisects: about 12 steps for the usual hour.
    """
    offset_before = _utc_offset(early.astimezone(zone))
    low, high = (early - _EPOCH) // _ONE_SECOND, (late - _EPOCH) // _ONE_SECOND
    while high - low > 1:
        middle = (low + high) // 2
        if _utc_offset((_EPOCH + middle * _ONE_SECOND).astimezone(zone)) == offset_before:
            low = middle
        else:
            high = middle
    return _EPOCH + high * _ONE_SECOND


# Parsing.


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] stands for low + i


_FIELDS = (
    _Field("second", 0, 59),
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    _Field("day-of-week", 0, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),  # 7 is Sunday again
)

_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_DURATION = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d))+")
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d)")  # "ms" before "m" and "s", so "5ms" is not read as 5 minutes
_DURATION_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}


def parse_schedule(text: str) -> Schedule:
    """Read a schedule (see the module documentation); :class:`CronError` if it is malformed or never fires."""
    try:
        return _parse_words(text.strip(), text.split())
    except CronError as error:
        raise CronError(f"schedule {text!r}: {error}") from None


def _parse_words(text: str, words: list[str]) -> Schedule:
    if not words:
        raise CronError("it is empty")
    head = words[0].lower()
    if head == "@every":
        if len(words) != 2:
            raise CronError("@every takes one duration, such as '@every 10s' or '@every 1h30m'")
        return EverySchedule(text, _parse_duration(words[1]))
    if head.startswith("@"):
        if head not in _NICKNAMES:
            raise CronError(f"unknown nickname {words[0]!r} (known: @every, {', '.join(_NICKNAMES)})")
        if len(words) != 1:
            raise CronError(f"{words[0]} takes nothing after it")
        words = _NICKNAMES[head].split()
    if len(words) == 5:
        words = ["0", *words]
    elif len(words) != 6:
        raise CronError(
            f"expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), found {len(words)}"
        )
    return _parse_cron(text, words)


def _parse_duration(word: str) -> timedelta:
    if not _DURATION.fullmatch(word):
        raise CronError(f"@every duration {word!r} is not like '10s' or '1h30m' (units d, h, m, s, ms)")
    try:
        period = sum((int(count) * _DURATION_UNITS[unit] for count, unit in _DURATION_PART.findall(word)), timedelta())
    except (OverflowError, ValueError):
        raise CronError(f"@every duration {word!r} is too long") from None
    if not period:
        raise CronError(f"@every duration {word!r} must be longer than zero")
    return period


def _parse_cron(text: str, words: list[str]) -> CronSchedule:
    seconds, minutes, hours, days_of_month, months, days_of_week = (
        _parse_field(field, word) for field, word in zip(_FIELDS, words, strict=True)
    )
    days_of_week = tuple(sorted({day % 7 for day in days_of_week}))
    day_of_month_word, month_word, day_of_week_word = words[3:]
    either_day_matches = not day_of_month_word.startswith("*") and not day_of_week_word.startswith("*")
    # Only when both day fields must match can a schedule never fire: the day of the month may not exist in its
    # months. (Any date that exists falls on every weekday in some year, 29 February included.)
    if not either_day_matches and all(days_of_month[0] > _LONGEST_MONTH[month - 1] for month in months):
        raise CronError(f"never fires: day-of-month {day_of_month_word!r} does not occur in month {month_word!r}")
    return CronSchedule(text, seconds, minutes, hours, days_of_month, months, days_of_week, either_day_matches)


def _parse_field(field: _Field, word: str) -> tuple[int, ...]:
    values: set[int] = set()
    try:
        for item in word.split(","):
            values.update(_parse_item(field, item))
    except ValueError as error:
        raise CronError(f"{field.name} {word!r}: {error}") from None
    return tuple(sorted(values))


def _parse_item(field: _Field, item: str) -> range:
    if not item:
        raise ValueError("an empty list item")
    span, slash, step_word = item.partition("/")
    step = _parse_step(step_word) if slash else 1
    if span == "*":
        first, last = field.low, field.high
    elif "-" in span:
        first_word, _, last_word = span.partition("-")
        first, last = _parse_value(field, first_word), _parse_value(field, last_word)
        if first > last:
            raise ValueError(f"the range {span!r} runs backwards")
    else:
        first = _parse_value(field, span)
        last = field.high if slash else first  # "a/step" runs from a to the end of the field, as in cronie
    return range(first, last + 1, step)


def _parse_step(word: str) -> int:
    if not (word.isascii() and word.isdigit()) or int(word) == 0:
        raise ValueError(f"the step {word!r} is not a whole number above 0")
    return int(word)


def _parse_value(field: _Field, word: str) -> int:
    if word.isascii() and word.isdigit():
        value = int(word)
        if not field.low <= value <= field.high:
            raise ValueError(f"{value} is outside {field.low}-{field.high}")
        return value
    if word.upper() in field.names:
        return field.low + field.names.index(word.upper())
    if not word:
        raise ValueError("a number is missing")
    named = f" or a name such as {field.names[0]}" if field.names else ""
    raise ValueError(f"{word!r} is not a number{named}")
