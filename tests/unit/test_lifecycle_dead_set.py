"""The dead set's bounds (issue 15): ``dead_max`` dead jobs per function, the oldest going first, and none older
than ``dead_retention``, which the engine's timer enforces without waiting for another job to die; both apply to
replayed dead records and at once after a reload."""

from __future__ import annotations

from conversation import Conversation, P

from geartrain.lifecycle.policy import parse_policies
from geartrain.server.core.config import EngineConfig
from geartrain.server.core.lifecycle import DEAD_PREFIX, Lifecycle, dead_from_record
from geartrain.server.core.records import Removal, StoredJob

POLICY = '[functions.f]\nretries = 0\ndead_retention = "60s"\ndead_max = 2\n'


def talk_with(policy: str = POLICY) -> Conversation:
    talk = Conversation(EngineConfig(handle_prefix=b"H:test", persistent=True))
    talk.engine.lifecycle = Lifecycle(talk.engine, parse_policies(policy))
    return talk


def lifecycle_of(talk: Conversation) -> Lifecycle:
    lifecycle = talk.engine.lifecycle
    assert lifecycle is not None
    return lifecycle


def bury(talk: Conversation, unique: bytes) -> tuple[bytes, list[StoredJob], list[Removal]]:
    """Submit a background job of ``f`` and fail it (no retries: it is dead); returns its handle and the store
    batch of its death (committed)."""
    client, worker = talk.connect(), talk.worker(b"f")
    talk.send(client, P.SUBMIT_JOB_BG, b"f", unique, b"data")
    batch = talk.engine.take_store_batch()
    assert batch is not None
    talk.engine.store_committed(batch, talk.now)
    handle = talk.grab_handle(worker)
    talk.send(worker, P.WORK_FAIL, handle)
    batch = talk.engine.take_store_batch()
    assert batch is not None
    talk.engine.store_committed(batch, talk.now)
    return handle, list(batch.adds), list(batch.removes)


def test_beyond_dead_max_the_oldest_dead_job_and_its_record_go() -> None:
    talk = talk_with()
    first, _, _ = bury(talk, b"u1")
    talk.now += 1
    second, _, _ = bury(talk, b"u2")
    talk.now += 1
    third, _, removes = bury(talk, b"u3")
    assert list(lifecycle_of(talk).dead) == [second, third]
    assert Removal(b"u1", DEAD_PREFIX + b"f") in removes  # in the batch that stores the third
    assert first not in talk.admin(talk.connect(), b"dead list")


def test_a_dead_job_past_its_retention_goes_when_its_time_comes_without_another_failure() -> None:
    talk = talk_with()
    handle, _, _ = bury(talk, b"u1")
    died = talk.now
    assert talk.engine.next_deadline() == died + 60  # the timer comes back for it
    talk.tick(died + 59.9)
    assert list(lifecycle_of(talk).dead) == [handle] and talk.engine.take_store_batch() is None
    talk.tick(died + 60)
    assert lifecycle_of(talk).dead == {}
    batch = talk.engine.take_store_batch()
    assert batch is not None and batch.removes == [Removal(b"u1", DEAD_PREFIX + b"f")]
    assert talk.engine.next_deadline() is None  # nothing left to come back for


def test_each_dead_job_goes_at_its_own_time() -> None:
    talk = talk_with('[functions.f]\nretries = 0\ndead_retention = "60s"\n')
    first, _, _ = bury(talk, b"u1")
    talk.tick(talk.now + 30)
    second, _, _ = bury(talk, b"u2")
    talk.tick(talk.now + 30)
    assert list(lifecycle_of(talk).dead) == [second]
    talk.tick(talk.now + 29.9)
    assert list(lifecycle_of(talk).dead) == [second]
    talk.tick(talk.now + 0.1)
    assert lifecycle_of(talk).dead == {}
    assert first != second


def test_replayed_dead_records_past_the_policies_in_force_go_at_the_first_turn_of_the_timer() -> None:
    talk = talk_with('[functions.f]\nretries = 0\ndead_retention = "1h"\n')
    records = []
    for n in range(4):
        _, adds, _ = bury(talk, b"u%d" % n)
        records += [record for record in adds if record.function == DEAD_PREFIX + b"f"]
        talk.now += 10
    # Restarted with dead_max = 2 and a 60 s retention, 30 s after the last died: u0 is 60 s old. The store gives
    # the records back newest first.
    again = talk_with()
    again.now = talk.now + 20
    for record in reversed(records):
        again.engine.restore_record(record, again.now)
    again.engine.replay_done(again.now)
    lifecycle = lifecycle_of(again)
    assert len(lifecycle.dead) == 4 and again.engine.next_deadline() == 0.0
    again.tick(again.now)
    assert sorted(dead.unique for dead in lifecycle.dead.values()) == [b"u2", b"u3"]  # the newest two
    batch = again.engine.take_store_batch()
    assert batch is not None and sorted(removal.key for removal in batch.removes) == [b"u0", b"u1"]
    assert again.engine.next_deadline() == records_died(records, b"u2") + 60
    again.tick(again.now + 20)
    assert [dead.unique for dead in lifecycle.dead.values()] == [b"u3"]


def records_died(records: list[StoredJob], unique: bytes) -> float:
    for record in records:
        dead = dead_from_record(record)
        if dead is not None and dead.unique == unique:
            return dead.last_failed
    raise AssertionError(unique)


def test_a_reload_with_a_shorter_retention_or_a_lower_limit_prunes_at_once() -> None:
    talk = talk_with("[functions.f]\nretries = 0\n")  # the defaults: 7 days, 10 000
    for n in range(3):
        bury(talk, b"u%d" % n)
        talk.now += 100
    lifecycle = lifecycle_of(talk)
    assert len(lifecycle.dead) == 3
    lifecycle.reload(parse_policies("[functions.f]\nretries = 0\ndead_max = 2\n"), talk.now)
    assert sorted(dead.unique for dead in lifecycle.dead.values()) == [b"u1", b"u2"]
    lifecycle.reload(parse_policies('[functions.f]\nretries = 0\ndead_retention = "150s"\n'), talk.now)
    assert [dead.unique for dead in lifecycle.dead.values()] == [b"u2"]  # 100 s old; u1 was 200 s
    batch = talk.engine.take_store_batch()
    assert batch is not None
    assert sorted(removal.key for removal in batch.removes) == [b"u0", b"u1"]
