"""The geartrain-meta option in the engine: metadata in front of a submit's data, kept with the job (and stored
beside it), and handed to workers that asked for it with their attempt; a retried job's backoff survives a replay."""

from __future__ import annotations

import json

import pytest
from conversation import NO_JOB, Conversation, P, error

from geartrain.lifecycle.policy import parse_policies
from geartrain.protocol.meta import MetaError, format_meta, join_meta, parse_meta, split_meta, valid_traceparent
from geartrain.server.core.config import EngineConfig
from geartrain.server.core.lifecycle import Lifecycle
from geartrain.server.core.records import Removal
from geartrain.server.core.sides import SIDE_PREFIX, side_from_record
from geartrain.server.core.snapshot import jobs_view

TRACE = b"traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
POLICY = '[functions.f]\nretries = 2\nbackoff = "fixed"\nbackoff_base = "10s"\n'


def talk_with(persistent: bool = False, policy: str | None = None) -> Conversation:
    talk = Conversation(EngineConfig(handle_prefix=b"H:test", persistent=persistent))
    if policy is not None:
        talk.engine.lifecycle = Lifecycle(talk.engine, parse_policies(policy))
    return talk


def with_option(talk: Conversation, peer: object) -> None:
    assert talk.ask(peer, P.OPTION_REQ, b"geartrain-meta") == [(P.OPTION_RES, (b"geartrain-meta",))]  # type: ignore[arg-type]


def commit(talk: Conversation) -> list[object]:
    batch = talk.engine.take_store_batch()
    assert batch is not None
    talk.engine.store_committed(batch, talk.now)
    return [batch.adds, batch.removes]


def test_the_block_format_round_trips_and_refuses_what_it_cannot_read() -> None:
    meta = format_meta({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "k": "v w"})
    assert split_meta(join_meta(meta, b"payload:1")) == (meta, b"payload:1")
    assert parse_meta(meta)["k"] == "v w"
    assert split_meta(b"0:") == (b"", b"")
    for bad in (b"", b"x:", b":abc", b"5:ab", b"99999:x", b"3:a=\n", b"3:A=b", b"3:ab\n"):
        with pytest.raises(MetaError):
            split_meta(bad)
    assert valid_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    assert not valid_traceparent("00-" + "0" * 32 + "-b7ad6b7169203331-01")
    assert not valid_traceparent("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")


def test_plain_workers_see_the_payload_and_workers_with_the_option_see_attempt_and_metadata() -> None:
    talk = talk_with()
    client, plain, asking = talk.connect(), talk.worker(b"f"), talk.worker(b"f")
    with_option(talk, client)
    with_option(talk, asking)
    first = talk.submit(client, b"f", b"", join_meta(TRACE, b"one"), P.SUBMIT_JOB_BG)
    second = talk.submit(client, b"f", b"u", join_meta(b"", b"two"), P.SUBMIT_JOB_BG)
    assert talk.grab(plain) == (P.JOB_ASSIGN, (first, b"f", b"one"))
    assert talk.grab(asking, P.GRAB_JOB_UNIQ) == (P.JOB_ASSIGN_UNIQ, (second, b"f", b"u", b"9:attempt=1two"))
    [listed] = [job for job in jobs_view(talk.engine, talk.now, limit=10)["jobs"] if job["handle"] == first.decode()]
    assert listed["meta"] == {"traceparent": TRACE.decode().partition("=")[2]}
    # A worker that leaves with a job: the job's next run is its second attempt.
    talk.disconnect(plain)
    assert talk.grab(asking) == (P.JOB_ASSIGN, (first, b"f", join_meta(b"attempt=2\n" + TRACE, b"one")))


def test_a_malformed_block_is_an_error_and_takes_nothing() -> None:
    talk = talk_with()
    client = talk.connect()
    with_option(talk, client)
    assert talk.ask(client, P.SUBMIT_JOB_BG, b"f", b"", b"12:short") == [
        error("INVALID_ARGUMENT", "geartrain-meta: meta block of 12 bytes but only 5 follow")
    ]
    assert talk.engine.jobs == {}
    assert talk.submit(client, b"f", b"", b"0:fine", P.SUBMIT_JOB_BG)  # the connection goes on


