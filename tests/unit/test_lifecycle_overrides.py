"""Policies and cron entries changed at run time (issue 15): ``policy set/unset/show`` and ``cron add/remove`` on
the admin protocol, in force at once, store records that replay, and a reload of the file keeps them."""

from __future__ import annotations

import json

from conversation import NO_JOB, Conversation

from geartrain.lifecycle.overrides import parse_cron_tokens
from geartrain.lifecycle.policy import parse_policies
from geartrain.protocol.admin import TooManyTokens, parse
from geartrain.server.core.config import EngineConfig
from geartrain.server.core.lifecycle import CRON_ENTRY_FUNCTION, POLICY_FUNCTION, Lifecycle
from geartrain.server.core.records import Removal

FILE = '[functions.f]\nretries = 1\n[[cron]]\nfunction = "report"\nschedule = "0 7 * * *"\n'


def talk_with(policy: str = FILE, persistent: bool = True) -> Conversation:
    talk = Conversation(EngineConfig(handle_prefix=b"H:test", persistent=persistent))
    talk.engine.lifecycle = Lifecycle(talk.engine, parse_policies(policy))
    talk.engine.lifecycle.arm_cron(talk.now)
    return talk


def records(talk: Conversation) -> tuple[list[object], list[Removal]]:
    batch = talk.engine.take_store_batch()
    assert batch is not None
    talk.engine.store_committed(batch, talk.now)
    return list(batch.adds), batch.removes


def test_policy_set_is_in_force_at_once_shown_stored_and_unset_back_to_the_file() -> None:
    talk = talk_with()
    admin = talk.connect()
    assert talk.admin(admin, b"policy set f retries=4 timeout=30s rate=10%2Fs") == b"OK\r\n"
    lifecycle = talk.engine.lifecycle
    assert lifecycle is not None
    policy = lifecycle.policy(b"f")
    assert (policy.retries, policy.timeout, policy.rate) == (4, 30.0, (10.0, 1.0))
    shown = json.loads(talk.admin(admin, b"policy show f"))
    assert shown["functions"]["f"]["overrides"] == {"retries": 4, "timeout": "30s", "rate": "10/s"}
    assert shown["functions"]["f"]["policy"]["retries"] == 4
    [record], _ = records(talk)
    assert (record.function, record.key) == (POLICY_FUNCTION, b"f")  # type: ignore[attr-defined]
    # A reload of the file keeps the run-time change over it.
    lifecycle.reload(parse_policies('[functions.f]\nretries = 2\nbackoff = "fixed"\n'), talk.now)
    assert (lifecycle.policy(b"f").retries, lifecycle.policy(b"f").backoff) == (4, "fixed")
    assert talk.admin(admin, b"policy unset f retries") == b"OK\r\n"
    assert lifecycle.policy(b"f").retries == 2 and lifecycle.policy(b"f").timeout == 30.0
    assert talk.admin(admin, b"policy unset f") == b"OK\r\n"
    assert lifecycle.policy(b"f").timeout is None
    _, removes = records(talk)
    assert removes[-1] == Removal(b"f", POLICY_FUNCTION)


def test_bad_settings_are_one_line_errors_and_change_nothing() -> None:
    talk = talk_with()
    admin = talk.connect()
    assert talk.admin(admin, b"policy set f retries=-1").startswith(b"ERR INVALID_ARGUMENTS functions.f.retries:")
    assert talk.admin(admin, b"policy set f colour=red").startswith(b"ERR INVALID_ARGUMENTS colour:+not+a+policy+key")
    assert talk.admin(admin, b"policy set f") == (
        b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+policy\r\n"
    )
    assert talk.admin(admin, b"cron add f 99 * * * *").startswith(b"ERR INVALID_ARGUMENTS cron.schedule:")
    assert talk.admin(admin, b"cron add report 0 7 * * *").endswith(b"is+in+the+policy+file+already\r\n")
    lifecycle = talk.engine.lifecycle
    assert lifecycle is not None and not lifecycle.overrides.functions and not lifecycle.overrides.cron
    assert talk.engine.take_store_batch() is None


def test_a_cron_entry_added_at_run_time_fires_is_stored_replays_and_can_be_removed() -> None:
    talk = talk_with()
    admin, worker = talk.connect(), talk.worker(b"tick")
    start = (int(talk.now) // 10 + 1) * 10
    reply = talk.admin(admin, b"cron add tick @every 10s payload=two%20words priority=high")
    assert reply == b"OK %d\n" % start
    [added], _ = records(talk)
    assert (added.function, added.key) == (CRON_ENTRY_FUNCTION, b"tick|@every 10s")  # type: ignore[attr-defined]
    rows = talk.admin(admin, b"cron list").split(b"\n")
    assert [row.split(b"\t")[0] for row in rows[:-2]] == [b"report", b"tick"]
    talk.tick(start)
    records(talk)
    handle, _, data = talk.grab(worker)[1]
    assert data == b"two words" and talk.engine.jobs[handle].priority == 0  # high
    # Replayed by a new engine: the entry is back.
    again = talk_with()
    again.engine.restore_record(added, again.now)  # type: ignore[arg-type]
    again.engine.replay_done(again.now)
    lifecycle = again.engine.lifecycle
    assert lifecycle is not None and b"tick|@every 10s" in lifecycle.crons
    assert again.admin(again.connect(), b"cron remove tick") == b"OK 1\n"
    assert b"tick|@every 10s" not in lifecycle.crons
    _, removes = records(again)
    assert removes == [Removal(b"tick|@every 10s", CRON_ENTRY_FUNCTION)]
    assert again.admin(again.connect(), b"cron remove report") == b"OK 0\n"  # the file's entry stays
    assert again.grab(again.worker(b"tick")) == NO_JOB


def test_the_admin_parser_takes_long_cron_and_policy_lines_and_nothing_else() -> None:
    parsed = parse(b"cron add f */2 * * * * * timezone=Europe/Berlin catch_up=once")
    assert not isinstance(parsed, bytes) and parsed.name == "cron add"
    assert parse_cron_tokens(parsed.args) == {
        "function": "f",
        "schedule": "*/2 * * * * *",
        "timezone": "Europe/Berlin",
        "catch_up": "once",
    }
    try:
        parse(b"status a b c d e f")
    except TooManyTokens:
        pass
    else:
        raise AssertionError("gearmand hangs up on this line; so do we")
