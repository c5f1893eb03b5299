"""Sleeping workers and NOOP wake-ups (reference §3.3)."""

from __future__ import annotations

import pytest
from conversation import NOOP, Conversation

from geartrain.protocol.packets import PacketType
from geartrain.server.core.config import EngineConfig
from geartrain.server.core.peers import Peer

P = PacketType


def sleepers(conv: Conversation, count: int, function: bytes = b"f") -> list[Peer]:
    workers = [conv.worker(function) for _ in range(count)]
    for worker in workers:
        assert conv.ask(worker, P.PRE_SLEEP) == []  # nothing queued: no reply
    return workers


def noops(conv: Conversation, workers: list[Peer]) -> list[int]:
    """How many NOOPs each worker got (and nothing else)."""
    counts = []
    for worker in workers:
        replies = conv.replies(worker)
        assert set(replies) <= {NOOP}, replies
        counts.append(len(replies))
    return counts


def test_every_sleeping_worker_gets_one_noop_per_sleep(conv: Conversation) -> None:
    workers = sleepers(conv, 3)
    client = conv.connect()
    conv.submit(client, b"f", b"", b"job0", P.SUBMIT_JOB_BG)
    assert noops(conv, workers) == [1, 1, 1]
    conv.submit(client, b"f", b"", b"job1", P.SUBMIT_JOB_BG)
    assert noops(conv, workers) == [0, 0, 0]


@pytest.mark.parametrize(
    ("wakeup", "expected"),
    [
        (1, [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]),
        (2, [[1, 1, 0], [0, 0, 1], [0, 0, 0]]),
        (3, [[1, 1, 1], [0, 0, 0]]),
        (5, [[1, 1, 1], [0, 0, 0]]),
    ],
)
def test_worker_wakeup_limits_and_rotates(wakeup: int, expected: list[list[int]]) -> None:
    conv = Conversation(EngineConfig(worker_wakeup=wakeup))
    workers = sleepers(conv, 3)
    client = conv.connect()
    for number, counts in enumerate(expected):
        conv.submit(client, b"f", b"", b"job%d" % number, P.SUBMIT_JOB_BG)
        assert noops(conv, workers) == counts, f"job{number}"


def test_worker_wakeup_one_wakes_the_longest_sleeper_again_after_it_slept_again() -> None:
    conv = Conversation(EngineConfig(worker_wakeup=1))
    first, second = sleepers(conv, 2)
    client = conv.connect()
    conv.submit(client, b"f", b"", b"a", P.SUBMIT_JOB_BG)
    assert noops(conv, [first, second]) == [1, 0]
    assert conv.grab_data(first) == b"a"
    assert conv.ask(first, P.PRE_SLEEP) == []  # queue empty again
    conv.submit(client, b"f", b"", b"b", P.SUBMIT_JOB_BG)
    assert noops(conv, [first, second]) == [0, 1]  # the rotation continues with the one not yet woken
    conv.submit(client, b"f", b"", b"c", P.SUBMIT_JOB_BG)
    assert noops(conv, [first, second]) == [1, 0]


def test_pre_sleep_with_a_runnable_job_gets_an_immediate_noop(conv: Conversation) -> None:
    client = conv.connect()
    worker = conv.worker(b"f")
    conv.submit(client, b"f", b"", b"x", P.SUBMIT_JOB_BG)
    assert conv.ask(worker, P.PRE_SLEEP) == [NOOP]
    # Woken once for this sleep: another job brings no second NOOP.
    conv.submit(client, b"f", b"", b"y", P.SUBMIT_JOB_BG)
    assert conv.replies(worker) == []
    assert conv.grab_data(worker) == b"x"
    assert conv.ask(worker, P.PRE_SLEEP) == [NOOP]  # y is still runnable


def test_pre_sleep_looks_at_every_function_of_the_worker(conv: Conversation) -> None:
    client = conv.connect()
    worker = conv.worker(b"f", b"g", b"h")
    conv.submit(client, b"f", b"", b"x", P.SUBMIT_JOB_LOW_BG)
    assert conv.ask(worker, P.PRE_SLEEP) == [NOOP]


def test_a_job_of_another_function_wakes_nobody(conv: Conversation) -> None:
    [worker] = sleepers(conv, 1, b"f")
    client = conv.connect()
    conv.submit(client, b"g", b"", b"x", P.SUBMIT_JOB_BG)
    assert conv.replies(worker) == []


