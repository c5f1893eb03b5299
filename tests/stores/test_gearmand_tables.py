"""Sharing tables with gearmand: a table gearmand created and filled (its exact original schema, its own INSERTs) is
read correctly, and once geartrain has added its columns, gearmand's statements still work on it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from databases import MYSQL_URL, POSTGRES_URL, mysql_raw, postgres_raw, require_service, unique_name
from geartrain.server.core.records import Removal, StoredJob
from geartrain.store.base import QueueStore, StoreError
from geartrain.store.url import open_store

pytestmark = pytest.mark.stores

# Rows as gearmand 1.1.20 leaves them after three background submits and one without a unique (gearmand.md, §4).
GEARMAND_ROWS = [
    ("u1", "f", 1, b"bg1", 0),
    ("u2", "f", 0, b"bg2", 0),
    ("u3", "f", 1, b"ep", 1795393768),
    ("", "f", 1, b"nouniq2", 0),
]
# gearmand 1.1.20's statement after its snprintf (GEARMAN_UNIQUE_SIZE is 64): no charset, no collation given.
GEARMAND_MYSQL_CREATE = (
    "CREATE TABLE {t}(unique_key VARCHAR(64),function_name VARCHAR(255),priority INT,data LONGBLOB,"
    "when_to_run INT,unique key (unique_key, function_name))"
)
GEARMAND_SELECT = "SELECT unique_key, function_name, data, priority, when_to_run FROM {t}"  # its replay query


@dataclass
class Sql:
    """One SQL database as gearmand uses it: its CREATE TABLE and INSERT, and a raw way to run statements."""

    name: str
    create: str
    insert: str
    run: Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]
    store_url: str
    table: str


def _sqlite(tmp_path: Path) -> Iterator[Sql]:
    path = tmp_path / "gearmand.db"
    table = unique_name()

    def run(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with sqlite3.connect(path) as db:
            return db.execute(sql.replace("%s", "?"), params).fetchall()

    yield Sql(
        "sqlite",
        "CREATE TABLE {t} ( unique_key TEXT, function_name TEXT, priority INTEGER, data BLOB, when_to_run INTEGER, "
        "PRIMARY KEY (unique_key, function_name))",
        "INSERT OR REPLACE INTO {t} (unique_key, function_name, priority, data, when_to_run) VALUES (%s,%s,%s,%s,%s)",
        run,
        f"sqlite://{path}?table={table}",
        table,
    )


def _mysql(tmp_path: Path) -> Iterator[Sql]:
    require_service("mysql")
    table = unique_name()

    def run(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with mysql_raw() as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    try:
        yield Sql(
            "mysql",
            GEARMAND_MYSQL_CREATE,
            "INSERT INTO {t} (unique_key, function_name, priority, data, when_to_run) VALUES(%s, %s, %s, %s, %s)",
            run,
            f"{MYSQL_URL}?table={table}",
            table,
        )
    finally:
        run(f"DROP TABLE IF EXISTS {table}")


def _postgres(tmp_path: Path) -> Iterator[Sql]:
    require_service("postgres")
    table = unique_name()

    def run(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with postgres_raw() as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    try:
        yield Sql(
            "postgres",
            "CREATE TABLE IF NOT EXISTS {t} (unique_key VARCHAR(64), function_name VARCHAR(255), priority INTEGER, "
            "data BYTEA, when_to_run INTEGER, UNIQUE (unique_key, function_name))",
            "INSERT INTO {t} (unique_key, function_name, priority, data, when_to_run) VALUES(%s,%s,%s,%s::BYTEA,%s)",
            run,
            f"{POSTGRES_URL}?table={table}",
            table,
        )
    finally:
        run(f"DROP TABLE IF EXISTS {table}")


_DATABASES = {"sqlite": _sqlite, "mysql": _mysql, "postgres": _postgres}


@pytest.fixture(params=list(_DATABASES))
def sql(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Sql]:
    yield from _DATABASES[request.param](tmp_path)


def _store(sql: Sql) -> QueueStore:
    store = open_store(sql.store_url)
    assert store is not None
    store.open()
    return store


def _as_stored(row: tuple[str, str, int, bytes, int]) -> StoredJob:
    unique, function, priority, data, when = row
    return StoredJob(unique.encode(), function.encode(), unique.encode(), priority, data, when)


def test_a_table_gearmand_wrote_is_taken_over(sql: Sql) -> None:
    sql.run(sql.create.format(t=sql.table), ())
    for row in GEARMAND_ROWS:
        sql.run(sql.insert.format(t=sql.table), row)
    store = _store(sql)
    try:
        assert list(store.load()) == [_as_stored(row) for row in GEARMAND_ROWS]
        store.apply([], [Removal(b"u2", b"f"), Removal(b"", b"f")])  # done, as gearmand's DELETE would
        assert list(store.load()) == [_as_stored(GEARMAND_ROWS[0]), _as_stored(GEARMAND_ROWS[2])]
    finally:
        store.close()


def test_gearmand_still_reads_and_writes_the_upgraded_table(sql: Sql) -> None:
    sql.run(sql.create.format(t=sql.table), ())
    sql.run(sql.insert.format(t=sql.table), GEARMAND_ROWS[0])
    store = _store(sql)
    try:
        ours = [
            StoredJob(b"gt:empty:1", "größe".encode(), b"", 0, b"\0\xff", 0, b"reducer"),
            StoredJob(b"k", b"\xff\xfebin", b"k", 2, b"x", 12, None),
        ]
        store.apply(ours, [])
        rows = sql.run(GEARMAND_SELECT.format(t=sql.table), ())
        by_key = {(row[0], row[1]): row for row in rows}
        assert tuple(by_key[("u1", "f")]) == ("u1", "f", b"bg1", 1, 0)
        # A UTF-8 name is stored as plain text, so gearmand gets exactly the name the client sent.
        assert tuple(by_key[("gt:empty:1", "größe")][2:]) == (b"\0\xff", 0, 0)
        assert len(rows) == 3
        # gearmand's INSERT names only its own five columns: the added ones take their defaults.
        sql.run(sql.insert.format(t=sql.table), ("late", "f", 1, b"gearmand again", 0))
        assert [job.key for job in store.load()] == [b"u1", b"gt:empty:1", b"k", b"late"]
    finally:
        store.close()


def test_the_key_columns_compare_bytes_exactly() -> None:
    """MySQL: gearmand's default collation is case- and accent-insensitive; geartrain switches the key columns."""
    require_service("mysql")
    table = unique_name()
    with mysql_raw() as conn, conn.cursor() as cur:
        cur.execute(GEARMAND_MYSQL_CREATE.format(t=table))
        try:
            store = open_store(f"{MYSQL_URL}?table={table}")
            assert store is not None
            store.open()
            try:
                jobs = [
                    StoredJob(key, fn, key, 1, b"") for key, fn in [(b"a", b"e"), (b"A", b"\xc3\xa9"), (b"a ", b"e")]
                ]
                store.apply(jobs, [])
                assert list(store.load()) == jobs
            finally:
                store.close()
            cur.execute(
                "SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                "AND TABLE_NAME = %s AND COLUMN_NAME = 'function_name'",
                (table,),
            )
            assert cur.fetchone()[0].endswith("_bin")
        finally:
            cur.execute(f"DROP TABLE IF EXISTS {table}")


@pytest.mark.parametrize(
    "url",
    ["sqlite:///tmp/x.db?table=a;b", "mysql://root@h/db?table=a%60b", "postgresql://h/db?table=a%22b"],
)
def test_table_names_are_checked(url: str) -> None:
    with pytest.raises(StoreError, match="invalid table name"):
        open_store(url)
