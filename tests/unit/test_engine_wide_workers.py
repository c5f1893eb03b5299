"""A worker of many functions (more than WIDE_WORKER) gets the job a walk of its own list would give it: the first
of its functions, most recently registered first, with a queued job; the highest priority, then the oldest. The
engine finds it among the functions that hold jobs instead (WorkerRules._wide_candidates), or walks when many do;
these tests hold it to a model of the walk, through submits, cancels, CANT_DO, CAN_DO again and round robin."""

from __future__ import annotations

import random
from collections import deque

import pytest
from conversation import NO_JOB, NOOP, Conversation

from geartrain.protocol.packets import PacketType
from geartrain.server.core.config import EngineConfig
from geartrain.server.core.state import WIDE_WORKER

P = PacketType
SUBMITS = (P.SUBMIT_JOB_HIGH_BG, P.SUBMIT_JOB_BG, P.SUBMIT_JOB_LOW_BG)


class WalkModel:
    """gearmand's rule, written out: the worker's functions in order, each with three FIFO queues."""

    def __init__(self, round_robin: bool) -> None:
        self.round_robin = round_robin
        self.abilities: list[bytes] = []
        self.queues: dict[bytes, tuple[deque[bytes], deque[bytes], deque[bytes]]] = {}

    def can_do(self, function: bytes) -> None:
        self.abilities.insert(0, function)

    def cant_do(self, function: bytes) -> None:
        self.abilities = [f for f in self.abilities if f != function]

    def submit(self, function: bytes, priority: int, data: bytes) -> None:
        self.queues.setdefault(function, (deque(), deque(), deque()))[priority].append(data)

    def cancel(self, function: bytes, data: bytes) -> None:
        for queue in self.queues[function]:
            if data in queue:
                queue.remove(data)

    def grab(self) -> bytes | None:
        for position, function in enumerate(self.abilities):
            for queue in self.queues.get(function, ()):
                if queue:
                    if self.round_robin:
                        self.abilities.append(self.abilities.pop(position))
                    return queue.popleft()
        return None


