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


# ---------------------------------------------------------------------------------------------- on a cluster


def cluster_talk() -> Conversation:
    talk = Conversation(EngineConfig(handle_prefix=b"H:test", persistent=True, cluster=True))
    talk.engine.lifecycle = Lifecycle(talk.engine, parse_policies(FILE))
    talk.engine.lifecycle.arm_cron(talk.now)
    return talk


def test_in_a_cluster_changes_made_elsewhere_apply_here_and_a_recent_change_here_wins() -> None:
    from geartrain.server.core.overrides import sync_overrides

    talk = cluster_talk()
    lifecycle = talk.engine.lifecycle
    assert lifecycle is not None
    entry = json.dumps({"function": "tick", "schedule": "@every 10s"}).encode()
    stored = [(POLICY_FUNCTION, b"f", b'{"retries": 7}'), (CRON_ENTRY_FUNCTION, b"tick|@every 10s", entry)]
    # Another node set f's retries and added an entry: in force here, armed here, and nothing stored here.
    changes = sync_overrides(lifecycle, stored, now=100.0, settle=3.0)
    assert changes == ["policy of f set", "cron entry tick|@every 10s added"]
    assert lifecycle.policy(b"f").retries == 7 and b"tick|@every 10s" in lifecycle.crons
    assert talk.engine.take_store_batch() is None
    assert sync_overrides(lifecycle, stored, now=101.0, settle=3.0) == []  # nothing new: nothing computed again
    # Set here a moment ago: a read from before that change does not undo it, a later one may.
    admin = talk.connect()
    talk.now = 200.0
    assert talk.admin(admin, b"policy set f retries=2") == b"OK\r\n"
    assert talk.admin(admin, b"cron remove tick") == b"OK 1\n"
    assert sync_overrides(lifecycle, stored, now=201.0, settle=3.0) == []
    assert lifecycle.policy(b"f").retries == 2 and b"tick|@every 10s" not in lifecycle.crons
    changes = sync_overrides(lifecycle, stored, now=204.0, settle=3.0)
    assert changes == ["policy of f set", "cron entry tick|@every 10s added"]
    assert lifecycle.policy(b"f").retries == 7
    # Unset and removed elsewhere: the file's settings again, the entry disarmed; a record that does not check (a
    # newer version's key, not JSON) is left out.
    bad = [(POLICY_FUNCTION, b"g", b'{"colour": "red"}'), (POLICY_FUNCTION, b"h", b"not json")]
    assert sync_overrides(lifecycle, bad, now=300.0, settle=3.0) == [
        "policy of f unset",
        "cron entry tick|@every 10s removed",
    ]
    assert lifecycle.policy(b"f").retries == 1 and not lifecycle.overrides.functions
    assert b"tick|@every 10s" not in lifecycle.crons and b"report|0 7 * * *" in lifecycle.crons


def test_outside_a_cluster_a_change_notes_nothing_for_the_sync() -> None:
    talk = talk_with()
    assert talk.admin(talk.connect(), b"policy set f retries=4") == b"OK\r\n"
    lifecycle = talk.engine.lifecycle
    assert lifecycle is not None and lifecycle.overrides_here == {}
