"""Unique keys and coalescing (reference §3.4), and what every attached client hears."""

from __future__ import annotations

from conversation import NO_JOB, Conversation

from geartrain.protocol.packets import PacketType

P = PacketType


def test_same_function_and_unique_coalesce_while_queued(conv: Conversation) -> None:
    c1, c2 = conv.connect(), conv.connect()
    handle = conv.submit(c1, b"f1", b"u1", b"data")
    assert conv.submit(c2, b"f1", b"u1", b"other-data") == handle
    assert conv.submit(c2, b"f1", b"u1", b"bg", P.SUBMIT_JOB_BG) == handle
    assert conv.submit(c2, b"f1", b"u1", b"hi", P.SUBMIT_JOB_HIGH) == handle
    worker = conv.worker(b"f1")
    assert conv.grab(worker) == (P.JOB_ASSIGN, (handle, b"f1", b"data"))  # the first workload wins
    assert conv.grab(worker) == NO_JOB


def test_coalescing_onto_a_running_job(conv: Conversation) -> None:
    c1, c2, worker = conv.connect(), conv.connect(), conv.worker(b"f")
    handle = conv.submit(c1, b"f", b"u", b"data")
    assert conv.grab_handle(worker) == handle
    assert conv.submit(c2, b"f", b"u", b"late") == handle
    assert conv.grab(worker) == NO_JOB
    conv.send(worker, P.WORK_COMPLETE, handle, b"result")
    assert conv.replies(c1) == [(P.WORK_COMPLETE, (handle, b"result"))]
    assert conv.replies(c2) == [(P.WORK_COMPLETE, (handle, b"result"))]


def test_unique_is_per_function(conv: Conversation) -> None:
    client = conv.connect()
    first = conv.submit(client, b"f", b"u", b"x")
    assert conv.submit(client, b"g", b"u", b"x") != first
    assert len(conv.engine.jobs) == 2


def test_empty_unique_never_coalesces(conv: Conversation) -> None:
    client = conv.connect()
    handles = {conv.submit(client, b"f", b"", b"same") for _ in range(3)}
    handles |= {conv.submit(client, b"f", b"", b"same", P.SUBMIT_JOB_BG) for _ in range(2)}
    assert len(handles) == 5


def test_dash_unique_coalesces_on_the_payload(conv: Conversation) -> None:
    client = conv.connect()
    first = conv.submit(client, b"f", b"-", b"payload")
    assert conv.submit(client, b"f", b"-", b"payload") == first
    assert conv.submit(client, b"f", b"-", b"payload", P.SUBMIT_JOB_BG) == first
    other = conv.submit(client, b"f", b"-", b"another payload")
    assert other != first
    assert conv.submit(client, b"g", b"-", b"payload") not in (first, other)
    # The payload key does not collide with an ordinary unique equal to the payload.
    assert conv.submit(client, b"f", b"payload", b"payload") not in (first, other)
    assert len(conv.engine.jobs) == 4


def test_dash_unique_is_free_again_after_completion(conv: Conversation) -> None:
    client, worker = conv.connect(), conv.worker(b"f")
    first = conv.submit(client, b"f", b"-", b"p")
    assert conv.grab_handle(worker) == first
    conv.send(worker, P.WORK_COMPLETE, first, b"")
    assert conv.replies(client) == [(P.WORK_COMPLETE, (first, b""))]
    assert conv.submit(client, b"f", b"-", b"p") != first


