"""Cron schedules: the field grammar, Vixie cron's day rule, @every alignment, daylight saving time, and a
minute-by-minute (or second-by-second) reference that next_after must agree with."""

from __future__ import annotations

import calendar
import dataclasses
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geartrain.errors import GearmanError
from geartrain.lifecycle.cron import CronError, CronSchedule, EverySchedule, Schedule, parse_schedule

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")  # its clocks change by half an hour
UTC_ZONE = ZoneInfo("UTC")
ZONES = [UTC_ZONE, BERLIN, NEW_YORK, LORD_HOWE]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The 2026 clock changes of the zones above (checked by test_transitions_are_clock_changes).
TRANSITIONS = {
    BERLIN: [datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC)],
    NEW_YORK: [datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC)],
    LORD_HOWE: [datetime(2026, 4, 4, 15, tzinfo=UTC), datetime(2026, 10, 3, 15, 30, tzinfo=UTC)],
}


def cron(text: str) -> CronSchedule:
    schedule = parse_schedule(text)
    assert isinstance(schedule, CronSchedule)
    return schedule


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def berlin(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0, *, fold: int = 0) -> datetime:
    """A Berlin wall time as a UTC instant (aware datetimes in a repeated hour never equal those of other zones)."""
    return datetime(year, month, day, hour, minute, second, tzinfo=BERLIN, fold=fold).astimezone(UTC)


# The grammar.


@pytest.mark.parametrize(
    ("text", "field", "values"),
    [
        ("5 * * * *", "minutes", (5,)),
        ("07 * * * *", "minutes", (7,)),
        ("1-4 * * * *", "minutes", (1, 2, 3, 4)),
        ("*/20 * * * *", "minutes", (0, 20, 40)),
        ("10-30/10 * * * *", "minutes", (10, 20, 30)),
        ("50/4 * * * *", "minutes", (50, 54, 58)),
        ("1,5,7-9,5 * * * *", "minutes", (1, 5, 7, 8, 9)),
        ("*/90 * * * *", "minutes", (0,)),
        ("0 */6 * * *", "hours", (0, 6, 12, 18)),
        ("0 0 */10 * *", "days_of_month", (1, 11, 21, 31)),
        ("0 0 1 JAN,mar,Dec *", "months", (1, 3, 12)),
        ("0 0 1 feb-APR/2 *", "months", (2, 4)),
        ("0 0 1 */5 *", "months", (1, 6, 11)),
        ("0 0 * * MON-FRI", "days_of_week", (1, 2, 3, 4, 5)),
        ("0 0 * * sun,Sat", "days_of_week", (0, 6)),
        ("0 0 * * 7", "days_of_week", (0,)),
        ("0 0 * * 5-7", "days_of_week", (0, 5, 6)),
        ("0 0 * * */2", "days_of_week", (0, 2, 4, 6)),
        ("0 0 * * *", "days_of_week", (0, 1, 2, 3, 4, 5, 6)),
        ("0 0 * * *", "seconds", (0,)),
    ],
)
def test_field_grammar(text: str, field: str, values: tuple[int, ...]) -> None:
    assert getattr(cron(text), field) == values


def test_six_fields_put_seconds_first() -> None:
    every_two = cron("*/2 * * * * *")
    assert every_two.seconds == tuple(range(0, 60, 2))
    assert every_two.minutes == tuple(range(60))
    noon = cron("30 0 12 * * *")
    assert (noon.seconds, noon.minutes, noon.hours) == ((30,), (0,), (12,))
    assert noon.next_after(utc(2026, 5, 1, 12, 0, 30), UTC_ZONE) == utc(2026, 5, 2, 12, 0, 30)
    assert every_two.next_after(utc(2026, 5, 1, 12, 0, 3, 500), UTC_ZONE) == utc(2026, 5, 1, 12, 0, 4)


def test_whitespace_between_fields_is_free() -> None:
    assert cron("  0\t7  * *   1-5 ").hours == (7,)