def test_workers_that_never_sleep_get_no_noop(conv: Conversation) -> None:
    worker = conv.worker(b"f")
    client = conv.connect()
    conv.submit(client, b"f", b"", b"x", P.SUBMIT_JOB_BG)
    assert conv.replies(worker) == []


def test_grab_ends_the_sleep(conv: Conversation) -> None:
    [worker] = sleepers(conv, 1)
    assert conv.grab(worker) == (P.NO_JOB, ())
    client = conv.connect()
    conv.submit(client, b"f", b"", b"x", P.SUBMIT_JOB_BG)
    assert conv.replies(worker) == []  # it is awake (it grabbed), so no NOOP


def test_can_do_while_asleep_registers_for_wakeups(conv: Conversation) -> None:
    [worker] = sleepers(conv, 1, b"f")
    conv.send(worker, P.CAN_DO, b"g")
    client = conv.connect()
    conv.submit(client, b"g", b"", b"x", P.SUBMIT_JOB_BG)
    assert conv.replies(worker) == [NOOP]


def test_one_noop_per_sleep_across_functions(conv: Conversation) -> None:
    worker = conv.worker(b"f", b"g")
    assert conv.ask(worker, P.PRE_SLEEP) == []
    client = conv.connect()
    conv.submit(client, b"f", b"", b"x", P.SUBMIT_JOB_BG)
    conv.submit(client, b"g", b"", b"y", P.SUBMIT_JOB_BG)
    assert conv.replies(worker) == [NOOP]


def test_a_foreground_submit_wakes_too(conv: Conversation) -> None:
    workers = sleepers(conv, 2)
    client = conv.connect()
    conv.submit(client, b"f", b"", b"x", P.SUBMIT_JOB_HIGH)
    assert noops(conv, workers) == [1, 1]


def test_a_disconnected_sleeper_is_skipped() -> None:
    conv = Conversation(EngineConfig(worker_wakeup=1))
    gone, staying = sleepers(conv, 2)
    conv.disconnect(gone)
    client = conv.connect()
    conv.submit(client, b"f", b"", b"x", P.SUBMIT_JOB_BG)
    assert gone.outbox == []
    assert noops(conv, [staying]) == [1]


def test_a_worker_of_many_functions_is_woken_for_each_of_them_sleep_after_sleep(conv: Conversation) -> None:
    """PRE_SLEEP lists the worker again only where a wake-up took it out (its other abilities still list it), so
    sleeping costs nothing per ability; each sleep still gets a NOOP for a job of any of its functions."""
    names = [b"f%d" % n for n in range(50)]
    worker = conv.worker(*names)
    client = conv.connect()
    for name in [b"f7", b"f7", b"f42", b"f0"]:
        assert conv.ask(worker, P.PRE_SLEEP) == []
        assert not worker.unslept  # listed by every ability now
        conv.submit(client, name, b"", b"job", P.SUBMIT_JOB_BG)
        assert conv.replies(worker) == [NOOP]
        assert worker.unslept == [conv.engine.functions[name]]  # the one wake-up that took it out
        reply = conv.grab(worker)
        assert reply[0] == P.JOB_ASSIGN and reply[1][1] == name
        conv.send(worker, P.WORK_COMPLETE, reply[1][0], b"done")
        assert conv.grab(worker) == (P.NO_JOB, ())


def test_an_ability_registered_while_awake_wakes_the_worker_after_its_next_sleep(conv: Conversation) -> None:
    worker = conv.worker(b"a")
    conv.send(worker, P.CAN_DO, b"late")  # awake: not listed by it yet
    assert conv.ask(worker, P.PRE_SLEEP) == []
    conv.submit(conv.connect(), b"late", b"", b"job", P.SUBMIT_JOB_BG)
    assert conv.replies(worker) == [NOOP]


def test_an_ability_dropped_while_awake_does_not_list_the_worker_again(conv: Conversation) -> None:
    worker = conv.worker(b"a", b"b")
    assert conv.ask(worker, P.PRE_SLEEP) == []
    conv.submit(conv.connect(), b"b", b"", b"job", P.SUBMIT_JOB_BG)
    assert conv.replies(worker) == [NOOP]
    conv.send(worker, P.CANT_DO, b"b")
    assert conv.ask(worker, P.PRE_SLEEP) == []
    assert worker not in conv.engine.functions[b"b"].sleepers