def test_epoch_and_reduce_submits_carry_metadata_and_a_joined_job_takes_the_first_block() -> None:
    talk = talk_with()
    client, other, worker = talk.connect(), talk.connect(), talk.worker(b"f")
    with_option(talk, client)
    with_option(talk, worker)
    talk.send(other, P.SUBMIT_JOB_BG, b"f", b"u", b"data")  # a plain client's job: no metadata
    assert talk.submit(client, b"f", b"u", join_meta(TRACE, b"data"), P.SUBMIT_JOB_BG)  # joins it, gives it some
    assert talk.grab(worker) == (
        P.JOB_ASSIGN,
        (talk.engine.jobs[b"H:test:1"].handle, b"f", join_meta(b"attempt=1\n" + TRACE, b"data")),
    )
    talk.send(client, P.SUBMIT_JOB_EPOCH, b"f", b"e", b"1", join_meta(b"k=v", b"later"))
    talk.send(client, P.SUBMIT_REDUCE_JOB_BACKGROUND, b"f", b"r", b"red", b"", join_meta(b"k=w", b"reduce"))
    metas = sorted(job.meta for job in talk.engine.jobs.values())
    assert metas == [b"k=v", b"k=w", TRACE]


def test_metadata_is_a_side_record_stored_with_the_job_and_deleted_with_it() -> None:
    talk = talk_with(persistent=True)
    client, worker = talk.connect(), talk.worker(b"f")
    with_option(talk, client)
    talk.send(client, P.SUBMIT_JOB_BG, b"f", b"u", join_meta(TRACE, b"data"))
    [adds, _] = commit(talk)
    assert [(r.key, r.function) for r in adds] == [(b"u", b"f"), (b"u", SIDE_PREFIX + b"f")]  # type: ignore[attr-defined]
    side = side_from_record(adds[1])  # type: ignore[index]
    assert side is not None and side.meta == TRACE and side.attempts == 0
    # Replayed (sides may come before their job): the job has its metadata again.
    again = talk_with(persistent=True)
    for record in reversed(adds):  # type: ignore[call-overload]
        again.engine.restore_record(record, again.now)
    again.engine.replay_done(again.now)
    [job] = again.engine.jobs.values()
    assert job.meta == TRACE and job in again.engine.sided
    handle = talk.grab_handle(worker)
    talk.send(worker, P.WORK_COMPLETE, handle, b"ok")
    [_, removes] = commit(talk)
    assert removes == [Removal(b"u", b"f"), Removal(b"u", SIDE_PREFIX + b"f")]


def test_a_job_waiting_out_its_backoff_waits_on_after_a_replay_and_counts_on() -> None:
    talk = talk_with(persistent=True, policy=POLICY)
    client, worker = talk.connect(), talk.worker(b"f")
    talk.send(client, P.SUBMIT_JOB_BG, b"f", b"u", b"data")
    [adds, _] = commit(talk)
    handle = talk.grab_handle(worker)
    talk.send(worker, P.WORK_FAIL, handle)
    [sides, _] = commit(talk)
    [side_record] = sides  # type: ignore[misc]
    side = side_from_record(side_record)
    assert side is not None and (side.attempts, side.retry_at) == (1, talk.now + 10)
    # kill -9 four seconds later: a new engine replays the job and its side record.
    again = talk_with(persistent=True, policy=POLICY)
    again.now = talk.now + 4
    for record in [*adds, side_record]:  # type: ignore[misc]
        again.engine.restore_record(record, again.now)
    again.engine.replay_done(again.now)
    worker = again.worker(b"f")
    assert again.grab(worker) == NO_JOB  # six seconds of its backoff are left
    again.tick(again.now + 6.1)
    handle = again.grab_handle(worker)
    [job] = again.engine.jobs.values()
    lifecycle = again.engine.lifecycle
    assert lifecycle is not None and lifecycle.attempts(job) == 1
    assert json.loads(json.dumps(jobs_view(again.engine, again.now, limit=5)["jobs"][0]))["attempts"] == 2
    again.send(worker, P.WORK_COMPLETE, handle, b"ok")
    [_, removes] = commit(again)
    assert Removal(b"u", SIDE_PREFIX + b"f") in removes  # type: ignore[operator]


def test_an_orphan_side_record_is_deleted_after_the_replay() -> None:
    talk = talk_with(persistent=True)
    orphan = SIDE_PREFIX + b"f"
    from geartrain.server.core.sides import Side

    talk.engine.restore_record(Side(b"k=v").record(b"gone", b"f", b"gone"), talk.now)
    assert orphan
    talk.engine.replay_done(talk.now)
    [_, removes] = commit(talk)
    assert removes == [Removal(b"gone", orphan)]