@pytest.mark.parametrize(
    ("nickname", "fields"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@Daily", "0 0 * * *"),
    ],
)
def test_nicknames(nickname: str, fields: str) -> None:
    assert dataclasses.replace(cron(nickname), text="") == dataclasses.replace(cron(fields), text="")
    assert cron(nickname).text == nickname


def test_text_is_kept_as_written() -> None:
    assert parse_schedule(" */5 * * * * ").text == "*/5 * * * *"
    assert parse_schedule("@every 10s").text == "@every 10s"


# Vixie cron's rule for the two day fields.


def days_fired(text: str, year: int, month: int) -> list[int]:
    start = utc(year, month, 1) - timedelta(seconds=1)
    end = utc(year, month, calendar.monthrange(year, month)[1], 23, 59)
    return [moment.day for moment in parse_schedule(text).fires_between(start, end, UTC_ZONE)]


def test_both_day_fields_restricted_means_either() -> None:
    # January 2026: Fridays are the 2nd, 9th, 16th, 23rd and 30th; the 13th is a Tuesday.
    assert days_fired("0 0 13 * 5", 2026, 1) == [2, 9, 13, 16, 23, 30]
    assert days_fired("0 0 13 * FRI", 2026, 1) == [2, 9, 13, 16, 23, 30]


def test_one_day_field_restricted_means_that_one() -> None:
    assert days_fired("0 0 13 * *", 2026, 1) == [13]
    assert days_fired("0 0 * * 5", 2026, 1) == [2, 9, 16, 23, 30]


def test_a_day_field_starting_with_a_star_counts_as_unrestricted() -> None:
    # As in Vixie cron: "*/2" restricts the days, but starts with "*", so both fields must match.
    assert days_fired("0 0 */2 * 5", 2026, 1) == [9, 23]
    # Which gives the first Sunday of the month ("*/7" of 0-7 is Sunday only).
    assert days_fired("0 0 1-7 * */7", 2026, 1) == [4]


def test_days_that_exist_only_in_leap_years() -> None:
    assert parse_schedule("0 0 29 2 *").next_after(utc(2026, 1, 1), UTC_ZONE) == utc(2028, 2, 29)


def test_rare_days_are_found_without_a_short_search_limit() -> None:
    # 29 February on a Sunday: 2128 comes 40 years after 2088, the longest wait there is.
    rare = parse_schedule("0 0 29 2 */7")
    assert rare.next_after(utc(2090, 1, 1), UTC_ZONE) == utc(2128, 2, 29)
    assert date(2128, 2, 29).weekday() == calendar.SUNDAY


# @every.


def test_every_is_aligned_to_the_epoch() -> None:
    ten_seconds = parse_schedule("@every 10s")
    assert ten_seconds.next_after(utc(1970, 1, 1, 0, 0, 5), UTC_ZONE) == utc(1970, 1, 1, 0, 0, 10)
    assert ten_seconds.next_after(utc(1970, 1, 1, 0, 0, 10), UTC_ZONE) == utc(1970, 1, 1, 0, 0, 20)
    assert ten_seconds.next_after(utc(2026, 5, 1, 12, 0, 9, 999999), UTC_ZONE) == utc(2026, 5, 1, 12, 0, 10)
    # 2026-01-01T00:00Z is 327264 periods of 90 minutes after the epoch.
    assert parse_schedule("@every 1h30m").next_after(utc(2026, 1, 1), UTC_ZONE) == utc(2026, 1, 1, 1, 30)
    assert parse_schedule("@every 1d").next_after(utc(2026, 1, 1, 5), BERLIN) == utc(2026, 1, 2)


@pytest.mark.parametrize(
    ("text", "period"),
    [
        ("@every 10s", timedelta(seconds=10)),
        ("@every 250ms", timedelta(milliseconds=250)),
        ("@every 1h30m", timedelta(hours=1, minutes=30)),
        ("@every 2d12h", timedelta(days=2, hours=12)),
        ("@every 1m5ms", timedelta(minutes=1, milliseconds=5)),
        ("@EVERY 5m", timedelta(minutes=5)),
    ],
)
def test_every_durations(text: str, period: timedelta) -> None:
    schedule = parse_schedule(text)
    assert isinstance(schedule, EverySchedule)
    assert schedule.period == period


