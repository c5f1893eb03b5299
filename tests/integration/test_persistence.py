"""The server with a store: acknowledgement after storing, group commit, outages, replay."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from geartrain.protocol.packets import PacketType as P
from geartrain.server.core.records import Removal, StoredJob
from geartrain.server.node import build_node
from geartrain.store.base import StoreError
from geartrain.store.memory import MemoryStore
from geartrain.store.sqlite import SQLiteStore
from inprocess import InProcessServer, make_config
from servers import GearmanSocket, admin_raw, wait_until


class GatedStore(MemoryStore):
    """A memory store whose transactions wait until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def apply(self, adds: Sequence[StoredJob], removes: Sequence[Removal]) -> None:
        self.entered.set()
        if not self.gate.wait(10):
            raise TimeoutError("gate never opened")
        super().apply(adds, removes)


@pytest.fixture
def start_with_store() -> Iterator[Callable[..., InProcessServer]]:
    started: list[InProcessServer] = []

    def start(store: object, **options: object) -> InProcessServer:
        server = InProcessServer(make_config())
        server.node = build_node(server.config, store, **options)  # type: ignore[arg-type]
        server.server = server.node.gearman
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


def test_job_created_waits_for_the_store_and_keeps_reply_order(
    start_with_store: Callable[..., InProcessServer],
) -> None:
    store = GatedStore()
    server = start_with_store(store)
    with GearmanSocket(server.address) as client:
        store.gate.clear()
        client.send(P.SUBMIT_JOB_BG, b"f", b"u1", b"data")
        client.send(P.ECHO_REQ, b"after")
        assert store.entered.wait(5)
        with pytest.raises(TimeoutError):
            client.recv(timeout=0.3)  # neither the JOB_CREATED nor the ECHO_RES that follows it may leave yet
        assert store.records == {}
        store.gate.set()
        assert client.expect(P.JOB_CREATED).body.startswith(b"H:test:")
        assert client.expect(P.ECHO_RES).body == b"after"
        assert [job.data for job in store.records.values()] == [b"data"]


def test_group_commit_uses_few_transactions(start_with_store: Callable[..., InProcessServer]) -> None:
    store = GatedStore()
    server = start_with_store(store)
    with GearmanSocket(server.address) as client:
        store.gate.clear()
        client.send(P.SUBMIT_JOB_BG, b"f", b"", b"first")
        assert store.entered.wait(5)
        for i in range(1000):  # these pile up while the first transaction is held
            client.send(P.SUBMIT_JOB_BG, b"f", b"", str(i).encode())
        store.gate.set()
        for _ in range(1001):
            client.expect(P.JOB_CREATED)
        assert len(store.records) == 1001
        assert store.transactions <= 5


def test_outage_refuses_submits_then_recovers(start_with_store: Callable[..., InProcessServer]) -> None:
    store = MemoryStore()
    server = start_with_store(store)
    with GearmanSocket(server.address) as client, GearmanSocket(server.address) as worker:
        kept = client.submit("f", b"kept", ptype=P.SUBMIT_JOB_BG)
        store.available = False
        client.send(P.SUBMIT_JOB_BG, b"f", b"", b"refused")
        error = client.expect(P.ERROR)
        assert error.args[0] == b"QUEUE_ERROR"
        assert b"not stored" in error.args[1]
        # Jobs already in memory keep flowing, and foreground jobs need no store.
        worker.send(P.CAN_DO, b"f")
        assert worker.request(P.GRAB_JOB, reply=P.JOB_ASSIGN).args[0] == kept.encode()
        worker.send(P.WORK_COMPLETE, kept.encode(), b"")
        foreground = client.submit("f", b"fg")
        assert worker.request(P.GRAB_JOB, reply=P.JOB_ASSIGN).args[0] == foreground.encode()
        store.available = True

        def stored_again() -> bool:
            client.send(P.SUBMIT_JOB_BG, b"f", b"", b"after")
            return client.recv().type == P.JOB_CREATED

        wait_until(stored_again, timeout=10, message="the store to be used again")
        # The completion recorded during the outage was retried: only the new job is stored.
        assert [job.data for job in store.records.values()] == [b"after"]


