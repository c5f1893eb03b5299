"""The total-queued-bytes cap and the engine's side of a graceful drain, without sockets."""

from __future__ import annotations

from conversation import NO_JOB, Conversation, error

from geartrain.protocol.packets import PacketType
from geartrain.server.core.config import EngineConfig
from geartrain.server.core.records import StoredJob

P = PacketType

SERVER_FULL = error("QUEUE_ERROR", "Server queue is full: queued workloads reached --max-queued-bytes")
DRAINING = error("QUEUE_ERROR", "Server is shutting down (graceful drain): job not accepted")


def capped(limit: int) -> Conversation:
    return Conversation(EngineConfig(handle_prefix=b"H:test", max_queued_bytes=limit))


def test_a_submit_past_the_byte_cap_gets_queue_error_and_creates_nothing() -> None:
    conv = capped(10)
    client = conv.connect()
    conv.submit(client, b"f", b"", b"123456")
    assert conv.ask(client, P.SUBMIT_JOB_BG, b"g", b"", b"12345") == [SERVER_FULL]
    assert len(conv.engine.jobs) == 1
    assert conv.engine.queued_bytes == 6
    conv.submit(client, b"g", b"", b"1234")  # exactly at the cap is allowed
    assert conv.engine.queued_bytes == 10


def test_finished_and_abandoned_jobs_give_their_bytes_back() -> None:
    conv = capped(8)
    client, worker = conv.connect(), conv.worker(b"f")
    handle = conv.submit(client, b"f", b"", b"12345678")
    assert conv.ask(client, P.SUBMIT_JOB, b"f", b"", b"x") == [SERVER_FULL]
    assert conv.grab_handle(worker) == handle
    assert conv.engine.queued_bytes == 8  # a running job still holds its workload
    conv.send(worker, P.WORK_COMPLETE, handle, b"done")
    assert conv.replies(client) == [(P.WORK_COMPLETE, (handle, b"done"))]
    assert conv.engine.queued_bytes == 0
    leaving = conv.connect()
    conv.submit(leaving, b"f", b"", b"abcdefgh")
    conv.disconnect(leaving)
    assert conv.grab(worker) == NO_JOB  # the abandoned job is freed when a worker reaches it
    assert conv.engine.queued_bytes == 0
    conv.submit(client, b"f", b"", b"12345678")


def test_coalescing_onto_a_held_job_costs_no_bytes() -> None:
    conv = capped(4)
    first, second = conv.connect(), conv.connect()
    handle = conv.submit(first, b"f", b"same", b"abcd")
    assert conv.submit(second, b"f", b"same", b"abcd") == handle
    assert conv.engine.queued_bytes == 4


def test_replayed_jobs_are_counted_and_never_refused() -> None:
    conv = capped(4)
    for number in range(3):
        conv.engine.restore(StoredJob(b"k%d" % number, b"f", b"u%d" % number, 1, b"12345"), conv.now)
    assert conv.engine.queued_bytes == 15
    assert conv.ask(conv.connect(), P.SUBMIT_JOB_BG, b"f", b"", b"1") == [SERVER_FULL]


def test_no_cap_by_default() -> None:
    conv = Conversation()
    client = conv.connect()
    for _ in range(3):
        conv.submit(client, b"f", b"", b"x" * 100_000)
    assert conv.engine.queued_bytes == 300_000


def test_draining_refuses_every_submit_even_one_that_would_coalesce(conv: Conversation) -> None:
    client = conv.connect()
    conv.submit(client, b"f", b"u", b"data")
    conv.engine.begin_drain(hold_queued=False)
    for ptype in (P.SUBMIT_JOB, P.SUBMIT_JOB_BG, P.SUBMIT_JOB_HIGH_BG, P.SUBMIT_JOB_LOW):
        assert conv.ask(client, ptype, b"f", b"u", b"data") == [DRAINING]
    assert conv.ask(client, P.SUBMIT_JOB_EPOCH, b"f", b"", b"0", b"x") == [DRAINING]
    assert len(conv.engine.jobs) == 1


def test_draining_without_holding_keeps_handing_out_queued_jobs(conv: Conversation) -> None:
    client = conv.connect()
    handle = conv.submit(client, b"f", b"", b"queued")
    conv.engine.begin_drain(hold_queued=False)
    worker = conv.worker(b"f")
    assert conv.grab_handle(worker) == handle


def test_draining_with_holding_lets_running_jobs_finish_but_hands_out_no_queued_one(conv: Conversation) -> None:
    client, worker = conv.connect(), conv.worker(b"f")
    running = conv.submit(client, b"f", b"", b"running")
    queued = conv.submit(client, b"f", b"", b"queued")
    assert conv.grab_handle(worker) == running
    conv.engine.begin_drain(hold_queued=True)
    assert conv.engine.running_count == 1
    conv.send(worker, P.WORK_COMPLETE, running, b"result")
    assert conv.replies(client) == [(P.WORK_COMPLETE, (running, b"result"))]
    assert conv.engine.running_count == 0
    assert conv.ask(worker, P.PRE_SLEEP) == []  # no wake-up for a held job: the worker would only spin
    assert conv.grab(worker) == NO_JOB
    assert queued in conv.engine.jobs


def test_a_drain_keeps_the_wrappers_access_control_put_on_submit_handlers() -> None:
    """begin_drain rebuilds the submit handlers; a guard wrapped around them must still see every submit."""
    conv = Conversation()
    seen: list[bytes] = []

    def guard(handler):  # type: ignore[no-untyped-def]
        def guarded(peer, args, now):  # type: ignore[no-untyped-def]
            seen.append(args[0])
            handler(peer, args, now)

        return guarded

    conv.engine.wrap_handler(P.SUBMIT_JOB_BG, guard)
    client = conv.connect()
    conv.ask(client, P.SUBMIT_JOB_BG, b"before", b"", b"x")
    conv.engine.begin_drain(hold_queued=False)
    assert conv.ask(client, P.SUBMIT_JOB_BG, b"during", b"", b"x") == [DRAINING]
    assert seen == [b"before", b"during"]