durations = st.builds(
    timedelta,
    days=st.integers(0, 3),
    hours=st.integers(0, 23),
    minutes=st.integers(0, 59),
    seconds=st.integers(0, 59),
    milliseconds=st.integers(0, 999),
).filter(bool)
instants = st.datetimes(datetime(1971, 1, 1), datetime(2090, 1, 1), timezones=st.just(UTC))


def every_text(period: timedelta) -> str:
    milliseconds = period // timedelta(milliseconds=1)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, milliseconds = divmod(milliseconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "@every " + "".join(parts)


@given(durations, instants, st.sampled_from(ZONES))
def test_every_fires_on_the_next_multiple_of_its_period(period: timedelta, after: datetime, zone: ZoneInfo) -> None:
    schedule = parse_schedule(every_text(period))
    fire = schedule.next_after(after, zone)
    assert after < fire <= after + period
    assert (fire - EPOCH) % period == timedelta(0)
    assert fire == schedule.next_after(after.astimezone(BERLIN), UTC_ZONE)  # no zone changes it
    assert fire.utcoffset() == timedelta(0)


# Errors.


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("", ["empty"]),
        ("   ", ["empty"]),
        ("* * * *", ["expected 5 fields", "found 4"]),
        ("* * * * * * *", ["found 7"]),
        ("60 * * * *", ["minute '60'", "0-59"]),
        ("0 24 * * *", ["hour '24'", "0-23"]),
        ("0 0 32 * *", ["day-of-month '32'", "1-31"]),
        ("0 0 0 * *", ["day-of-month '0'"]),
        ("0 0 * 13 *", ["month '13'", "1-12"]),
        ("0 0 * FOO *", ["month 'FOO'", "not a number"]),
        ("0 0 * * 8", ["day-of-week '8'", "0-7"]),
        ("0 0 * * MON-SUN", ["day-of-week 'MON-SUN'", "backwards"]),
        ("60 * * * * *", ["second '60'"]),
        ("x * * * *", ["minute 'x'"]),
        ("*/0 * * * *", ["minute '*/0'", "step"]),
        ("*/ * * * *", ["minute '*/'", "step"]),
        ("5-1 * * * *", ["minute '5-1'", "backwards"]),
        ("1,,2 * * * *", ["minute '1,,2'", "empty"]),
        ("1-2-3 * * * *", ["minute '1-2-3'"]),
        ("-5 * * * *", ["minute '-5'", "missing"]),
        ("0 0 \u00b2 * *", ["day-of-month"]),
        ("JAN * * * *", ["minute 'JAN'"]),
        ("0 0 30 2 *", ["never fires", "day-of-month '30'", "month '2'"]),
        ("0 0 31 4,6,9,11 *", ["never fires"]),
        ("0 0 30-31 FEB *", ["never fires"]),
        ("@reboot", ["unknown nickname '@reboot'"]),
        ("@daily 0", ["@daily takes nothing"]),
        ("@every", ["@every takes one duration"]),
        ("@every 1h 30m", ["@every takes one duration"]),
        ("@every 0s", ["'0s'", "longer than zero"]),
        ("@every 0h0m", ["longer than zero"]),
        ("@every 10", ["'10'", "units"]),
        ("@every 1x", ["'1x'"]),
        ("@every -1s", ["'-1s'"]),
        ("@every 1.5h", ["'1.5h'"]),
        ("@every 10S", ["'10S'"]),
        ("@every 99999999999999999d", ["too long"]),
    ],
)
def test_errors_name_the_field_on_one_line(text: str, fragments: list[str]) -> None:
    with pytest.raises(CronError) as caught:
        parse_schedule(text)
    message = str(caught.value)
    assert isinstance(caught.value, GearmanError)
    assert "\n" not in message
    assert message.startswith(f"schedule {text!r}: ")
    for fragment in fragments:
        assert fragment in message


