"""A store outage in the middle of a stream of submits and completions, on a real SQLite file.

tests/stores/test_server_on_store.py cuts real database servers between single requests; here the outage hits
while a submitter and a worker run flat out. Every submit is answered (JOB_CREATED or QUEUE_ERROR), every
acknowledged job runs to the end, refused ones leave nothing behind, and the deletions the outage held up are
applied once the store is back: after the stop the database is empty.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from geartrain.protocol.packets import PacketType as P
from geartrain.server.core.records import Removal, StoredJob
from geartrain.store.base import StoreUnavailable
from geartrain.store.sqlite import SQLiteStore
from inprocess import InProcessServer, make_config
from servers import GearmanSocket, admin, encode_req, parse_status, wait_until

JOBS = 3000
WINDOW = 100


class FlakySQLiteStore(SQLiteStore):
    """SQLite whose "server" can be switched off: every call raises StoreUnavailable meanwhile."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.available = True

    def open(self) -> None:
        if not self.available:
            raise StoreUnavailable("simulated outage")
        super().open()

    def apply(self, adds: Sequence[StoredJob], removes: Sequence[Removal]) -> None:
        if not self.available:
            raise StoreUnavailable("simulated outage")
        super().apply(adds, removes)


class Ledger:
    def __init__(self) -> None:
        self.acknowledged: set[bytes] = set()
        self.refused: set[bytes] = set()
        self.completed: set[bytes] = set()
        self.errors: list[str] = []


def _submit_all(address: str, uniques: list[bytes], ledger: Ledger) -> None:
    try:
        with GearmanSocket(address, timeout=30) as client:
            in_flight: list[bytes] = []
            for unique in uniques:
                client.send(P.SUBMIT_JOB_BG, b"stream", unique, unique)
                in_flight.append(unique)
                while len(in_flight) >= WINDOW or (unique is uniques[-1] and in_flight):
                    reply = client.recv()  # replies come in request order
                    if reply.type == P.JOB_CREATED:
                        ledger.acknowledged.add(in_flight.pop(0))
                    elif reply.type == P.ERROR and reply.args[0] == b"QUEUE_ERROR":
                        ledger.refused.add(in_flight.pop(0))
                    else:
                        raise AssertionError(f"unexpected reply {reply}")
    except Exception as error:
        ledger.errors.append(repr(error))


def _work(address: str, ledger: Ledger, stop: threading.Event) -> None:
    try:
        with GearmanSocket(address, timeout=30) as worker:
            worker.send(P.CAN_DO, b"stream")
            pending = b""
            while not stop.is_set():
                worker.sock.sendall(pending + encode_req(P.GRAB_JOB_UNIQ))
                pending = b""
                reply = worker.recv()
                if reply.type == P.NO_JOB:
                    stop.wait(0.01)
                    continue
                handle, _, unique, _ = reply.body.split(b"\0", 3)
                ledger.completed.add(unique)
                pending = encode_req(P.WORK_COMPLETE, handle, b"")
            if pending:
                worker.sock.sendall(pending)
                worker.sync()
    except Exception as error:
        ledger.errors.append(repr(error))


def test_store_outage_under_load_loses_nothing_acknowledged_and_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    store = FlakySQLiteStore(path)
    server = InProcessServer(make_config(), store).start()
    ledger = Ledger()
    stop = threading.Event()
    uniques = [f"job-{i}".encode() for i in range(JOBS)]
    try:
        submitter = threading.Thread(target=_submit_all, args=(server.address, uniques, ledger))
        worker = threading.Thread(target=_work, args=(server.address, ledger, stop))
        submitter.start()
        worker.start()
        wait_until(lambda: len(ledger.acknowledged) >= JOBS // 5 or ledger.errors, message="the stream to flow")
        store.available = False
        wait_until(lambda: len(ledger.refused) >= 50 or ledger.errors, message="submits refused during the outage")
        store.available = True
        submitter.join(60)
        assert not ledger.errors, ledger.errors
        wait_until(lambda: ledger.acknowledged <= ledger.completed, timeout=60, message="every acknowledged job run")
        stop.set()
        worker.join(30)
        assert not ledger.errors, ledger.errors
        assert ledger.acknowledged | ledger.refused == set(uniques)  # every submit got one answer
        assert ledger.refused and not ledger.refused & ledger.completed  # a refused job does not exist
        assert all(row.total == 0 for row in parse_status(admin(server.address, "status")).values())
    finally:
        stop.set()
        server.stop()
    probe = SQLiteStore(path)
    probe.open()
    try:
        left = [job.unique for job in probe.load()]
    finally:
        probe.close()
    assert left == [], f"{len(left)} finished jobs still stored, e.g. {left[:3]}"
