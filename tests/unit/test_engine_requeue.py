"""Lost assignments: worker disconnect, CANT_DO, RESET_ABILITIES (§3.5), retry limits, CAN_DO_TIMEOUT (§3.6)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conversation import NO_JOB, NOOP, NOT_FOUND_RESULT, T0, Conversation, error, raw_output

from geartrain.protocol.packets import PacketType
from geartrain.server.core.config import EngineConfig
from geartrain.server.core.peers import Peer

P = PacketType

Lose = Callable[[Conversation, Peer], None]


def by_disconnect(conv: Conversation, worker: Peer) -> None:
    conv.disconnect(worker)


def by_cant_do(conv: Conversation, worker: Peer) -> None:
    assert conv.ask(worker, P.CANT_DO, b"f") == []


def by_reset_abilities(conv: Conversation, worker: Peer) -> None:
    assert conv.ask(worker, P.RESET_ABILITIES) == []


LOSSES = pytest.mark.parametrize("lose", [by_disconnect, by_cant_do, by_reset_abilities])


@LOSSES
def test_a_lost_job_goes_to_the_tail_with_retries_and_status_reset(conv: Conversation, lose: Lose) -> None:
    client, admin = conv.connect(), conv.connect()
    first = conv.submit(client, b"f", b"", b"first")
    second = conv.submit(client, b"f", b"", b"second")
    worker = conv.worker(b"f")
    assert conv.grab_handle(worker) == first
    conv.send(worker, P.WORK_STATUS, first, b"3", b"10")
    assert conv.replies(client) == [(P.WORK_STATUS, (first, b"3", b"10"))]
    assert conv.ask(client, P.GET_STATUS, first) == [(P.STATUS_RES, (first, b"1", b"1", b"3", b"10"))]

    lose(conv, worker)

    assert conv.replies(client) == []  # the client is not told
    assert conv.ask(client, P.GET_STATUS, first) == [(P.STATUS_RES, (first, b"1", b"0", b"0", b"0"))]
    assert sorted(conv.admin(admin, b"show jobs").split(b"\n")) == sorted(
        [first + b"\t1\t0\t0", second + b"\t0\t0\t0", b".", b""]
    )
    other = conv.worker(b"f")
    assert conv.grab_data(other) == b"second"
    assert conv.grab_data(other) == b"first"  # requeued behind the job that was waiting
    conv.send(other, P.WORK_COMPLETE, first, b"done")
    assert conv.replies(client) == [(P.WORK_COMPLETE, (first, b"done"))]


@LOSSES
def test_the_old_worker_can_no_longer_report(conv: Conversation, lose: Lose) -> None:
    client = conv.connect()
    handle = conv.submit(client, b"f", b"", b"x")
    worker = conv.worker(b"f")
    conv.grab(worker)
    lose(conv, worker)
    if lose is by_disconnect:
        return
    assert conv.ask(worker, P.WORK_COMPLETE, handle, b"late") == [NOT_FOUND_RESULT]
    assert conv.replies(client) == []


def test_requeue_keeps_the_priority(conv: Conversation) -> None:
    client = conv.connect()
    conv.submit(client, b"f", b"", b"high", P.SUBMIT_JOB_HIGH)
    conv.submit(client, b"f", b"", b"normal")
    worker = conv.worker(b"f")
    assert conv.grab_data(worker) == b"high"
    conv.disconnect(worker)
    assert conv.grab_data(conv.worker(b"f")) == b"high"


def test_requeue_wakes_sleepers(conv: Conversation) -> None:
    client = conv.connect()
    conv.submit(client, b"f", b"", b"x")
    busy = conv.worker(b"f")
    conv.grab(busy)
    sleeper = conv.worker(b"f")
    assert conv.ask(sleeper, P.PRE_SLEEP) == []
    conv.disconnect(busy)
    assert conv.replies(sleeper) == [NOOP]


def test_cant_do_of_another_function_keeps_the_job(conv: Conversation) -> None:
    client = conv.connect()
    handle = conv.submit(client, b"f", b"", b"x")
    worker = conv.worker(b"f", b"g")
    conv.grab(worker)
    assert conv.ask(worker, P.CANT_DO, b"g") == []
    assert conv.ask(worker, P.CANT_DO, b"nosuch") == []
    assert conv.ask(worker, P.WORK_COMPLETE, handle, b"r") == []
    assert conv.replies(client) == [(P.WORK_COMPLETE, (handle, b"r"))]


def test_cant_do_removes_every_registration(conv: Conversation) -> None:
    client = conv.connect()
    worker = conv.worker(b"f", b"f")
    conv.send(worker, P.CANT_DO, b"f")
    conv.submit(client, b"f", b"", b"x")
    assert conv.grab(worker) == NO_JOB


def test_retries_are_unlimited_by_default(conv: Conversation) -> None:
    client, admin = conv.connect(), conv.connect()
    handle = conv.submit(client, b"f", b"", b"x")
    for retries in (1, 2, 3):
        worker = conv.worker(b"f")
        assert conv.grab_handle(worker) == handle
        conv.disconnect(worker)
        assert conv.admin(admin, b"show jobs") == handle + b"\t%d\t0\t0\n.\n" % retries
    assert conv.replies(client) == []


@pytest.mark.parametrize("lose", [by_disconnect, by_cant_do])
def test_job_retries_two_fails_the_job_after_the_second_lost_assignment(lose: Lose) -> None:
    conv = Conversation(EngineConfig(job_retries=2))
    c1, c2 = conv.connect(), conv.connect()
    handle = conv.submit(c1, b"f", b"u", b"x")
    conv.submit(c2, b"f", b"u", b"x")
    first = conv.worker(b"f")
    assert conv.grab_handle(first) == handle
    lose(conv, first)
    assert conv.replies(c1) == []
    second = conv.worker(b"f")
    assert conv.grab_handle(second) == handle
    lose(conv, second)
    for client in (c1, c2):
        # Exactly the handle, no NUL after it: the size field is the handle's length.
        assert raw_output(client) == b"\0RES\0\0\0\x0e" + len(handle).to_bytes(4, "big") + handle
    assert handle not in conv.engine.jobs
    assert conv.ask(c1, P.GET_STATUS, handle) == [(P.STATUS_RES, (handle, b"0", b"0", b"0", b"0"))]
    assert conv.grab(conv.worker(b"f")) == NO_JOB
    # The unique is free again.
    assert conv.submit(c1, b"f", b"u", b"x") != handle


def test_job_retries_drop_a_background_job_silently() -> None:
    conv = Conversation(EngineConfig(job_retries=1))
    client = conv.connect()
    handle = conv.submit(client, b"f", b"", b"x", P.SUBMIT_JOB_BG)
    worker = conv.worker(b"f")
    conv.grab(worker)
    conv.disconnect(worker)
    assert conv.replies(client) == []
    assert conv.engine.jobs == {}
    assert handle not in conv.engine.jobs


# ---------------------------------------------------------------------------------------------------- CAN_DO_TIMEOUT


def test_can_do_timeout_requeues_and_the_late_result_is_not_found(conv: Conversation) -> None:
    client, admin = conv.connect(), conv.connect()
    worker = conv.connect()
    assert conv.ask(worker, P.CAN_DO_TIMEOUT, b"f", b"5000") == []
    handle = conv.submit(client, b"f", b"", b"x")
    assert conv.engine.next_deadline() is None
    assert conv.grab_handle(worker) == handle
    assert conv.engine.next_deadline() == T0 + 5.0

    conv.tick(T0 + 4.999)
    assert conv.ask(client, P.GET_STATUS, handle) == [(P.STATUS_RES, (handle, b"1", b"1", b"0", b"0"))]

    conv.tick(T0 + 5.0)
    assert conv.replies(worker) == []  # neither worker nor client is told
    assert conv.replies(client) == []
    assert conv.ask(client, P.GET_STATUS, handle) == [(P.STATUS_RES, (handle, b"1", b"0", b"0", b"0"))]
    assert conv.admin(admin, b"show jobs") == handle + b"\t1\t0\t0\n.\n"
    assert conv.ask(worker, P.WORK_COMPLETE, handle, b"late") == [NOT_FOUND_RESULT]
    assert conv.replies(client) == []

    other = conv.worker(b"f")
    assert conv.grab_handle(other) == handle
    conv.send(other, P.WORK_COMPLETE, handle, b"on time")
    assert conv.replies(client) == [(P.WORK_COMPLETE, (handle, b"on time"))]


def test_can_do_timeout_below_a_second_is_raised_to_a_second(conv: Conversation) -> None:
    client, worker = conv.connect(), conv.connect()
    conv.send(worker, P.CAN_DO_TIMEOUT, b"f", b"10")
    conv.submit(client, b"f", b"", b"x")
    conv.grab(worker)
    assert conv.engine.next_deadline() == T0 + 1.0


@pytest.mark.parametrize("timeout", [b"0", b"-5", b"abc", b""])
def test_can_do_timeout_without_a_positive_number_means_no_timeout(conv: Conversation, timeout: bytes) -> None:
    client, worker = conv.connect(), conv.connect()
    assert conv.ask(worker, P.CAN_DO_TIMEOUT, b"f", timeout) == []
    conv.submit(client, b"f", b"", b"x")
    assert conv.grab(worker)[0] == P.JOB_ASSIGN
    assert conv.engine.next_deadline() is None


def test_can_do_timeout_with_an_absurd_field_is_an_error(conv: Conversation) -> None:
    worker = conv.connect()
    assert conv.ask(worker, P.CAN_DO_TIMEOUT, b"f", b"1" * 21) == [
        error("INVALID_ARGUMENT", "CAN_DO_TIMEOUT needs a timeout in milliseconds")
    ]


def test_a_completed_job_does_not_time_out(conv: Conversation) -> None:
    client, worker = conv.connect(), conv.connect()
    conv.send(worker, P.CAN_DO_TIMEOUT, b"f", b"2000")
    handle = conv.submit(client, b"f", b"", b"x")
    conv.grab(worker)
    conv.send(worker, P.WORK_COMPLETE, handle, b"r")
    assert conv.replies(client) == [(P.WORK_COMPLETE, (handle, b"r"))]
    conv.tick(T0 + 10)
    assert conv.engine.jobs == {}
    assert conv.replies(client) == []


def test_timeouts_count_as_retries() -> None:
    conv = Conversation(EngineConfig(job_retries=2))
    client, worker = conv.connect(), conv.connect()
    conv.send(worker, P.CAN_DO_TIMEOUT, b"f", b"1000")
    handle = conv.submit(client, b"f", b"", b"x")
    assert conv.grab_handle(worker) == handle
    conv.tick(conv.now + 1)
    assert conv.grab_handle(worker) == handle
    conv.tick(conv.now + 1)
    assert conv.replies(client) == [(P.WORK_FAIL, (handle,))]
    assert conv.engine.jobs == {}
    assert conv.engine.next_deadline() is None