def test_a_schedule_wants_aware_datetimes() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_schedule("* * * * *").next_after(datetime(2026, 1, 1), UTC_ZONE)
    with pytest.raises(ValueError, match="aware"):
        parse_schedule("@every 1s").next_after(datetime(2026, 1, 1), UTC_ZONE)


def test_the_end_of_the_calendar_is_an_error() -> None:
    with pytest.raises(CronError, match="does not fire after"):
        parse_schedule("0 0 1 1 *").next_after(utc(9999, 6, 1), UTC_ZONE)


# Daylight saving time (Europe/Berlin: 2026-03-29 02:00 -> 03:00, 2026-10-25 03:00 -> 02:00).


def test_a_skipped_wall_time_fires_when_the_gap_ends() -> None:
    half_past_two = parse_schedule("30 2 * * *")
    fire = half_past_two.next_after(berlin(2026, 3, 29, 0, 0), BERLIN)
    assert fire == utc(2026, 3, 29, 1, 0)
    assert fire.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 3, 29, 3, 0)
    assert half_past_two.next_after(fire, BERLIN) == berlin(2026, 3, 30, 2, 30)


def test_wall_times_in_the_gap_fire_once_together() -> None:
    quarterly = parse_schedule("*/15 * * * *")
    fires = quarterly.fires_between(berlin(2026, 3, 29, 1, 30), berlin(2026, 3, 29, 3, 30), BERLIN)
    assert [fire.astimezone(BERLIN).strftime("%H:%M") for fire in fires] == ["01:45", "03:00", "03:15", "03:30"]


def test_a_repeated_wall_time_fires_the_first_time_round() -> None:
    half_past_two = parse_schedule("30 2 * * *")
    first = half_past_two.next_after(berlin(2026, 10, 25, 0, 0), BERLIN)
    assert first == berlin(2026, 10, 25, 2, 30, fold=0) == utc(2026, 10, 25, 0, 30)
    assert half_past_two.next_after(first, BERLIN) == berlin(2026, 10, 26, 2, 30) == utc(2026, 10, 26, 1, 30)
    # From the second time round, the next firing is the next day's.
    assert half_past_two.next_after(berlin(2026, 10, 25, 2, 10, fold=1), BERLIN) == utc(2026, 10, 26, 1, 30)
    assert len(half_past_two.fires_between(utc(2026, 10, 24, 12), utc(2026, 10, 25, 12), BERLIN)) == 1


def test_the_repeated_stretch_is_skipped_on_the_second_pass() -> None:
    hourly = parse_schedule("0 * * * *")
    fires = hourly.fires_between(utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 2, 30), BERLIN)
    assert fires == [utc(2026, 10, 25, 0), utc(2026, 10, 25, 2)]  # 02:00 CEST, then 03:00 CET
    every_second = parse_schedule("* * * * * *")
    second_pass = berlin(2026, 10, 25, 2, 10, 7, fold=1) + timedelta(microseconds=500)
    assert every_second.next_after(second_pass, BERLIN) == berlin(2026, 10, 25, 3)


def test_transitions_are_clock_changes() -> None:
    for zone, changes in TRANSITIONS.items():
        for change in changes:
            before = (change - timedelta(seconds=1)).astimezone(zone).utcoffset()
            assert before != change.astimezone(zone).utcoffset()


# The reference: every field as a set, and a minute-by-minute (or second-by-second) walk through UTC.


@dataclasses.dataclass(frozen=True)
class Reference:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    either_day_matches: bool

    def matches(self, wall: datetime) -> bool:
        by_month_day = wall.day in self.days_of_month
        by_weekday = wall.isoweekday() % 7 in self.days_of_week
        day = (by_month_day or by_weekday) if self.either_day_matches else (by_month_day and by_weekday)
        return (
            day
            and wall.second in self.seconds
            and wall.minute in self.minutes
            and wall.hour in self.hours
            and wall.month in self.months
        )

    def can_fire(self) -> bool:
        return self.either_day_matches or any(
            day <= calendar.monthrange(2024, month)[1] for month in self.months for day in self.days_of_month
        )


