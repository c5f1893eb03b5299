"""Epoch jobs (reference §3.9): not runnable before their time, and a timer wakes workers when they come due."""

from __future__ import annotations

from conversation import NO_JOB, NOOP, T0, Conversation, error

from geartrain.protocol.packets import PacketType

P = PacketType

DUE = int(T0) + 100


def submit_epoch(conv: Conversation, when: bytes, data: bytes = b"later", unique: bytes = b"") -> bytes:
    client = conv.connect()
    replies = conv.ask(client, P.SUBMIT_JOB_EPOCH, b"f", unique, when, data)
    assert len(replies) == 1 and replies[0][0] == P.JOB_CREATED, replies
    return replies[0][1][0]


def test_a_future_epoch_job_waits_and_the_timer_wakes_a_sleeping_worker(conv: Conversation) -> None:
    handle = submit_epoch(conv, str(DUE).encode())
    worker = conv.worker(b"f")
    assert conv.grab(worker) == NO_JOB
    assert conv.engine.next_deadline() == DUE
    assert conv.ask(worker, P.PRE_SLEEP) == []  # nothing runnable yet: no NOOP

    conv.tick(DUE - 1)
    assert conv.replies(worker) == []
    assert conv.engine.next_deadline() == DUE

    conv.tick(DUE)  # gearmand 1.1.20 never wakes the worker here (#101); we do
    assert conv.replies(worker) == [NOOP]
    assert conv.engine.next_deadline() is None
    assert conv.grab(worker) == (P.JOB_ASSIGN, (handle, b"f", b"later"))


def test_an_epoch_job_is_counted_in_status_while_it_waits(conv: Conversation) -> None:
    submit_epoch(conv, str(DUE).encode())
    admin = conv.connect()
    assert conv.admin(admin, b"status") == b"f\t1\t0\t0\n.\n"
    assert conv.admin(admin, b"prioritystatus") == b"f\t0\t1\t0\t0\n.\n"


def test_a_future_epoch_job_does_not_block_other_jobs(conv: Conversation) -> None:
    submit_epoch(conv, str(DUE).encode())
    client, worker = conv.connect(), conv.worker(b"f")
    now_handle = conv.submit(client, b"f", b"", b"now", P.SUBMIT_JOB_LOW_BG)
    assert conv.grab(worker) == (P.JOB_ASSIGN, (now_handle, b"f", b"now"))
    assert conv.grab(worker) == NO_JOB


def test_a_past_epoch_runs_at_once(conv: Conversation) -> None:
    worker = conv.worker(b"f")
    assert conv.ask(worker, P.PRE_SLEEP) == []
    handle = submit_epoch(conv, str(int(T0) - 3600).encode())
    assert conv.replies(worker) == [NOOP]
    assert conv.engine.next_deadline() is None
    assert conv.grab(worker) == (P.JOB_ASSIGN, (handle, b"f", b"later"))


def test_an_epoch_of_now_runs_at_once(conv: Conversation) -> None:
    handle = submit_epoch(conv, str(int(T0)).encode())
    assert conv.grab(conv.worker(b"f")) == (P.JOB_ASSIGN, (handle, b"f", b"later"))


def test_a_non_numeric_epoch_is_zero_and_runs_at_once(conv: Conversation) -> None:
    handle = submit_epoch(conv, b"soon")
    assert conv.grab(conv.worker(b"f")) == (P.JOB_ASSIGN, (handle, b"f", b"later"))


def test_an_overflowing_epoch_is_refused(conv: Conversation) -> None:
    client = conv.connect()
    assert conv.ask(client, P.SUBMIT_JOB_EPOCH, b"f", b"", b"9" * 30, b"x") == [
        error("INVALID_ARGUMENT", "SUBMIT_JOB_EPOCH time out of range")
    ]
    assert conv.engine.jobs == {}


def test_epoch_jobs_come_due_in_time_order(conv: Conversation) -> None:
    submit_epoch(conv, str(DUE + 20).encode(), b"third")
    submit_epoch(conv, str(DUE).encode(), b"first")
    submit_epoch(conv, str(DUE + 10).encode(), b"second")
    worker = conv.worker(b"f")
    assert conv.engine.next_deadline() == DUE
    conv.tick(DUE + 15)
    assert conv.engine.next_deadline() == DUE + 20
    assert conv.grab_data(worker) == b"first"
    assert conv.grab_data(worker) == b"second"
    assert conv.grab_data(worker) is None
    conv.tick(DUE + 20)
    assert conv.grab_data(worker) == b"third"


def test_epoch_jobs_coalesce_on_their_unique(conv: Conversation) -> None:
    first = submit_epoch(conv, str(DUE).encode(), unique=b"u")
    assert submit_epoch(conv, str(DUE + 50).encode(), unique=b"u") == first
    assert len(conv.engine.jobs) == 1


def test_the_epoch_timer_wakes_only_one_noop_per_sleep(conv: Conversation) -> None:
    submit_epoch(conv, str(DUE).encode(), b"a")
    submit_epoch(conv, str(DUE).encode(), b"b")
    worker = conv.worker(b"f")
    assert conv.ask(worker, P.PRE_SLEEP) == []
    conv.tick(DUE)
    assert conv.replies(worker) == [NOOP]
