"""Random conversations against a small model of the rules that must always hold.

Clients submit (every kind, coalescing uniques, epoch jobs), workers grab, report, sleep, change abilities, time
out and disconnect, the admin cancels. After every step: no job is handed to two workers at once, a result is
accepted exactly when the sender holds the job, clients hear only about their own jobs. At the end every worker
leaves, a fresh one drains the queues, and then no job may be left and every live foreground submit must have had
exactly one final answer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from conversation import (
    NO_JOB,
    NOOP,
    NOT_FOUND_DATA,
    NOT_FOUND_EXCEPTION,
    NOT_FOUND_RESULT,
    Conversation,
    Reply,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geartrain.protocol.packets import PacketType
from geartrain.server.core.config import EngineConfig
from geartrain.server.core.peers import Peer

P = PacketType
FUNCTIONS = (b"fa", b"fb", b"fc")
UNIQUES = (b"", b"", b"u1", b"u2", b"-")
SUBMITS = (
    P.SUBMIT_JOB,
    P.SUBMIT_JOB_BG,
    P.SUBMIT_JOB_HIGH,
    P.SUBMIT_JOB_HIGH_BG,
    P.SUBMIT_JOB_LOW,
    P.SUBMIT_JOB_LOW_BG,
)
FOREGROUND = {P.SUBMIT_JOB, P.SUBMIT_JOB_HIGH, P.SUBMIT_JOB_LOW}
GRABS = (P.GRAB_JOB, P.GRAB_JOB_UNIQ, P.GRAB_JOB_ALL)
TIMEOUT = 2.0  # seconds; workers 0 and 1 register fa with CAN_DO_TIMEOUT
FINAL = {P.WORK_COMPLETE, P.WORK_FAIL, P.WORK_EXCEPTION}
UPDATES = {P.WORK_STATUS, P.WORK_DATA, P.WORK_WARNING}


@dataclass
class Held:
    worker: int
    function: bytes
    deadline: float | None


@dataclass
class Model:
    conv: Conversation
    clients: list[Peer] = field(default_factory=list)
    workers: list[Peer] = field(default_factory=list)
    abilities: list[set[bytes]] = field(default_factory=list)
    timeouts: list[dict[bytes, float]] = field(default_factory=list)
    held: dict[bytes, Held] = field(default_factory=dict)
    handles: list[bytes] = field(default_factory=list)
    expected: Counter[tuple[int, bytes]] = field(default_factory=Counter)  # (client peer id, handle) -> fg submits
    finals: Counter[tuple[int, bytes]] = field(default_factory=Counter)

    # ------------------------------------------------------------------ peers

    def new_client(self, index: int) -> None:
        client = self.conv.connect()
        if index == 0:
            assert self.conv.ask(client, P.OPTION_REQ, b"exceptions") == [(P.OPTION_RES, (b"exceptions",))]
        if index < len(self.clients):
            self.clients[index] = client
        else:
            self.clients.append(client)

    def new_worker(self, index: int, functions: set[bytes]) -> None:
        worker = self.conv.connect()
        timeouts: dict[bytes, float] = {}
        for function in sorted(functions):
            if function == b"fa" and index < 2:
                self.conv.send(worker, P.CAN_DO_TIMEOUT, function, b"%d" % (TIMEOUT * 1000))
                timeouts[function] = TIMEOUT
            else:
                self.conv.send(worker, P.CAN_DO, function)
        if index < len(self.workers):
            self.workers[index], self.abilities[index], self.timeouts[index] = worker, set(functions), timeouts
        else:
            self.workers.append(worker)
            self.abilities.append(set(functions))
            self.timeouts.append(timeouts)

    def release(self, worker: int, function: bytes | None = None) -> None:
        for handle, held in list(self.held.items()):
            if held.worker == worker and function in (None, held.function):
                del self.held[handle]

    # ------------------------------------------------------------------ output

    def worker_replies(self, worker: int) -> list[Reply]:
        """What a worker got, without the NOOPs that other steps' wake-ups may have queued."""
        replies = self.conv.replies(self.workers[worker])
        return [reply for reply in replies if reply != NOOP]

    def check_outputs(self) -> None:
        for client in self.clients:
            for ptype, args in self.conv.replies(client):
                key = (client.id, args[0])
                assert ptype in FINAL | UPDATES, (ptype, args)
                assert self.finals[key] < self.expected[key], f"{ptype.name} for a job this client does not wait for"
                if ptype in FINAL:
                    self.finals[key] += 1
        for index in range(len(self.workers)):
            assert self.worker_replies(index) == []

    def runnable_for(self, worker: int) -> list[bytes]:
        now = self.conv.now
        return [
            handle
            for handle, job in self.conv.engine.jobs.items()
            if handle not in self.held
            and job.function.name in self.abilities[worker]
            and not job.ignore
            and job.when <= now
        ]

    # ------------------------------------------------------------------ steps

    def submit(self, client: int, function: int, unique: int, kind: int, data: int) -> None:
        peer, ptype = self.clients[client], SUBMITS[kind]
        replies = self.conv.ask(peer, ptype, FUNCTIONS[function], UNIQUES[unique], b"data%d" % data)
        assert len(replies) == 1 and replies[0][0] == P.JOB_CREATED, replies
        handle = replies[0][1][0]
        assert handle in self.conv.engine.jobs
        self.handles.append(handle)
        if ptype in FOREGROUND:
            self.expected[(peer.id, handle)] += 1

    def submit_epoch(self, client: int, function: int, delay: int) -> None:
        when = b"%d" % (int(self.conv.now) + delay)
        replies = self.conv.ask(self.clients[client], P.SUBMIT_JOB_EPOCH, FUNCTIONS[function], b"", when, b"later")
        assert len(replies) == 1 and replies[0][0] == P.JOB_CREATED, replies
        self.handles.append(replies[0][1][0])

    def grab(self, worker: int, kind: int) -> None:
        runnable = self.runnable_for(worker)
        self.conv.send(self.workers[worker], GRABS[kind])
        [reply] = self.worker_replies(worker)
        if reply == NO_JOB:
            assert runnable == [], f"NO_JOB while {runnable} could run"
            return
        assert reply[0] in (P.JOB_ASSIGN, P.JOB_ASSIGN_UNIQ), reply
        handle, function = reply[1][0], reply[1][1]
        assert handle in runnable, f"{handle!r} handed out but not runnable (held: {handle in self.held})"
        timeout = self.timeouts[worker].get(function)
        self.held[handle] = Held(worker, function, None if timeout is None else self.conv.now + timeout)

    def sleep(self, worker: int) -> None:
        runnable = self.runnable_for(worker)
        self.conv.send(self.workers[worker], P.PRE_SLEEP)
        replies = self.conv.replies(self.workers[worker])
        assert replies in ([], [NOOP])
        if runnable:
            assert replies == [NOOP]

    def result(self, worker: int, kind: int, pick: int) -> None:
        mine = sorted(handle for handle, held in self.held.items() if held.worker == worker)
        others = sorted(set(self.handles) - set(mine))
        if mine and pick < 15:  # mostly a job it holds; sometimes a stale or foreign one
            handle = mine[pick % len(mine)]
        elif others:
            handle = others[pick % len(others)]
        else:
            return
        ptype, args, not_found = [
            (P.WORK_COMPLETE, (b"done",), NOT_FOUND_RESULT),
            (P.WORK_FAIL, (), NOT_FOUND_RESULT),
            (P.WORK_EXCEPTION, (b"boom",), NOT_FOUND_EXCEPTION),
            (P.WORK_STATUS, (b"1", b"2"), NOT_FOUND_RESULT),
            (P.WORK_DATA, (b"chunk",), NOT_FOUND_DATA),
        ][kind]
        self.conv.send(self.workers[worker], ptype, handle, *args)
        replies = self.worker_replies(worker)
        if handle in mine:
            assert replies == [], (ptype.name, replies)
            if ptype in FINAL:
                del self.held[handle]
                assert handle not in self.conv.engine.jobs
        else:
            assert replies == [not_found], (ptype.name, replies)

    def disconnect_worker(self, worker: int) -> None:
        self.conv.disconnect(self.workers[worker])
        self.release(worker)
        self.new_worker(worker, self.abilities[worker])

    def disconnect_client(self, client: int) -> None:
        self.conv.disconnect(self.clients[client])
        self.new_client(client)

    def cant_do(self, worker: int, function: int) -> None:
        name = FUNCTIONS[function]
        self.conv.send(self.workers[worker], P.CANT_DO, name)
        self.abilities[worker].discard(name)
        self.timeouts[worker].pop(name, None)
        self.release(worker, name)

    def can_do(self, worker: int, function: int) -> None:
        self.conv.send(self.workers[worker], P.CAN_DO, FUNCTIONS[function])
        self.abilities[worker].add(FUNCTIONS[function])

    def cancel(self, pick: int) -> None:
        if not self.handles:
            return
        handle = self.handles[pick % len(self.handles)]
        admin = self.conv.connect()
        known = handle in self.conv.engine.jobs
        assert self.conv.admin(admin, b"cancel job " + handle) == (b"OK\r\n" if known else b"ERR UNKNOWN_JOB\r\n")
        self.conv.disconnect(admin)

    def tick(self, half_seconds: int) -> None:
        now = self.conv.now + half_seconds / 2
        self.conv.tick(now)
        for handle, held in list(self.held.items()):
            if held.deadline is not None and held.deadline <= now:
                del self.held[handle]  # timed out: requeued behind the worker's back

    # ------------------------------------------------------------------ the end

    def finish(self) -> None:
        self.conv.tick(self.conv.now + 3600)
        for index in range(len(self.workers)):
            self.conv.disconnect(self.workers[index])
        self.held.clear()
        drainer = self.conv.worker(*FUNCTIONS)
        while (reply := self.conv.grab(drainer, P.GRAB_JOB_UNIQ)) != NO_JOB:
            assert self.conv.ask(drainer, P.WORK_COMPLETE, reply[1][0], b"final") == []
        self.workers = []
        self.check_outputs()
        assert self.conv.engine.jobs == {}
        admin = self.conv.connect()
        for row in self.conv.admin(admin, b"status").split(b"\n")[:-2]:
            assert row.split(b"\t")[1:3] == [b"0", b"0"], row
        for client in self.clients:
            for (client_id, handle), count in self.expected.items():
                if client_id == client.id:
                    assert self.finals[(client_id, handle)] == count, f"{handle!r}: a foreground submit got no answer"


