"""The life-cycle policy file: durations and rates, the backoff curve, inheritance from [defaults], and an error
message of one line naming the file and the key for every way the file can be wrong."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geartrain.errors import GearmanError
from geartrain.lifecycle.policy import (
    BACKOFF_JITTER,
    DAY,
    FIXED,
    HIGH,
    LOW,
    NORMAL,
    CronEntry,
    FunctionPolicy,
    Policies,
    PolicyError,
    load_policies,
    parse_duration,
    parse_policies,
    parse_rate,
)

EXAMPLE = """
[defaults]
retries = 0

[functions.resize]
retries = 5
backoff = "exponential"
backoff_base = "1s"
backoff_max = "1h"
timeout = "30s"
concurrency = 4
rate = "100/s"
result_ttl = "1h"
dead_retention = "7d"
dead_max = 10000

[[cron]]
function = "report"
schedule = "0 7 * * *"
payload = "daily"
timezone = "Europe/Berlin"
unique = "report-{time}"
priority = "normal"
catch_up = "skip"
"""

SOURCE = "/etc/geartrain/policy.toml"
PROPERTIES = settings(max_examples=200, deadline=None)


def policy_error(text: str) -> str:
    """The message of the error that parsing ``text`` raises, checked to be one line naming the file."""
    with pytest.raises(PolicyError) as caught:
        parse_policies(text, SOURCE)
    message = str(caught.value)
    assert "\n" not in message and len(message.splitlines()) == 1
    assert message.startswith(f"policy file {SOURCE}: ")
    return message


# The example file


def test_the_example_file_parses_into_every_setting() -> None:
    policies = parse_policies(EXAMPLE)
    assert policies.defaults == FunctionPolicy()
    assert policies.functions == {
        b"resize": FunctionPolicy(
            retries=5,
            backoff="exponential",
            backoff_base=1.0,
            backoff_max=3600.0,
            timeout=30.0,
            concurrency=4,
            rate=(100.0, 1.0),
            result_ttl=3600.0,
            dead_retention=7 * DAY,
            dead_max=10_000,
        )
    }
    assert policies.cron == (
        CronEntry(
            function=b"report",
            schedule="0 7 * * *",
            payload=b"daily",
            timezone="Europe/Berlin",
            unique="report-{time}",
            priority=NORMAL,
            catch_up="skip",
        ),
    )
    assert not policies.empty


def test_the_example_sets_every_key_a_function_table_allows() -> None:
    """So the example test above covers every checker, and the key table and the record cannot drift apart."""
    allowed = policy_error("[functions.f]\nnot_a_key = 1").split("allowed: ")[1].rstrip(")").split(", ")
    assert sorted(allowed) == sorted(f.name for f in dataclasses.fields(FunctionPolicy))
    assert all(f"\n{key} = " in EXAMPLE for key in allowed)


def test_load_policies_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(EXAMPLE, encoding="utf-8")
    assert load_policies(path) == parse_policies(EXAMPLE)
    assert load_policies(str(path)) == parse_policies(EXAMPLE)


def test_cron_entry_defaults() -> None:
    (entry,) = parse_policies('[[cron]]\nfunction = "tick"\nschedule = "@every 10s"').cron
    assert entry == CronEntry(function=b"tick", schedule="@every 10s")
    assert (entry.payload, entry.timezone, entry.unique, entry.priority, entry.catch_up) == (
        b"",
        "UTC",
        None,
        NORMAL,
        "skip",
    )


@pytest.mark.parametrize(("word", "number"), [("high", HIGH), ("normal", NORMAL), ("low", LOW)])
def test_cron_priorities_are_gearmand_queue_numbers(word: str, number: int) -> None:
    text = f'[[cron]]\nfunction = "f"\nschedule = "* * * * *"\npriority = "{word}"\ncatch_up = "once"'
    (entry,) = parse_policies(text).cron
    assert (entry.priority, entry.catch_up) == (number, "once")


def test_function_names_are_utf8_bytes() -> None:
    policies = parse_policies(
        '[functions."bild.größe"]\nretries = 1\n[[cron]]\nfunction = "größe"\nschedule = "@hourly"'
    )
    assert policies.for_function("bild.größe".encode()).retries == 1
    assert policies.cron[0].function == "größe".encode()


# Inheritance and the empty policy


def test_a_function_table_inherits_every_key_it_does_not_set() -> None:
    policies = parse_policies(
        '[defaults]\nretries = 3\ntimeout = "1m"\nbackoff = "fixed"\n'
        '[functions.resize]\nretries = 7\n[functions.plain]\nconcurrency = 2\nbackoff = "exponential"'
    )
    assert policies.defaults == FunctionPolicy(retries=3, timeout=60.0, backoff=FIXED)
    assert policies.for_function(b"resize") == FunctionPolicy(retries=7, timeout=60.0, backoff=FIXED)
    assert policies.for_function(b"plain") == FunctionPolicy(retries=3, timeout=60.0, concurrency=2)
    assert policies.for_function(b"unlisted") is policies.defaults


def test_the_order_of_tables_does_not_matter_for_inheritance() -> None:
    later = parse_policies('[functions.resize]\nretries = 7\n[defaults]\ntimeout = "1m"')
    assert later.for_function(b"resize") == FunctionPolicy(retries=7, timeout=60.0)


def test_no_file_means_the_empty_policy() -> None:
    assert Policies.default().empty is True
    assert Policies.default().for_function(b"anything") == FunctionPolicy()
    assert parse_policies("").empty is True


def test_tables_that_only_repeat_built_in_defaults_are_empty() -> None:
    assert parse_policies("[defaults]\nretries = 0\n[functions.f]\ndead_max = 10000\nbackoff_max = '1h'").empty


@pytest.mark.parametrize(
    "text",
    ["[defaults]\nretries = 1", "[functions.f]\ntimeout = 5", '[[cron]]\nfunction = "f"\nschedule = "@hourly"'],
)
def test_any_setting_or_cron_entry_makes_the_policy_non_empty(text: str) -> None:
    assert parse_policies(text).empty is False


# Durations and rates


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("7d", 7 * DAY),
        ("1h30m", 5400.0),
        ("1d2h3m4s5ms", DAY + 7200 + 180 + 4 + 0.005),
        ("1.5s", 1.5),
        ("0s", 0.0),
        (" 10s ", 10.0),
        ("90", 90.0),
        ("2.5", 2.5),
        (90, 90.0),
        (0.25, 0.25),
        (0, 0.0),
    ],
)
def test_durations(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    ["", " ", "3x", "s", "1h 30m", "10S", "1e3s", "-5s", "-1", "1..5s", "5 s", ".5s", "\u0661\u0660s", "inf", "nan"],
)
def test_bad_duration_strings_are_refused_naming_the_value(text: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_duration(text)
    message = str(caught.value)
    assert isinstance(caught.value, GearmanError)
    assert f'"{text}"' in message and "duration" in message and "\n" not in message


@pytest.mark.parametrize("value", [-1, -0.5, float("inf"), float("nan"), True, 10**400])
def test_bad_duration_numbers_are_refused(value: float) -> None:
    with pytest.raises(PolicyError, match="duration"):
        parse_duration(value)


@given(st.integers(0, 10_000), st.sampled_from([("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]))
@PROPERTIES
def test_every_unit_scales_its_number(number: int, unit: tuple[str, float]) -> None:
    suffix, factor = unit
    assert parse_duration(f"{number}{suffix}") == pytest.approx(number * factor)


@pytest.mark.parametrize(
    ("text", "rate"),
    [("100/s", (100.0, 1.0)), ("5/m", (5.0, 60.0)), ("1000/h", (1000.0, 3600.0)), ("0.5/s", (0.5, 1.0))],
)
def test_rates(text: str, rate: tuple[float, float]) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "100", "100/", "/s", "100/d", "100/x", "0/s", "-5/s", "100 per s", "5/5m"])
def test_bad_rates_are_refused_naming_the_value(text: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_rate(text)
    assert f'"{text}"' in str(caught.value) and "rate" in str(caught.value)


# The backoff curve

backoff_policies = st.builds(
    FunctionPolicy,
    backoff=st.sampled_from(["exponential", "fixed"]),
    backoff_base=st.floats(0, 1e6),
    backoff_max=st.floats(0, 1e9),
)
attempts = st.integers(1, 5000)
shares = st.floats(0, 1, exclude_max=True)


@given(backoff_policies, attempts, shares)
@PROPERTIES
def test_backoff_is_never_negative_nor_above_the_maximum(policy: FunctionPolicy, attempt: int, share: float) -> None:
    assert 0.0 <= policy.backoff_delay(attempt, lambda: share) <= policy.backoff_max


@given(backoff_policies, attempts, attempts, shares)
@PROPERTIES
def test_backoff_never_shrinks_as_retries_go_on(policy: FunctionPolicy, first: int, second: int, share: float) -> None:
    earlier, later = sorted((first, second))
    assert policy.backoff_delay(earlier, lambda: share) <= policy.backoff_delay(later, lambda: share)


@given(st.floats(0.001, 100), st.integers(1, 20), shares)
@PROPERTIES
def test_exponential_backoff_doubles_with_up_to_a_quarter_of_jitter(base: float, attempt: int, share: float) -> None:
    policy = FunctionPolicy(backoff_base=base, backoff_max=1e12)
    plain = base * 2 ** (attempt - 1)
    delay = policy.backoff_delay(attempt, lambda: share)
    assert delay == pytest.approx(plain * (1 + BACKOFF_JITTER * share))
    assert plain <= delay <= plain * (1 + BACKOFF_JITTER)


@given(st.floats(0, 1e6), attempts, shares)
@PROPERTIES
def test_fixed_backoff_is_the_base_without_jitter(base: float, attempt: int, share: float) -> None:
    policy = FunctionPolicy(backoff=FIXED, backoff_base=base, backoff_max=2e6)
    assert policy.backoff_delay(attempt, lambda: share) == base


def test_backoff_examples_and_the_default_random() -> None:
    policy = FunctionPolicy(backoff_base=1.0, backoff_max=60.0)
    assert [policy.backoff_delay(n, lambda: 0.0) for n in (1, 2, 3, 7, 8)] == [1.0, 2.0, 4.0, 60.0, 60.0]
    assert policy.backoff_delay(2, lambda: 0.5) == 2.25
    assert 4.0 <= policy.backoff_delay(3) < 5.0
    assert policy.backoff_delay(10**9) == 60.0  # no OverflowError however many retries


def test_backoff_counts_retries_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        FunctionPolicy().backoff_delay(0)


# Errors in the file: one line each, naming the file, the key and the value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[functions.resize]\ntimeout = "3x"', 'functions.resize.timeout: "3x" is not a duration (e.g. 30s, 5m, 1h'),
        ("[functions.resize]\ntimeout = 0", "functions.resize.timeout: 0 is no time at all"),
        ('[defaults]\nbackoff_max = "-1h"', 'defaults.backoff_max: "-1h" is negative'),
        ("[defaults]\nresult_ttl = [1]", "defaults.result_ttl: [1] is not a duration"),
        ("[defaults]\ndead_retention = 07:30:00", "defaults.dead_retention: datetime.time(7, 30) is not a duration"),
        ('[functions.f]\nrate = "5/d"', 'functions.f.rate: "5/d" is not a rate (e.g. 100/s, 5/m, 1000/h)'),
        ("[functions.f]\nrate = 100", "functions.f.rate: 100 is not a rate"),
        ('[functions.f]\nretries = "5"', 'functions.f.retries: "5" is not a whole number'),
        ("[functions.f]\nretries = 2.5", "functions.f.retries: 2.5 is not a whole number"),
        ("[functions.f]\nretries = true", "functions.f.retries: True is not a whole number"),
        ("[functions.f]\nretries = -1", "functions.f.retries: must be 0 or more, not -1"),
        ("[functions.f]\nconcurrency = 0", "functions.f.concurrency: must be 1 or more, not 0"),
        ("[functions.f]\ndead_max = -3", "functions.f.dead_max: must be 0 or more, not -3"),
        ('[functions.f]\nbackoff = "linear"', 'functions.f.backoff: "linear" is not a backoff kind (use exponential'),
        ("[functions.f]\nretry = 3", "functions.f.retry: unknown key (allowed: backoff, backoff_base, backoff_max,"),
        ('[functions."img.resize"]\nretry = 3', 'functions."img.resize".retry: unknown key (allowed: '),
        ("[defaults]\nconcurency = 3", "defaults.concurency: unknown key (allowed: "),
        ("[functions]\nretries = 3", "functions.retries: must be a table ([functions.retries]); settings for every"),
        ('functions = "resize"', "functions: must be a table of function tables ([functions.NAME])"),
        ("defaults = 3", "defaults: must be a table ([defaults])"),
        ('[functions.""]\nretries = 1', 'functions."": must be a non-empty string, not ""'),
        ('[functions."a\\u0000b"]\nretries = 1', 'functions."a\\u0000b": "a\\u0000b" cannot be a function name'),
        ("[jobs]\nretries = 1", "jobs: unknown at the top level (allowed: [defaults], [functions.NAME], [[cron]])"),
        ("retries = 1", "retries: unknown at the top level"),
        ('cron = "daily"', "cron: must be an array of tables ([[cron]])"),
        ("cron = [1]", "cron #1: must be a table ([[cron]])"),
        ('[[cron]]\nschedule = "* * * * *"', "cron #1: function is missing (every [[cron]] entry needs a function"),
        ('[[cron]]\nfunction = "a"\nschedule = "@hourly"\n[[cron]]\nfunction = "b"', "cron #2: schedule is missing"),
        ('[[cron]]\nfunction = ""\nschedule = "@hourly"', 'cron #1.function: must be a non-empty string, not ""'),
        ('[[cron]]\nfunction = "f"\nschedule = "  "', 'cron #1.schedule: must be a non-empty string, not "  "'),
        ('[[cron]]\nfunction = "f"\nschedule = 5', "cron #1.schedule: must be a non-empty string, not 5"),
        ('[[cron]]\nfunction = "f"\nschedule = "@hourly"\npayload = 5', "cron #1.payload: must be a string, not 5"),
        ('[[cron]]\nfunction = "f"\nschedule = "@hourly"\nunique = ""', "cron #1.unique: must be a non-empty string"),
        ('[[cron]]\nfunction = "f"\nschedule = "@hourly"\nwhen = 1', "cron #1.when: unknown key (allowed: catch_up, "),
        (
            '[[cron]]\nfunction = "f"\nschedule = "@hourly"\ntimezone = "Mars/Olympus"',
            'cron #1.timezone: "Mars/Olympus" is not a known time zone',
        ),
        (
            '[[cron]]\nfunction = "f"\nschedule = "@hourly"\ntimezone = "/etc/passwd"',
            'cron #1.timezone: "/etc/passwd" is',
        ),
        (
            '[[cron]]\nfunction = "f"\nschedule = "@hourly"\ntimezone = "../x"',
            'cron #1.timezone: "../x" is not a known',
        ),
        (
            '[[cron]]\nfunction = "f"\nschedule = "@hourly"\npriority = "urgent"',
            'cron #1.priority: "urgent" is not a priority (use high, normal or low)',
        ),
        ('[[cron]]\nfunction = "f"\nschedule = "@hourly"\npriority = 0', "cron #1.priority: 0 is not a priority"),
        (
            '[[cron]]\nfunction = "f"\nschedule = "@hourly"\ncatch_up = "all"',
            'cron #1.catch_up: "all" is not a catch-up kind (use skip or once)',
        ),
        ("[defaults]\nretries = ", "not valid TOML: Invalid value (at end of document)"),
        ("[defaults]\nretries = 1\nretries = 2\n", "not valid TOML: Cannot overwrite a value (at line 3, column 12)"),
    ],
)
def test_each_error_is_one_line_naming_the_file_and_the_key(text: str, expected: str) -> None:
    assert policy_error(text).startswith(f"policy file {SOURCE}: {expected}")


def test_a_value_with_a_line_break_is_still_one_line() -> None:
    message = policy_error('[functions.f]\ntimeout = "3\\n4"')
    assert message.endswith('functions.f.timeout: "3\\n4" is not a duration (e.g. 30s, 5m, 1h30m)')


def test_parse_policies_names_an_unnamed_source() -> None:
    with pytest.raises(PolicyError, match=r"^policy file <policy>: defaults\.retries: "):
        parse_policies("[defaults]\nretries = -1")


def test_a_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(PolicyError) as caught:
        load_policies(path)
    assert str(caught.value) == f"policy file {path}: cannot read: No such file or directory"


def test_a_file_that_is_not_utf8_is_a_policy_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[functions."gr\xf6\xdfe"]\nretries = 1\n')
    with pytest.raises(PolicyError, match=rf"^policy file {path}: not UTF-8 text \(bad byte at offset 14\)$"):
        load_policies(path)


def test_an_error_in_a_loaded_file_names_its_path(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[functions.resize]\ntimeout = "3x"\n', encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policies(path)
    assert str(caught.value) == (
        f'policy file {path}: functions.resize.timeout: "3x" is not a duration (e.g. 30s, 5m, 1h30m)'
    )


def test_a_delay_or_a_time_becomes_whole_seconds_never_early() -> None:
    from geartrain.lifecycle.when import WhenError, run_at

    assert run_at(None, None, 100.5) is None
    assert run_at("30s", None, 100.5) == 131
    assert run_at(None, "2026-12-24T18:00:00+01:00", 0) == 1798131600
    assert run_at(None, "2026-12-24T17:00:00.2Z", 0) == 1798131601
    for delay, at in (("x", None), (None, "2026-12-24 18:00"), (None, "yesterday"), ("1s", "2026-12-24T18:00Z")):
        with pytest.raises(WhenError):
            run_at(delay, at, 0)
