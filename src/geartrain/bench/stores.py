"""The persistent stores, side by side: each server started on the same database, and queues built in it directly.

A *location* names one queue: a file for SQLite, a table for MySQL and PostgreSQL, a key prefix for Redis. Both
servers are given the same kind of location (a fresh one per run) through their own flags: geartrain's ``--store``,
gearmand's ``-q``. :meth:`StoreKind.build` writes a queue of a given length straight into the database, in the
layout both servers read (geartrain's table, whose extra columns gearmand ignores; on Redis geartrain's record
beside gearmand's hash), so that a replay of a million jobs need not first be submitted through a server.

The database servers are the local ones (MariaDB root@127.0.0.1:3306/test, PostgreSQL postgres@127.0.0.1/test,
Redis 127.0.0.1:6379 db 0, as the tests use), or ``GEARTRAIN_BENCH_MYSQL`` / ``_POSTGRES`` / ``_REDIS`` URLs.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from geartrain.bench.replay import build_queue

KINDS = ("sqlite", "mysql", "postgres", "redis")
MYSQL_URL = os.environ.get("GEARTRAIN_BENCH_MYSQL", "mysql://root@127.0.0.1:3306/test")
POSTGRES_URL = os.environ.get("GEARTRAIN_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("GEARTRAIN_BENCH_REDIS", "redis://127.0.0.1:6379/0")  # gearmand's redis queue uses db 0


def fresh_location(kind: str, workdir: Path) -> str:
    return str(workdir / "queue.db") if kind == "sqlite" else f"gt_bench_{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class StoreKind:
    """One store kind, on the database it is measured on."""

    name: str

    def unavailable(self) -> str | None:
        """Why this store cannot be measured here (no driver, no server), or None."""
        if self.name == "sqlite":
            return None
        try:
            self.drop(fresh_location(self.name, Path()))
        except Exception as exc:  # an import error or any driver's connection error: reported, not raised
            return f"{self.name}: {type(exc).__name__}: {exc}"
        return None

    def geartrain_args(self, location: str) -> list[str]:
        if self.name == "sqlite":
            return ["--store", f"sqlite://{location}"]
        if self.name == "mysql":
            return ["--store", f"{MYSQL_URL}?table={location}"]
        if self.name == "postgres":
            return ["--store", f"{POSTGRES_URL}?table={location}"]
        return ["--store", f"{REDIS_URL}?prefix={location}"]

    def gearmand_args(self, location: str) -> list[str]:
        if self.name == "sqlite":
            return ["-q", "libsqlite3", "--libsqlite3-db", location]
        if self.name == "mysql":
            url = urlsplit(MYSQL_URL)
            args = ["-q", "MySQL", "--mysql-host", url.hostname or "127.0.0.1", "--mysql-port", str(url.port or 3306)]
            args += ["--mysql-user", unquote(url.username or "root"), "--mysql-db", url.path.lstrip("/")]
            if url.password:
                args += ["--mysql-password", unquote(url.password)]
            return [*args, "--mysql-table", location]
        if self.name == "postgres":
            url = urlsplit(POSTGRES_URL)
            conninfo = f"host={url.hostname} port={url.port or 5432} dbname={url.path.lstrip('/')}"
            conninfo += f" user={unquote(url.username or 'postgres')}"
            return ["-q", "Postgres", "--libpq-conninfo", conninfo, "--libpq-table", location]
        url = urlsplit(REDIS_URL)
        host, port = url.hostname or "127.0.0.1", str(url.port or 6379)
        return ["-q", "redis", "--redis-server", host, "--redis-port", port, "--redis-prefix", location]

    def build(self, location: str, jobs: int, function: str, payload_size: int = 100) -> None:
        """A queue of ``jobs`` background jobs for ``function`` (uniques ``<function>-<n>``), written directly."""
        if self.name == "sqlite":
            build_queue(Path(location), jobs, payload_size, function)
        elif self.name == "mysql":
            self._build_mysql(location, jobs, function, payload_size)
        elif self.name == "postgres":
            self._build_postgres(location, jobs, function, payload_size)
        else:
            self._build_redis(location, jobs, function, payload_size)

    def drop(self, location: str) -> None:
        """Remove the queue at ``location`` (nothing for SQLite: its file goes with the run's directory)."""
        if self.name == "mysql":
            conn = _mysql()
            try:
                with conn.cursor() as cur:
                    cur.execute(f"DROP TABLE IF EXISTS `{location}`")
            finally:
                conn.close()
        elif self.name == "postgres":
            with _postgres() as pg:
                pg.execute(f'DROP TABLE IF EXISTS "{location}"')
        elif self.name == "redis":
            client = _redis()
            try:
                for pattern in (f"{location}-*", f"gt:{location}*"):
                    keys = list(client.scan_iter(match=pattern, count=10_000))
                    for start in range(0, len(keys), 10_000):
                        client.delete(*keys[start : start + 10_000])
            finally:
                client.close()

    # ------------------------------------------------------------------ builders

    def _build_mysql(self, table: str, jobs: int, function: str, payload_size: int) -> None:
        from geartrain.store.mysql import MySQLStore

        url = urlsplit(MYSQL_URL)
        store = MySQLStore(
            url.hostname or "127.0.0.1",
            url.port or 3306,
            unquote(url.username or "root"),
            unquote(url.password or ""),
            url.path.lstrip("/"),
            table,
        )
        store.open()  # geartrain's table: gearmand's columns and ours
        store.close()
        digits = "(SELECT 0 n UNION ALL " + " UNION ALL ".join(f"SELECT {i}" for i in range(1, 10)) + ")"
        places = max(1, len(str(max(jobs - 1, 1))))
        joins = ", ".join(f"{digits} d{i}" for i in range(places))
        number = " + ".join(f"d{i}.n * {10**i}" for i in range(places))
        conn = _mysql()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    f"INSERT INTO `{table}` (unique_key, function_name, priority, data, when_to_run) "
                    f"SELECT CONCAT(%s, {number}), %s, ({number}) %% 3, REPEAT('x', %s), 0 FROM {joins} "
                    f"WHERE {number} < %s ORDER BY {number}",
                    (f"{function}-", function, payload_size, jobs),
                )
        finally:
            conn.close()

    def _build_postgres(self, table: str, jobs: int, function: str, payload_size: int) -> None:
        from geartrain.store.postgres import PostgresStore

        store = PostgresStore(POSTGRES_URL, table)
        store.open()
        store.close()
        with _postgres() as pg:
            pg.execute(
                f'INSERT INTO "{table}" (unique_key, function_name, priority, data, when_to_run) '
                "SELECT %s || g, %s, g %% 3, convert_to(repeat('x', %s), 'UTF8'), 0 "
                "FROM generate_series(0, %s) g ORDER BY g",
                (f"{function}-", function, payload_size, jobs - 1),
            )

    def _build_redis(self, prefix: str, jobs: int, function: str, payload_size: int) -> None:
        payload = b"x" * payload_size
        digest = hashlib.blake2b(payload, digest_size=8).digest()  # geartrain's check that the record is its own
        script = """
            local prefix, fn, data, digest = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
            local first, last = tonumber(ARGV[5]), tonumber(ARGV[6])
            for n = first, last do
                local unique = fn .. '-' .. n
                local key = prefix .. '-' .. fn .. '-' .. unique
                redis.call('HSET', key, 'data', data, 'priority', n % 3)
                redis.call('HSET', 'gt:' .. key, 'function', fn, 'key', unique, 'seq', n + 1, 'when', 0,
                           'digest', digest)
            end
            return last
        """
        client = _redis()
        try:
            for first in range(0, jobs, 100_000):  # a script blocks Redis while it runs: in pieces
                last = min(first + 100_000, jobs) - 1
                client.eval(script, 0, prefix, function, payload, digest, first, last)
            client.set(f"gt:{prefix}:seq", jobs)
        finally:
            client.close()


def _mysql() -> Any:
    import pymysql

    url = urlsplit(MYSQL_URL)
    return pymysql.connect(
        host=url.hostname or "127.0.0.1",
        port=url.port or 3306,
        user=unquote(url.username or "root"),
        password=unquote(url.password or ""),
        database=url.path.lstrip("/"),
        autocommit=True,
        connect_timeout=3,
    )


def _postgres() -> Any:
    import psycopg

    return psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)


def _redis() -> Any:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    client.ping()
    return client
