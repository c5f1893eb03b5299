"""Fixtures for the store contract: every store, each test on a table or key prefix of its own, dropped afterwards.

The database servers are the machine's own (CI runs on a machine that has them):
MariaDB/MySQL ``GEARTRAIN_TEST_MYSQL`` (default mysql://root@127.0.0.1:3306/test), PostgreSQL
``GEARTRAIN_TEST_POSTGRES`` (default postgresql://postgres@127.0.0.1:5432/test), Redis ``GEARTRAIN_TEST_REDIS``
(default redis://127.0.0.1:6379/13; every test uses a fresh key prefix too). A server that cannot be reached skips
its tests, or fails them when ``CI`` is set (the project's rule for everything a test needs from outside).
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from geartrain.store.base import QueueStore
from geartrain.store.memory import MemoryStore
from geartrain.store.url import open_store

MYSQL_URL = os.environ.get("GEARTRAIN_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")
POSTGRES_URL = os.environ.get("GEARTRAIN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("GEARTRAIN_TEST_REDIS", "redis://127.0.0.1:6379/13")
STORES = ("memory", "sqlite", "mysql", "postgres", "redis")
SERVER_STORES = ("mysql", "postgres", "redis")
PROBE_TIMEOUT = 3


# --------------------------------------------------------------------------------------------------------------
# Raw connections, for what the stores themselves do not offer (dropping tables, killing connections, gearmand).


def mysql_raw() -> Any:
    import pymysql

    url = urlsplit(MYSQL_URL)
    return pymysql.connect(
        host=url.hostname or "127.0.0.1",
        port=url.port or 3306,
        user=unquote(url.username or "root"),
        password=unquote(url.password or ""),
        database=url.path.lstrip("/"),
        autocommit=True,
        charset="utf8mb4",
        connect_timeout=PROBE_TIMEOUT,
    )


def postgres_raw() -> Any:
    import psycopg

    return psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=PROBE_TIMEOUT)


def redis_raw(db: int | None = None) -> Any:
    import redis

    url = REDIS_URL if db is None else urlsplit(REDIS_URL)._replace(path=f"/{db}").geturl()
    return redis.Redis.from_url(url, socket_connect_timeout=PROBE_TIMEOUT, socket_timeout=30)


_RAW: dict[str, Callable[[], Any]] = {"mysql": mysql_raw, "postgres": postgres_raw, "redis": redis_raw}
_EXTRAS = {"mysql": "pymysql", "postgres": "psycopg", "redis": "redis"}


@functools.cache
def _unreachable(name: str) -> str | None:
    """Why the `name` server cannot be used, or None if it can (asked once per test run)."""
    try:
        conn = _RAW[name]()
    except ImportError as exc:
        return f"{name} store tests need the driver {_EXTRAS[name]!r}: pip install 'geartrain[{name}]' ({exc})"
    except Exception as exc:
        return f"{name} server unreachable: {type(exc).__name__}: {exc}"
    try:
        if name == "redis":
            conn.ping()
    except Exception as exc:
        return f"{name} server unreachable: {type(exc).__name__}: {exc}"
    finally:
        conn.close()
    return None


def require_service(name: str) -> None:
    """Skip the test when the `name` database server (mysql, postgres, redis) cannot be used; fail if CI is set."""
    reason = _unreachable(name)
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so a missing service is an error)", pytrace=False)
    pytest.skip(reason)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


# --------------------------------------------------------------------------------------------------------------
# Backends.


@dataclass
class Backend:
    """One store under test: `make()` builds a store object on this test's table or prefix (not opened)."""

    name: str
    make: Callable[[], QueueStore]
    table: str
    #: The store's URL (``--store``), for tests that start a server on it.
    url: str
    #: Drops the store's connection from the server's side (None: the store has no server).
    kill: Callable[[QueueStore], None] | None = None
    #: Whether the table (or key space) exists (None: nothing to look at).
    table_exists: Callable[[], bool] | None = None