small = st.integers(0, 2)
STEPS = st.one_of(
    st.tuples(st.just("submit"), small, small, st.integers(0, len(UNIQUES) - 1), st.integers(0, 5), st.integers(0, 1)),
    st.tuples(st.just("submit_epoch"), small, small, st.sampled_from([-10, 0, 1, 5])),
    st.tuples(st.just("grab"), small, small),
    st.tuples(st.just("sleep"), small),
    st.tuples(st.just("result"), small, st.integers(0, 4), st.integers(0, 20)),
    st.tuples(st.just("disconnect_worker"), small),
    st.tuples(st.just("disconnect_client"), small),
    st.tuples(st.just("cant_do"), small, small),
    st.tuples(st.just("can_do"), small, small),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
    st.tuples(st.just("tick"), st.integers(1, 6)),
)

CONFIGS = st.builds(
    EngineConfig,
    round_robin=st.booleans(),
    global_priority=st.booleans(),
    worker_wakeup=st.integers(0, 2),
    job_retries=st.sampled_from([0, 1, 2]),
    exceptions=st.booleans(),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=CONFIGS, steps=st.lists(STEPS, max_size=80))
def test_random_conversations_keep_the_rules(config: EngineConfig, steps: list[tuple[object, ...]]) -> None:
    model = Model(Conversation(config))
    for index in range(3):
        model.new_client(index)
    for index, functions in enumerate([{b"fa"}, {b"fa", b"fb"}, {b"fb", b"fc"}]):
        model.new_worker(index, functions)
    for name, *args in steps:
        getattr(model, str(name))(*args)
        model.check_outputs()
    model.finish()