def test_replay_keeps_order_priorities_and_times(start_with_store: Callable[..., InProcessServer]) -> None:
    store = MemoryStore()
    future = int(time.time()) + 3600
    store.apply(
        [
            StoredJob(b"a", b"f", b"a", 2, b"low"),
            StoredJob(b"b", b"f", b"b", 1, b"normal-1"),
            StoredJob(b"c", b"f", b"c", 0, b"high"),
            StoredJob(b"d", b"f", b"d", 1, b"normal-2"),
            StoredJob(b"e", b"f", b"e", 1, b"later", when=future),
            StoredJob(b"r", b"g", b"r", 1, b"reduce", reducer=b"sum"),
        ],
        [],
    )
    server = start_with_store(store)
    with GearmanSocket(server.address) as worker:
        worker.send(P.CAN_DO, b"f")
        order = [worker.request(P.GRAB_JOB, reply=P.JOB_ASSIGN).args[2] for _ in range(4)]
        assert order == [b"high", b"normal-1", b"normal-2", b"low"]
        worker.request(P.GRAB_JOB, reply=P.NO_JOB)  # the future epoch job waits for its time
        worker.send(P.CAN_DO, b"g")
        assert worker.request(P.GRAB_JOB_ALL, reply=P.JOB_ASSIGN_ALL).args[3:] == [b"sum", b"reduce"]
    assert b"\t0\t0\t1\n" in admin_raw(server.address, "show jobs")


def test_store_queue_on_shutdown(tmp_path: Path, start_with_store: Callable[..., InProcessServer]) -> None:
    path = tmp_path / "queue.db"
    server = start_with_store(SQLiteStore(path), store_on_shutdown=True)
    with GearmanSocket(server.address) as client:
        client.submit("f", b"one", ptype=P.SUBMIT_JOB_BG)
        client.submit("f", b"two", unique="u2", ptype=P.SUBMIT_JOB_LOW_BG)
        probe = SQLiteStore(path)
        probe.open()
        assert list(probe.load()) == []  # nothing is written while running in this mode
    server.stop()
    assert sorted((job.data, job.priority) for job in probe.load()) == [(b"one", 1), (b"two", 2)]
    probe.close()
    again = start_with_store(SQLiteStore(path), store_on_shutdown=True)
    assert admin_raw(again.address, "status") == b"f\t2\t0\t0\n.\n"


class PickyStore(MemoryStore):
    """Refuses any batch holding a job whose payload is b"bad" (as a database refuses a value too large)."""

    def apply(self, adds: Sequence[StoredJob], removes: Sequence[Removal]) -> None:
        if any(job.data == b"bad" for job in adds):
            raise StoreError("value out of range")
        super().apply(adds, removes)


def test_a_refused_record_costs_only_its_own_job(start_with_store: Callable[..., InProcessServer]) -> None:
    store = PickyStore()
    server = start_with_store(store)
    with GearmanSocket(server.address) as client:
        for data in (b"good-1", b"bad", b"good-2"):
            client.send(P.SUBMIT_JOB_BG, b"f", b"", data)
        replies = [client.recv() for _ in range(3)]
        assert [reply.type for reply in replies] == [P.JOB_CREATED, P.ERROR, P.JOB_CREATED]
        assert replies[1].args == [b"QUEUE_ERROR", b"Job not stored: the store refused the record"]
        assert sorted(job.data for job in store.records.values()) == [b"good-1", b"good-2"]
        # The store is not considered down: the next submit is stored at once.
        client.submit("f", b"good-3", ptype=P.SUBMIT_JOB_BG)
    assert admin_raw(server.address, "status") == b"f\t3\t0\t0\n.\n"