def unique_name() -> str:
    return f"gt_test_{uuid.uuid4().hex[:12]}"


def _with_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + "&".join(f"{key}={value}" for key, value in params.items())


def _mysql_kill(store: Any) -> None:
    thread_id = store._conn.thread_id()
    with mysql_raw() as conn, conn.cursor() as cur:
        cur.execute(f"KILL {int(thread_id)}")

        def gone() -> bool:
            cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s", (thread_id,))
            return int(cur.fetchone()[0]) == 0

        wait_for(gone, "MySQL to drop the killed connection")


def _postgres_kill(table: str) -> Callable[[QueueStore], None]:
    def kill(store: QueueStore) -> None:
        with postgres_raw() as conn:
            query = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s"
            assert conn.execute(query, (table,)).fetchall(), "the store's backend was not found"
            count = "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = %s"
            wait_for(lambda: conn.execute(count, (table,)).fetchone()[0] == 0, "the backend to exit")

    return kill


def _redis_kill(store: Any) -> None:
    client_id = store._client.client_id()
    raw = redis_raw()
    try:
        raw.execute_command("CLIENT", "KILL", "ID", client_id)
        wait_for(lambda: not raw.execute_command("CLIENT", "LIST", "ID", client_id), "Redis to drop the client")
    finally:
        raw.close()


def _memory(tmp_path: Path) -> Iterator[Backend]:
    store = MemoryStore()  # the "same table" is the same object: its records are all there is
    yield Backend("memory", lambda: store, "memory", "memory")


def _sqlite(tmp_path: Path) -> Iterator[Backend]:
    table = unique_name()
    url = f"sqlite://{tmp_path / 'queue.db'}?table={table}"

    def exists() -> bool:
        import sqlite3

        with sqlite3.connect(tmp_path / "queue.db") as db:
            return db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone() is not None

    yield Backend("sqlite", lambda: _open_url(url), table, url, None, exists)


def _mysql(tmp_path: Path) -> Iterator[Backend]:
    table = unique_name()
    url = _with_query(MYSQL_URL, table=table)

    def exists() -> bool:
        with mysql_raw() as conn, conn.cursor() as cur:
            return bool(cur.execute("SHOW TABLES LIKE %s", (table,)))

    try:
        yield Backend("mysql", lambda: _open_url(url), table, url, _mysql_kill, exists)
    finally:
        with mysql_raw() as conn, conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS `{table}`")
            if cur.execute("SHOW TABLES LIKE 'geartrain_owner'"):
                cur.execute("DELETE FROM geartrain_owner WHERE queue = %s", (table,))


def _postgres(tmp_path: Path) -> Iterator[Backend]:
    table = unique_name()
    url = _with_query(POSTGRES_URL, table=table, application_name=table)  # how kill() finds the connection

    def exists() -> bool:
        with postgres_raw() as conn:
            return conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is not None

    try:
        yield Backend("postgres", lambda: _open_url(url), table, url, _postgres_kill(table), exists)
    finally:
        with postgres_raw() as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')
            if conn.execute("SELECT to_regclass('geartrain_owner')").fetchone()[0] is not None:
                conn.execute("DELETE FROM geartrain_owner WHERE queue = %s", (table,))


def _redis(tmp_path: Path) -> Iterator[Backend]:
    prefix = unique_name()
    url = _with_query(REDIS_URL, prefix=prefix)
    try:
        yield Backend("redis", lambda: _open_url(url), prefix, url, _redis_kill, None)
    finally:
        raw = redis_raw()
        try:
            for pattern in (f"{prefix}*", f"gt:{prefix}*"):
                for key in raw.scan_iter(match=pattern, count=1000):
                    raw.delete(key)
        finally:
            raw.close()


def _open_url(url: str) -> QueueStore:
    store = open_store(url)
    assert store is not None
    return store


BACKENDS: dict[str, Callable[[Path], Iterator[Backend]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "mysql": _mysql,
    "postgres": _postgres,
    "redis": _redis,
}
