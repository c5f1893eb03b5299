"""A real geartrain server on each real store: kill -9 mid-stream, database outage, takeover from gearmand."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from crash import ServerProcess, crash_and_recover
from databases import BACKENDS, Backend, redis_raw, require_service
from geartrain.protocol.packets import PacketType as P
from proxy import CuttableProxy
from servers import GearmanSocket, admin_raw, free_port, require_program, wait_until

DURABLE_STORES = ("sqlite", "mysql", "postgres", "redis")


@pytest.fixture(params=DURABLE_STORES)
def durable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param != "sqlite":
        require_service(request.param)
    yield from BACKENDS[request.param](tmp_path)


@pytest.fixture(params=("mysql", "postgres", "redis"))
def server_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    require_service(request.param)
    yield from BACKENDS[request.param](tmp_path)


def test_kill_9_mid_stream_loses_no_acknowledged_job(durable: Backend) -> None:
    report = crash_and_recover(durable.url, jobs=10_000)
    print(durable.name, report)
    assert report["acknowledged"] > 0


def _through(url: str, proxy: CuttableProxy) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host).geturl()


@pytest.mark.parametrize("ack", ["all", "submits"])
def test_a_workers_next_job_waits_for_the_deletion_unless_store_ack_submits(server_store: Backend, ack: str) -> None:
    """The database hangs (a stalled link) as a worker finishes a stored job: by default its next job is held until
    the deletion has committed; with --store-ack submits it comes at once, and the deletion follows."""
    target = urlsplit(server_store.url)
    proxy = CuttableProxy(target.hostname or "127.0.0.1", target.port or 0)
    server = ServerProcess(_through(server_store.url, proxy), "--store-ack", ack)
    try:
        with GearmanSocket(server.address, timeout=30) as client, GearmanSocket(server.address, timeout=30) as worker:
            handles = [client.submit("ack", f"job-{i}".encode(), ptype=P.SUBMIT_JOB_BG) for i in range(2)]
            worker.send(P.CAN_DO, b"ack")
            first = worker.request(P.GRAB_JOB, reply=P.JOB_ASSIGN)
            proxy.stall()
            worker.send(P.WORK_COMPLETE, first.args[0], b"")
            worker.send(P.GRAB_JOB)
            if ack == "all":
                with pytest.raises(TimeoutError):  # nothing, while the deletion cannot commit
                    worker.recv(timeout=1.0)
                proxy.stall(False)
            second = worker.expect(P.JOB_ASSIGN)
            assert [first.args[0], second.args[0]] == [h.encode() for h in handles]
            proxy.stall(False)
            worker.send(P.WORK_COMPLETE, second.args[0], b"")
            worker.request(P.GRAB_JOB, reply=P.NO_JOB)

        def deleted() -> bool:
            store = server_store.make()
            store.open()
            try:
                return not list(store.load())
            finally:
                store.close()

        wait_until(deleted, timeout=30, message="the deletions to reach the database")
    finally:
        server.stop()
        proxy.close()


def test_database_outage_gives_queue_error_and_recovers(server_store: Backend) -> None:
    target = urlsplit(server_store.url)
    proxy = CuttableProxy(target.hostname or "127.0.0.1", target.port or 0)
    server = ServerProcess(_through(server_store.url, proxy))
    try:
        with GearmanSocket(server.address, timeout=30) as client, GearmanSocket(server.address, timeout=30) as worker:
            before = [client.submit("out", f"before-{i}".encode(), ptype=P.SUBMIT_JOB_BG) for i in range(5)]
            proxy.cut()
            client.send(P.SUBMIT_JOB_BG, b"out", b"", b"during")
            error = client.expect(P.ERROR)
            assert error.args[0] == b"QUEUE_ERROR" and error.args[1].startswith(b"Job not stored: ")
            # Jobs already in memory keep flowing to workers while the database is away.
            worker.send(P.CAN_DO, b"out")
            job = worker.request(P.GRAB_JOB, reply=P.JOB_ASSIGN)
            assert job.args[0] == before[0].encode()
            worker.send(P.WORK_COMPLETE, job.args[0], b"")
            proxy.restore()

            def stored_again() -> bool:
                client.send(P.SUBMIT_JOB_BG, b"out", b"", b"after")
                return client.recv().type == P.JOB_CREATED

            wait_until(stored_again, timeout=30, message="the store to come back")
        server.stop()
        # After a restart: the four jobs never run plus "after"; the one finished during the outage was deleted
        # once the database came back (its deletion was kept and retried).
        restarted = ServerProcess(_through(server_store.url, proxy))
        try:
            assert admin_raw(restarted.address, "status") == b"out\t5\t0\t0\n.\n"
        finally:
            restarted.stop()
    finally:
        server.stop()
        proxy.close()


def _gearmand_queue_args(backend: Backend) -> list[str]:
    parts = urlsplit(backend.url)
    if backend.name == "mysql":
        return [
            "-q",
            "MySQL",
            "--mysql-host",
            parts.hostname or "127.0.0.1",
            "--mysql-port",
            str(parts.port or 3306),
            "--mysql-user",
            parts.username or "root",
            "--mysql-password",
            parts.password or "",
            "--mysql-db",
            parts.path.lstrip("/"),
            "--mysql-table",
            backend.table,
        ]
    if backend.name == "postgres":
        conninfo = (
            f"host={parts.hostname} port={parts.port or 5432} dbname={parts.path.lstrip('/')} "
            f"user={parts.username or 'postgres'}"
        )
        return ["-q", "Postgres", "--libpq-conninfo", conninfo, "--libpq-table", backend.table]
    return [
        "-q",
        "redis",
        "--redis-server",
        parts.hostname or "127.0.0.1",
        "--redis-port",
        str(parts.port or 6379),
        "--redis-prefix",
        backend.table,
    ]


@pytest.fixture
def gearmand_store(server_store: Backend) -> Iterator[Backend]:
    """The store on a database gearmand can use too: its redis queue only knows database 0."""
    if server_store.name != "redis":
        yield server_store
        return
    url = urlsplit(server_store.url)._replace(path="/0").geturl()
    try:
        yield replace(server_store, url=url)
    finally:
        raw = redis_raw(db=0)
        try:
            for pattern in (f"{server_store.table}*", f"gt:{server_store.table}*"):
                for key in raw.scan_iter(match=pattern, count=1000):
                    raw.delete(key)
        finally:
            raw.close()


def test_takeover_of_a_gearmand_queue(gearmand_store: Backend) -> None:
    server_store = gearmand_store
    gearmand = require_program("gearmand")
    port = free_port()
    proc = subprocess.Popen(
        [
            gearmand,
            "--port",
            str(port),
            "--listen",
            "127.0.0.1",
            "--log-file",
            "none",
            "--threads",
            "1",
            "--config-file",
            "/dev/null",
            *_gearmand_queue_args(server_store),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    address = f"127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(address, proc), timeout=30, message="gearmand start")
        with GearmanSocket(address) as client:
            for index, (ptype, data) in enumerate(
                [(P.SUBMIT_JOB_LOW_BG, b"low"), (P.SUBMIT_JOB_BG, b"normal"), (P.SUBMIT_JOB_HIGH_BG, b"high")]
            ):
                client.request(ptype, b"takeover", f"u{index}".encode(), data, reply=P.JOB_CREATED)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    server = ServerProcess(server_store.url)
    try:
        assert admin_raw(server.address, "status") == b"takeover\t3\t0\t0\n.\n"
        with GearmanSocket(server.address) as worker:
            worker.send(P.CAN_DO, b"takeover")
            ran = []
            for _ in range(3):
                job = worker.request(P.GRAB_JOB, reply=P.JOB_ASSIGN)
                ran.append(job.args[2])
                worker.send(P.WORK_COMPLETE, job.args[0], b"")
            assert ran == [b"high", b"normal", b"low"]
            worker.sync()
    finally:
        server.stop()
    again = ServerProcess(server_store.url)
    try:
        assert admin_raw(again.address, "status") in (b".\n", b"takeover\t0\t0\t0\n.\n")
    finally:
        again.stop()


def _answers(address: str, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"gearmand exited: {proc.stderr.read().decode() if proc.stderr else ''}")
    try:
        return admin_raw(address, "version", timeout=1).startswith(b"OK")
    except OSError:
        return False
