"""Which job a GRAB gets (reference §3.2), and how it is handed out (JOB_ASSIGN, _UNIQ, _ALL; §3.10)."""

from __future__ import annotations

import pytest
from conversation import NO_JOB, Conversation

from geartrain.protocol.packets import PacketType
from geartrain.server.core.config import EngineConfig

P = PacketType


def queue_reference_example(conv: Conversation) -> None:
    """§3.2: fa gets low, norm, high, high2; fb gets low, norm, high."""
    client = conv.connect()
    for function, label, ptype in [
        (b"fa", b"low", P.SUBMIT_JOB_LOW_BG),
        (b"fa", b"norm", P.SUBMIT_JOB_BG),
        (b"fa", b"high", P.SUBMIT_JOB_HIGH_BG),
        (b"fa", b"high2", P.SUBMIT_JOB_HIGH_BG),
        (b"fb", b"low", P.SUBMIT_JOB_LOW_BG),
        (b"fb", b"norm", P.SUBMIT_JOB_BG),
        (b"fb", b"high", P.SUBMIT_JOB_HIGH_BG),
    ]:
        conv.submit(client, function, b"", function + b"/" + label, ptype)


def drain(conv: Conversation, worker_functions: tuple[bytes, ...]) -> list[bytes]:
    worker = conv.worker(*worker_functions)
    order = []
    while (data := conv.grab_data(worker)) is not None:
        order.append(data)
    return order


def test_priority_is_per_function_newest_can_do_first(conv: Conversation) -> None:
    queue_reference_example(conv)
    assert drain(conv, (b"fa", b"fb")) == [
        b"fb/high",
        b"fb/norm",
        b"fb/low",
        b"fa/high",
        b"fa/high2",
        b"fa/norm",
        b"fa/low",
    ]


def test_round_robin_moves_the_serving_function_to_the_back() -> None:
    conv = Conversation(EngineConfig(round_robin=True))
    queue_reference_example(conv)
    assert drain(conv, (b"fa", b"fb")) == [
        b"fb/high",
        b"fa/high",
        b"fb/norm",
        b"fa/high2",
        b"fb/low",
        b"fa/norm",
        b"fa/low",
    ]


def test_round_robin_gearmand_test_order() -> None:
    # tests/round_robin.cc: jobs 0-9 alternate between two queues; the worker registered q0 then q1.
    conv = Conversation(EngineConfig(round_robin=True))
    client = conv.connect()
    for number in range(10):
        conv.submit(client, b"q%d" % (number % 2), b"", str(number).encode(), P.SUBMIT_JOB_BG)
    assert b"".join(drain(conv, (b"q0", b"q1"))) == b"1032547698"


def test_global_priority_serves_every_high_job_first() -> None:
    conv = Conversation(EngineConfig(global_priority=True))
    queue_reference_example(conv)
    assert drain(conv, (b"fa", b"fb")) == [
        b"fb/high",
        b"fa/high",
        b"fa/high2",
        b"fb/norm",
        b"fa/norm",
        b"fb/low",
        b"fa/low",
    ]


def test_fifo_within_a_priority(conv: Conversation) -> None:
    client = conv.connect()
    for number in range(20):
        conv.submit(client, b"f", b"", b"%d" % number, P.SUBMIT_JOB_BG)
    assert drain(conv, (b"f",)) == [b"%d" % number for number in range(20)]


def test_a_worker_sees_only_its_functions(conv: Conversation) -> None:
    client = conv.connect()
    conv.submit(client, b"other", b"", b"x", P.SUBMIT_JOB_BG)
    assert drain(conv, (b"f",)) == []
    assert drain(conv, ()) == []  # no CAN_DO at all: NO_JOB
    assert drain(conv, (b"other",)) == [b"x"]