def reference_fires(reference: Reference, start: datetime, end: datetime, zone: ZoneInfo, step: int) -> list[datetime]:
    """The firings in (start, end], walking UTC in steps of ``step`` seconds: an instant fires when its wall time
    matches the first time round, or when the clocks have just jumped over a matching wall time."""
    stride = timedelta(seconds=step)
    moment = EPOCH + ((start - EPOCH) // stride + 1) * stride
    previous_wall = (moment - stride).astimezone(zone).replace(tzinfo=None)
    fires = []
    while moment <= end:
        local = moment.astimezone(zone)
        wall = local.replace(tzinfo=None)
        skipped = (previous_wall + stride * n for n in range(1, (wall - previous_wall) // stride))
        if (local.fold == 0 and reference.matches(wall)) or any(reference.matches(gone) for gone in skipped):
            fires.append(moment)
        previous_wall = wall
        moment += stride
    return fires


def iterate(schedule: Schedule, start: datetime, end: datetime, zone: ZoneInfo) -> list[datetime]:
    fires = []
    moment = schedule.next_after(start, zone)
    while moment <= end:
        fires.append(moment)
        following = schedule.next_after(moment, zone)
        assert following > moment
        moment = following
    return fires


@st.composite
def cron_fields(
    draw: st.DrawFn, low: int, high: int, names: tuple[str, ...] = (), star: int = 1
) -> tuple[str, set[int]]:
    """A field's text and the values it allows, built side by side; ``star`` weighs a lone ``*``."""
    if draw(st.integers(0, 3)) < star:
        return "*", set(range(low, high + 1))

    def spell(value: int) -> str:
        if names and value - low < len(names) and draw(st.booleans()):
            name = names[value - low]
            return draw(st.sampled_from([name, name.lower(), name.capitalize()]))
        return str(value)

    items, values = [], set()
    for _ in range(draw(st.integers(1, 3))):
        first = draw(st.integers(low, high))
        last = draw(st.integers(first, high))
        step = draw(st.integers(1, high - low + 1))
        kind = draw(st.sampled_from(["value", "range", "range/step", "start/step", "*/step"]))
        if kind == "value":
            items.append(spell(first))
            values |= {first}
        elif kind == "range":
            items.append(f"{spell(first)}-{spell(last)}")
            values |= set(range(first, last + 1))
        elif kind == "range/step":
            items.append(f"{spell(first)}-{spell(last)}/{step}")
            values |= set(range(first, last + 1, step))
        elif kind == "start/step":
            items.append(f"{spell(first)}/{step}")
            values |= set(range(first, high + 1, step))
        else:
            items.append(f"*/{step}")
            values |= set(range(low, high + 1, step))
    return ",".join(items), values


MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@st.composite
def schedules(draw: st.DrawFn, with_seconds: bool, frequent: bool) -> tuple[str, Reference]:
    """A schedule's text and its reference; ``frequent`` leaves the day fields often ``*`` and the month mostly."""
    second = draw(cron_fields(0, 59)) if with_seconds else ("", {0})
    minute = draw(cron_fields(0, 59))
    hour = draw(cron_fields(0, 23))
    day_of_month = draw(cron_fields(1, 31, star=2 if frequent else 1))
    month = draw(cron_fields(1, 12, MONTHS, star=3 if frequent else 1))
    day_of_week = draw(cron_fields(0, 7, WEEKDAYS, star=2 if frequent else 1))
    words = [second[0], minute[0], hour[0], day_of_month[0], month[0], day_of_week[0]]
    reference = Reference(
        frozenset(second[1]),
        frozenset(minute[1]),
        frozenset(hour[1]),
        frozenset(day_of_month[1]),
        frozenset(month[1]),
        frozenset(day % 7 for day in day_of_week[1]),
        not day_of_month[0].startswith("*") and not day_of_week[0].startswith("*"),
    )
    return " ".join(word for word in words if word), reference


def parsed_or_refused(text: str, reference: Reference) -> Schedule | None:
    """The schedule, or None when it can never fire (and parsing said so)."""
    if reference.can_fire():
        return parse_schedule(text)
    with pytest.raises(CronError, match="never fires"):
        parse_schedule(text)
    return None


@st.composite
def zoned_instants(draw: st.DrawFn, lead: timedelta) -> tuple[ZoneInfo, datetime]:
    """A zone and an instant: anywhere, or near one of the zone's clock changes (at most ``lead`` before it, or
    in the hour after it, where the wall times of a fall-back repeat)."""
    zone = draw(st.sampled_from(ZONES))
    if zone in TRANSITIONS and draw(st.booleans()):
        change = draw(st.sampled_from(TRANSITIONS[zone]))
        before = draw(st.integers(-3600, lead // timedelta(seconds=1)))
        return zone, change - timedelta(seconds=before, microseconds=draw(st.integers(0, 999_999)))
    return zone, draw(st.datetimes(datetime(2000, 1, 1), datetime(2060, 1, 1), timezones=st.just(UTC)))


@settings(deadline=None)
@given(schedules(with_seconds=False, frequent=False), zoned_instants(timedelta(days=1)))
def test_next_firing_is_later_and_matches_the_fields(
    schedule: tuple[str, Reference], moment: tuple[ZoneInfo, datetime]
) -> None:
    text, reference = schedule
    zone, after = moment
    parsed = parsed_or_refused(text, reference)
    if parsed is None:
        return
    fire = parsed.next_after(after, zone)
    assert fire > after
    assert fire.tzinfo is UTC
    local = fire.astimezone(zone)
    if (fire - timedelta(seconds=1)).astimezone(zone).utcoffset() == local.utcoffset():  # not a gap's end
        assert reference.matches(local.replace(tzinfo=None))
        assert local.fold == 0


@settings(deadline=None, max_examples=50)
@given(schedules(with_seconds=False, frequent=True), zoned_instants(timedelta(days=1)))
def test_minute_schedules_skip_no_firing(schedule: tuple[str, Reference], window: tuple[ZoneInfo, datetime]) -> None:
    text, reference = schedule
    zone, start = window
    end = start + timedelta(days=1)
    parsed = parsed_or_refused(text, reference)
    if parsed is None:
        return
    expected = reference_fires(reference, start, end, zone, step=60)
    assert iterate(parsed, start, end, zone) == expected
    assert parsed.fires_between(start, end, zone) == expected[:1000]


@settings(deadline=None, max_examples=50)
@given(schedules(with_seconds=True, frequent=True), zoned_instants(timedelta(minutes=30)))
def test_second_schedules_skip_no_firing(schedule: tuple[str, Reference], window: tuple[ZoneInfo, datetime]) -> None:
    text, reference = schedule
    zone, start = window
    end = start + timedelta(minutes=30)
    parsed = parsed_or_refused(text, reference)
    if parsed is None:
        return
    assert iterate(parsed, start, end, zone) == reference_fires(reference, start, end, zone, step=1)


def test_fires_between_is_open_at_the_start_closed_at_the_end_and_limited() -> None:
    hourly = parse_schedule("0 * * * *")
    assert hourly.fires_between(utc(2026, 1, 1, 0), utc(2026, 1, 1, 3), UTC_ZONE) == [
        utc(2026, 1, 1, 1),
        utc(2026, 1, 1, 2),
        utc(2026, 1, 1, 3),
    ]
    assert hourly.fires_between(utc(2026, 1, 1, 0), utc(2026, 12, 31), UTC_ZONE, limit=2) == [
        utc(2026, 1, 1, 1),
        utc(2026, 1, 1, 2),
    ]
    assert hourly.fires_between(utc(2026, 1, 1, 3), utc(2026, 1, 1, 0), UTC_ZONE) == []
    assert len(parse_schedule("@every 1m").fires_between(utc(2026, 1, 1), utc(2026, 1, 2), BERLIN)) == 1000
