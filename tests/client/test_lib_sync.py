"""The blocking wrappers: SyncClient, SyncWorker and SyncAdminClient, used from plain threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from geartrain import (
    GearmanTimeout,
    JobException,
    JobFailed,
    SyncAdminClient,
    SyncClient,
    SyncWorker,
    ThreadJob,
    WorkComplete,
    WorkData,
    WorkStatus,
)
from servers import GearmanServer, wait_until


def reverse(job: ThreadJob) -> bytes:
    return job.data[::-1]


def chatty(job: ThreadJob) -> bytes:
    job.send_data(b"one")
    job.send_status(1, 2)
    job.send_data(b"two")
    return b"done"


def fails(job: ThreadJob) -> bytes:
    raise JobFailed()


def raises(job: ThreadJob) -> bytes:
    raise KeyError("missing")


@pytest.fixture
def sync_worker(gearman_server: GearmanServer) -> Iterator[SyncWorker]:
    worker = SyncWorker(gearman_server.address, concurrency=2, exceptions=True, client_id="sync-worker")
    for name, fn in (("reverse", reverse), ("chatty", chatty), ("fails", fails), ("raises", raises)):
        worker.register(name, fn)
    thread = threading.Thread(target=worker.work, name="sync-worker")
    thread.start()
    wait_until(lambda: worker.connected, message="the sync worker to connect")
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(15)
        assert not thread.is_alive()


def test_sync_client_and_worker(gearman_server: GearmanServer, sync_worker: SyncWorker) -> None:
    with SyncClient(gearman_server.address) as client:
        assert client.do("reverse", "hello") == b"olleh"
        job = client.submit("chatty", b"")
        assert list(job) == [WorkData(b"one"), WorkStatus(1, 2), WorkData(b"two"), WorkComplete(b"done")]
        assert job.result() == b"done" and job.done() and job.handle
        assert job.status == WorkStatus(1, 2)
        with pytest.raises(JobFailed):
            client.do("fails")
        with pytest.raises(JobException, match="KeyError"):
            client.do("raises")
        background = client.submit("reverse", b"bg", background=True, unique="sync-bg")
        assert background.result() == b""
        status = client.get_status(background)
        assert status.handle == background.handle
        assert client.get_status_unique("no-such").known is False
        assert client.echo(b"sync echo") == b"sync echo"
        with pytest.raises(GearmanTimeout):
            client.do("nobody-serves-this", timeout=0.1)
        assert client.echo(b"still fine") == b"still fine"
    assert sync_worker.jobs_done >= 4


def test_sync_worker_registers_while_running(gearman_server: GearmanServer, sync_worker: SyncWorker) -> None:
    sync_worker.register("late", lambda job: b"registered late")
    with SyncClient(gearman_server.address) as client:
        assert client.do("late") == b"registered late"


def test_sync_worker_stop_before_work(gearman_server: GearmanServer) -> None:
    worker = SyncWorker(gearman_server.address)
    worker.register("reverse", reverse)
    worker.stop()
    worker.work()  # returns at once


def test_sync_admin_client(gearman_server: GearmanServer, sync_worker: SyncWorker) -> None:
    with SyncAdminClient(gearman_server.address) as admin:
        assert admin.getpid() == gearman_server.pid
        assert admin.version().startswith("1.1.20")
        status = {row.name: row for row in admin.status()}
        assert status["reverse"].workers == 1
        [row] = [row for row in admin.workers() if row.client_id == "sync-worker"]
        assert set(row.functions) == {"reverse", "chatty", "fails", "raises"}
        assert admin.show_jobs() == []
        assert admin.show_unique_jobs() == []
        assert admin.priority_status()
        admin.create_function("sync-made")
        admin.maxqueue("sync-made", 3)
        admin.drop_function("sync-made")
        assert admin.cancel_job("H:nothing:1") is False