def test_every_attached_client_hears_every_update(conv: Conversation) -> None:
    c1, c2, c3, worker = conv.connect(), conv.connect(), conv.connect(), conv.worker(b"f1")
    handle = conv.submit(c1, b"f1", b"u1", b"data")
    assert conv.submit(c2, b"f1", b"u1", b"other-data") == handle
    assert conv.submit(c3, b"f1", b"u1", b"bg", P.SUBMIT_JOB_BG) == handle  # background: attaches nobody
    assert conv.grab_handle(worker) == handle
    for ptype, args in [
        (P.WORK_STATUS, (handle, b"3", b"10")),
        (P.WORK_DATA, (handle, b"chunk\0with nul")),
        (P.WORK_WARNING, (handle, b"careful")),
        (P.WORK_STATUS, (handle, b"x", b"")),  # forwarded verbatim, numbers or not
        (P.WORK_COMPLETE, (handle, b"done")),
    ]:
        assert conv.ask(worker, ptype, *args) == []
    expected = [
        (P.WORK_STATUS, (handle, b"3", b"10")),
        (P.WORK_DATA, (handle, b"chunk\0with nul")),
        (P.WORK_WARNING, (handle, b"careful")),
        (P.WORK_STATUS, (handle, b"x", b"")),
        (P.WORK_COMPLETE, (handle, b"done")),
    ]
    assert conv.replies(c1) == expected
    assert conv.replies(c2) == expected
    assert conv.replies(c3) == []
    assert conv.engine.jobs == {}


def test_both_clients_hear_work_fail(conv: Conversation) -> None:
    c1, c2, worker = conv.connect(), conv.connect(), conv.worker(b"f")
    handle = conv.submit(c1, b"f", b"u", b"x")
    conv.submit(c2, b"f", b"u", b"x")
    conv.grab(worker)
    assert conv.ask(worker, P.WORK_FAIL, handle) == []
    assert conv.replies(c1) == [(P.WORK_FAIL, (handle,))]
    assert conv.replies(c2) == [(P.WORK_FAIL, (handle,))]


def test_the_same_client_submitting_twice_hears_twice(conv: Conversation) -> None:
    client, worker = conv.connect(), conv.worker(b"f")
    handle = conv.submit(client, b"f", b"u", b"x")
    assert conv.submit(client, b"f", b"u", b"x") == handle
    conv.grab(worker)
    conv.send(worker, P.WORK_COMPLETE, handle, b"r")
    assert conv.replies(client) == [(P.WORK_COMPLETE, (handle, b"r"))] * 2


def test_background_job_survives_a_coalesced_foreground_client_leaving(conv: Conversation) -> None:
    submitter, waiter, worker = conv.connect(), conv.connect(), conv.worker(b"f")
    handle = conv.submit(submitter, b"f", b"u", b"bg-data", P.SUBMIT_JOB_BG)
    assert conv.submit(waiter, b"f", b"u", b"fg-data") == handle
    conv.disconnect(waiter)
    admin = conv.connect()
    assert conv.admin(admin, b"show jobs") == handle + b"\t0\t0\t1\n.\n"
    assert conv.grab(worker) == (P.JOB_ASSIGN, (handle, b"f", b"bg-data"))
    assert conv.ask(worker, P.WORK_COMPLETE, handle, b"ok") == []
    assert conv.replies(submitter) == []
    assert conv.engine.jobs == {}


def test_foreground_job_turned_background_survives_its_client_leaving(conv: Conversation) -> None:
    waiter, submitter, worker = conv.connect(), conv.connect(), conv.worker(b"f")
    handle = conv.submit(waiter, b"f", b"u", b"fg-data")
    assert conv.submit(submitter, b"f", b"u", b"bg-data", P.SUBMIT_JOB_BG) == handle
    conv.disconnect(waiter)
    assert conv.grab(worker) == (P.JOB_ASSIGN, (handle, b"f", b"fg-data"))


def test_coalescing_survives_one_of_two_clients_leaving(conv: Conversation) -> None:
    c1, c2, worker = conv.connect(), conv.connect(), conv.worker(b"f")
    handle = conv.submit(c1, b"f", b"u", b"x")
    conv.submit(c2, b"f", b"u", b"x")
    conv.disconnect(c1)
    assert conv.grab_handle(worker) == handle
    conv.send(worker, P.WORK_COMPLETE, handle, b"r")
    assert conv.replies(c2) == [(P.WORK_COMPLETE, (handle, b"r"))]
