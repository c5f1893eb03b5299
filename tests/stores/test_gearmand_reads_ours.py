"""The way back: the real C gearmand starts on a queue geartrain wrote (MySQL, PostgreSQL, Redis) and has every job.

geartrain adds columns (SQL), side records and a counter (Redis) to gearmand's layout; this checks that gearmand
1.1.20 neither chokes on them nor loses a job (a Redis job hash with any field but data and priority stops it).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from databases import (
    MYSQL_URL,
    POSTGRES_URL,
    REDIS_URL,
    mysql_raw,
    postgres_raw,
    redis_raw,
    require_service,
    unique_name,
)
from geartrain.server.core.records import StoredJob, storage_key
from geartrain.store.url import open_store
from servers import admin, free_port, parse_status, require_program, wait_until

pytestmark = [pytest.mark.stores, pytest.mark.interop]

JOBS = [
    StoredJob(b"u1", b"f1", b"u1", 1, b"small"),
    StoredJob(b"u2", b"f1", b"u2", 0, b"\0" + b"x" * 300),  # > 64 bytes: Redis stores the hash unordered
    StoredJob(storage_key(b""), b"f2", b"", 2, b"no unique"),
    StoredJob(b"u3", b"f3", b"u3", 1, b"reduce me", 0, b"reducer"),
]


def _queue_args(kind: str, name: str) -> tuple[list[str], str]:
    """gearmand's flags and geartrain's store URL for one queue called `name`."""
    if kind == "mysql":
        url = urlsplit(MYSQL_URL)
        args = ["-q", "MySQL", "--mysql-host", url.hostname or "127.0.0.1", "--mysql-port", str(url.port or 3306),
                "--mysql-user", url.username or "root", "--mysql-password", url.password or "",
                "--mysql-db", url.path.lstrip("/"), "--mysql-table", name]  # fmt: skip
        return args, f"{MYSQL_URL}?table={name}"
    if kind == "postgres":
        url = urlsplit(POSTGRES_URL)
        conninfo = f"host={url.hostname} port={url.port or 5432} dbname={url.path.lstrip('/')} user={url.username}"
        return ["-q", "Postgres", "--libpq-conninfo", conninfo, "--libpq-table", name], f"{POSTGRES_URL}?table={name}"
    url = urlsplit(REDIS_URL)
    args = ["-q", "redis", "--redis-server", url.hostname or "127.0.0.1", "--redis-port", str(url.port or 6379),
            "--redis-prefix", name]  # fmt: skip
    # gearmand's redis queue always uses database 0; the fresh prefix keeps this test apart from anything there.
    return args, url._replace(path="/0", query=f"prefix={name}").geturl()


def _drop(kind: str, name: str) -> None:
    if kind == "redis":
        raw = redis_raw(db=0)
        try:
            for key in [*raw.scan_iter(match=f"{name}*"), *raw.scan_iter(match=f"gt:{name}*")]:
                raw.delete(key)
        finally:
            raw.close()
    else:
        with (mysql_raw if kind == "mysql" else postgres_raw)() as conn:
            conn.cursor().execute(f"DROP TABLE IF EXISTS {name}")


def _start_gearmand(queue_args: list[str], workdir: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log = workdir / "gearmand.log"
    command = [
        require_program("gearmand"),
        "--port", str(port),
        "--listen", "127.0.0.1",
        "--threads", "1",
        "--log-file", str(log),
        "--verbose", "WARNING",
        "--pid-file", str(workdir / "gearmand.pid"),
        "--config-file", os.devnull,  # no stray /etc/gearmand.conf
        *queue_args,
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    address = f"127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"gearmand exited ({proc.returncode}): {log.read_text(errors='replace')}")
        try:
            return admin(address, "version", timeout=1).startswith("OK")
        except OSError:
            return False

    try:
        wait_until(up, timeout=20, message="gearmand to replay the queue and listen")
    except BaseException:
        proc.kill()
        proc.wait(10)
        raise
    return proc, address, log


@pytest.mark.parametrize("kind", ["mysql", "postgres", "redis"])
def test_gearmand_replays_a_queue_geartrain_wrote(kind: str, tmp_path: Path) -> None:
    require_program("gearmand")
    require_service(kind)
    name = unique_name()
    args, url = _queue_args(kind, name)
    store = open_store(url)
    assert store is not None
    try:
        store.open()
        store.apply(JOBS, [])
        store.close()
        proc, address, log = _start_gearmand(args, tmp_path)
        try:
            status = parse_status(admin(address, "status"))
        finally:
            proc.terminate()
            proc.wait(10)
        assert {fn: row.total for fn, row in status.items()} == {"f1": 2, "f2": 1, "f3": 1}, log.read_text()
        # gearmand keeps stored jobs when it stops: the queue is still whole for geartrain.
        store.open()
        assert list(store.load()) == JOBS
    finally:
        store.close()
        _drop(kind, name)