def test_a_worker_may_hold_several_jobs(conv: Conversation) -> None:
    client, worker = conv.connect(), conv.worker(b"f")
    first = conv.submit(client, b"f", b"", b"1")
    second = conv.submit(client, b"f", b"", b"2")
    assert conv.grab(worker) == (P.JOB_ASSIGN, (first, b"f", b"1"))
    assert conv.grab(worker) == (P.JOB_ASSIGN, (second, b"f", b"2"))
    assert conv.grab(worker) == NO_JOB
    assert conv.ask(worker, P.WORK_COMPLETE, second, b"r2") == []
    assert conv.ask(worker, P.WORK_COMPLETE, first, b"r1") == []
    assert conv.replies(client) == [(P.WORK_COMPLETE, (second, b"r2")), (P.WORK_COMPLETE, (first, b"r1"))]


def test_duplicate_can_do_is_harmless_for_grabbing(conv: Conversation) -> None:
    client = conv.connect()
    conv.submit(client, b"f", b"", b"x", P.SUBMIT_JOB_BG)
    assert drain(conv, (b"f", b"f")) == [b"x"]


# ---------------------------------------------------------------------------------------------------- reply types


@pytest.fixture
def plain_and_reduce(conv: Conversation) -> tuple[bytes, bytes]:
    client = conv.connect()
    plain = conv.submit(client, b"f", b"u1", b"plain-data")
    conv.send(client, P.SUBMIT_REDUCE_JOB, b"f", b"u2", b"reducer", b"", b"reduce-data")
    [(kind, (reduce,))] = conv.replies(client)
    assert kind == P.JOB_CREATED
    return plain, reduce


def test_grab_job_gives_job_assign(conv: Conversation, plain_and_reduce: tuple[bytes, bytes]) -> None:
    plain, reduce = plain_and_reduce
    worker = conv.worker(b"f")
    assert conv.grab(worker, P.GRAB_JOB) == (P.JOB_ASSIGN, (plain, b"f", b"plain-data"))
    assert conv.grab(worker, P.GRAB_JOB) == (P.JOB_ASSIGN, (reduce, b"f", b"reduce-data"))
    assert conv.grab(worker, P.GRAB_JOB) == NO_JOB


def test_grab_job_uniq_gives_job_assign_uniq(conv: Conversation, plain_and_reduce: tuple[bytes, bytes]) -> None:
    plain, reduce = plain_and_reduce
    worker = conv.worker(b"f")
    assert conv.grab(worker, P.GRAB_JOB_UNIQ) == (P.JOB_ASSIGN_UNIQ, (plain, b"f", b"u1", b"plain-data"))
    assert conv.grab(worker, P.GRAB_JOB_UNIQ) == (P.JOB_ASSIGN_UNIQ, (reduce, b"f", b"u2", b"reduce-data"))
    assert conv.grab(worker, P.GRAB_JOB_UNIQ) == NO_JOB


def test_grab_job_all_gives_job_assign_all_only_for_reduce_jobs(
    conv: Conversation, plain_and_reduce: tuple[bytes, bytes]
) -> None:
    plain, reduce = plain_and_reduce
    worker = conv.worker(b"f")
    assert conv.grab(worker, P.GRAB_JOB_ALL) == (P.JOB_ASSIGN_UNIQ, (plain, b"f", b"u1", b"plain-data"))
    assert conv.grab(worker, P.GRAB_JOB_ALL) == (
        P.JOB_ASSIGN_ALL,
        (reduce, b"f", b"u2", b"reducer", b"reduce-data"),
    )
    assert conv.grab(worker, P.GRAB_JOB_ALL) == NO_JOB


def test_reduce_submit_in_the_three_nul_form(conv: Conversation) -> None:
    client, worker = conv.connect(), conv.worker(b"f")
    conv.send(client, P.SUBMIT_REDUCE_JOB_BACKGROUND, b"f", b"u", b"red", b"data")
    [(kind, (handle,))] = conv.replies(client)
    assert kind == P.JOB_CREATED
    assert conv.grab(worker, P.GRAB_JOB_ALL) == (P.JOB_ASSIGN_ALL, (handle, b"f", b"u", b"red", b"data"))


def test_grab_reply_payload_keeps_nuls_and_every_byte(conv: Conversation) -> None:
    payload = bytes(range(256))
    client, worker = conv.connect(), conv.worker(b"f")
    handle = conv.submit(client, b"f", b"", payload)
    assert conv.grab(worker) == (P.JOB_ASSIGN, (handle, b"f", payload))