@pytest.mark.parametrize("round_robin", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_a_wide_worker_gets_the_job_the_walk_gives(seed: int, round_robin: bool) -> None:
    rng = random.Random(seed)
    conv = Conversation(EngineConfig(handle_prefix=b"H:test", round_robin=round_robin))
    model = WalkModel(round_robin)
    names = [b"f%d" % n for n in range(3 * WIDE_WORKER)]
    worker = conv.connect()
    for name in names[: 2 * WIDE_WORKER]:  # wide from the start; the last third of the functions it cannot do
        conv.send(worker, P.CAN_DO, name)
        model.can_do(name)
    client = conv.connect()
    queued: dict[bytes, tuple[bytes, bytes]] = {}  # data -> (function, handle)
    # Few functions with jobs at first (the search among them), many later (more than WIDE_WORKER: the walk).
    spread = [4, 40, 3 * WIDE_WORKER]
    for step in range(1500):
        width = spread[min(step // 500, 2)]
        action = rng.random()
        if action < 0.45:
            function = rng.choice(names[:width] if width < len(names) else names)
            priority = rng.randrange(3)
            data = b"job%d" % step
            queued[data] = (function, conv.submit(client, function, b"", data, SUBMITS[priority]))
            model.submit(function, priority, data)
        elif action < 0.85:
            expected = model.grab()
            reply = conv.grab(worker)
            if expected is None:
                assert reply == NO_JOB, step
            else:
                assert reply[0] == P.JOB_ASSIGN and reply[1][2] == expected, (step, reply, expected)
                conv.send(worker, P.WORK_COMPLETE, reply[1][0], b"")
                del queued[expected]
        elif action < 0.9 and queued:
            data = rng.choice(sorted(queued))
            function, handle = queued.pop(data)
            assert conv.admin(client, b"cancel job " + handle) == b"OK\r\n"
            model.cancel(function, data)
        elif action < 0.95:
            function = rng.choice(names)
            conv.send(worker, P.CANT_DO, function)
            model.cant_do(function)
        else:
            function = rng.choice(names)
            conv.send(worker, P.CAN_DO, function)
            model.can_do(function)
        assert conv.replies(worker) == []


def test_a_wide_worker_waits_for_a_function_it_can_do() -> None:
    """Jobs of functions it cannot do are looked past; one of its own, queued later, is the one it gets."""
    conv = Conversation()
    worker = conv.worker(*[b"mine%d" % n for n in range(WIDE_WORKER + 10)])
    client = conv.connect()
    for n in range(5):
        conv.submit(client, b"other%d" % n, b"", b"not for it", P.SUBMIT_JOB_BG)
    assert conv.grab(worker) == NO_JOB
    conv.submit(client, b"mine3", b"", b"for it", P.SUBMIT_JOB_BG)
    assert conv.grab_data(worker) == b"for it"
    assert conv.grab(worker) == NO_JOB


def test_a_wide_worker_gets_an_epoch_job_when_it_comes_due() -> None:
    conv = Conversation()
    worker = conv.worker(*[b"mine%d" % n for n in range(WIDE_WORKER + 10)])
    client = conv.connect()
    due = int(conv.now) + 100
    replies = conv.ask(client, P.SUBMIT_JOB_EPOCH, b"mine7", b"", str(due).encode(), b"later")
    assert replies[0][0] == P.JOB_CREATED
    assert conv.grab(worker) == NO_JOB
    conv.tick(due)
    assert conv.grab_data(worker) == b"later"


def test_jobs_queued_before_a_worker_became_wide_are_found_and_the_count_follows_it() -> None:
    """The engine lists functions with jobs only while some worker is wide: one that becomes wide finds the jobs
    queued before, by the model's order; CANT_DO below the line and a disconnect take it off the count."""
    conv = Conversation()
    model = WalkModel(round_robin=False)
    names = [b"f%d" % n for n in range(WIDE_WORKER + 20)]
    worker = conv.connect()
    client = conv.connect()
    for name in names[:WIDE_WORKER]:
        conv.send(worker, P.CAN_DO, name)
        model.can_do(name)
    for number, name in enumerate(names[::7]):
        conv.submit(client, name, b"", b"early%d" % number, SUBMITS[number % 3])
        model.submit(name, number % 3, b"early%d" % number)
    assert conv.engine.wide_workers == 0
    for name in names[WIDE_WORKER:]:
        conv.send(worker, P.CAN_DO, name)
        model.can_do(name)
    assert conv.engine.wide_workers == 1
    for _ in range(4):
        expected = model.grab()
        assert expected is not None and conv.grab_data(worker) == expected
    for name in names[: len(names) - WIDE_WORKER]:
        conv.send(worker, P.CANT_DO, name)
        model.cant_do(name)
    assert conv.engine.wide_workers == 0
    conv.submit(client, names[-1], b"", b"late", P.SUBMIT_JOB_BG)
    model.submit(names[-1], 1, b"late")
    for name in names[:3]:
        conv.send(worker, P.CAN_DO, name)
        model.can_do(name)
    assert conv.engine.wide_workers == 1
    while (expected := model.grab()) is not None:
        assert conv.grab_data(worker) == expected
    assert conv.grab(worker) == NO_JOB
    conv.disconnect(worker)
    assert conv.engine.wide_workers == 0


def test_a_wide_worker_going_to_sleep_is_woken_at_once_only_for_a_job_of_its_own() -> None:
    conv = Conversation()
    worker = conv.worker(*[b"mine%d" % n for n in range(WIDE_WORKER + 10)])
    client = conv.connect()
    conv.submit(client, b"other", b"", b"not for it", P.SUBMIT_JOB_BG)
    assert conv.ask(worker, P.PRE_SLEEP) == []  # a job, but of a function it cannot do
    conv.submit(client, b"mine5", b"", b"for it", P.SUBMIT_JOB_BG)
    assert conv.replies(worker) == [NOOP]
    assert conv.ask(worker, P.PRE_SLEEP) == [NOOP]  # its job still waits: woken at once
    assert conv.grab_data(worker) == b"for it"
    assert conv.ask(worker, P.PRE_SLEEP) == []
