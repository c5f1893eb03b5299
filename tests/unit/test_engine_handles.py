"""Job handles (reference §3.1) and unique-id limits (§1.2, §1.3)."""

from __future__ import annotations

from conversation import Conversation, error

from geartrain.protocol.packets import PacketType
from geartrain.server.core.config import EngineConfig

P = PacketType


def test_handles_are_prefix_colon_counter_from_one(conv: Conversation) -> None:
    client = conv.connect()
    assert conv.submit(client, b"f1", b"u1", b"data") == b"H:test:1"
    assert conv.submit(client, b"f2", b"", b"x", P.SUBMIT_JOB_BG) == b"H:test:2"
    assert conv.submit(client, b"f1", b"", b"y", P.SUBMIT_JOB_HIGH) == b"H:test:3"
    assert sorted(conv.engine.jobs) == [b"H:test:1", b"H:test:2", b"H:test:3"]


def test_job_handle_prefix() -> None:
    conv = Conversation(EngineConfig(handle_prefix=b"JH"))
    client = conv.connect()
    assert conv.ask(client, P.SUBMIT_JOB, b"f", b"", b"x") == [(P.JOB_CREATED, (b"JH:1",))]
    assert conv.ask(client, P.SUBMIT_JOB_LOW_BG, b"f", b"", b"x") == [(P.JOB_CREATED, (b"JH:2",))]


def test_job_created_exact_bytes() -> None:
    conv = Conversation(EngineConfig(handle_prefix=b"H:vm"))
    client = conv.connect()
    conv.send(client, P.SUBMIT_JOB, b"f1", b"u1", b"data")
    assert client.outbox == [b"\0RES\0\0\0\x08\0\0\0\x06H:vm:1"]


def test_coalesced_submits_take_no_number(conv: Conversation) -> None:
    first, second = conv.connect(), conv.connect()
    assert conv.submit(first, b"f", b"u", b"a") == b"H:test:1"
    assert conv.submit(second, b"f", b"u", b"b") == b"H:test:1"
    assert conv.submit(second, b"f", b"u", b"c", P.SUBMIT_JOB_BG) == b"H:test:1"
    assert conv.submit(first, b"f", b"v", b"d") == b"H:test:2"
    assert len(conv.engine.jobs) == 2


def test_counter_keeps_counting_after_jobs_end(conv: Conversation) -> None:
    client, worker = conv.connect(), conv.worker(b"f")
    assert conv.submit(client, b"f", b"u", b"a") == b"H:test:1"
    conv.grab(worker)
    conv.send(worker, P.WORK_COMPLETE, b"H:test:1", b"done")
    assert conv.replies(client) == [(P.WORK_COMPLETE, (b"H:test:1", b"done"))]
    assert conv.submit(client, b"f", b"u", b"a") == b"H:test:2"  # same unique, new job, new number


def test_a_64_byte_unique_is_kept_whole(conv: Conversation) -> None:
    unique = bytes(range(65, 65 + 64))
    client, worker = conv.connect(), conv.worker(b"f")
    handle = conv.submit(client, b"f", unique, b"data")
    assert conv.grab(worker, P.GRAB_JOB_UNIQ) == (P.JOB_ASSIGN_UNIQ, (handle, b"f", unique, b"data"))
    # ... and it is the key for coalescing and GET_STATUS_UNIQUE (gearmand would keep only 63 bytes).
    assert conv.submit(conv.connect(), b"f", unique, b"other") == handle
    assert conv.ask(client, P.GET_STATUS_UNIQUE, unique) == [
        (P.STATUS_RES_UNIQUE, (unique, b"1", b"1", b"0", b"0", b"2"))
    ]


def test_a_65_byte_unique_is_refused_and_takes_no_number(conv: Conversation) -> None:
    client = conv.connect()
    too_long = error("ARGUMENT_TOO_LARGE", "Unique value too large")
    for ptype in (P.SUBMIT_JOB, P.SUBMIT_JOB_BG, P.SUBMIT_JOB_HIGH, P.SUBMIT_JOB_LOW_BG):
        assert conv.ask(client, ptype, b"f", b"u" * 65, b"data") == [too_long]
    assert conv.ask(client, P.SUBMIT_JOB_EPOCH, b"f", b"u" * 65, b"0", b"data") == [too_long]
    assert conv.ask(client, P.SUBMIT_REDUCE_JOB, b"f", b"u" * 65, b"r", b"", b"data") == [too_long]
    assert conv.engine.jobs == {}
    assert conv.submit(client, b"f", b"u" * 64, b"data") == b"H:test:1"


def test_the_reduce_submit_checks_the_unique_not_the_reducer(conv: Conversation) -> None:
    client = conv.connect()
    # gearmand 1.1.20 measures the reducer here (a bug); a long reducer is fine, a long unique is not.
    assert conv.ask(client, P.SUBMIT_REDUCE_JOB, b"f", b"v", b"r" * 100, b"", b"data") == [
        (P.JOB_CREATED, (b"H:test:1",))
    ]
