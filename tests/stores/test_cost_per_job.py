"""A finished job costs its store the same whatever the queue's length: measured by the database, not by a clock.

Each store's table is filled to 1,000 and to 100,000 queued jobs, and the work of storing and deleting ten more is
read from the database itself: MariaDB/MySQL's handler counters (rows read), PostgreSQL's and SQLite's query plans
(an index lookup, never a scan of the table), Redis's command counts. A statement that scans the queue, like the
row-constructor DELETE that made MariaDB read every row for each finished job, fails here.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from databases import Backend, mysql_raw, postgres_raw, redis_raw, require_service
from geartrain.server.core.records import Removal, StoredJob
from geartrain.store.base import QueueStore

pytestmark = pytest.mark.stores

SMALL, LARGE = 1_000, 100_000
PROBES = 10


def probes(round_: int) -> list[StoredJob]:
    return [StoredJob(b"probe-%d-%d" % (round_, i), b"f", b"probe-%d-%d" % (round_, i), 1, b"x") for i in range(PROBES)]


def removals(jobs: list[StoredJob]) -> list[Removal]:
    return [Removal(j.key, j.function) for j in jobs]


@pytest.fixture
def backend_factory(tmp_path: Any) -> Any:
    """``make(name)``: that store's backend and an opened store on a table of its own; all cleaned up after."""
    from databases import BACKENDS

    opened: list[Any] = []

    def make(name: str) -> tuple[Backend, QueueStore]:
        if name != "sqlite":
            require_service(name)
        generator = BACKENDS[name](tmp_path)
        backend = next(generator)
        store = backend.make()
        store.open()
        opened.append((generator, store))
        return backend, store

    yield make
    for generator, store in opened:
        store.close()
        for _ in generator:  # runs the backend's clean-up
            pass


# --------------------------------------------------------------------------------------------------------------
# Filling a table to a given length, on the database's side (fast, and the same rows gearmand would hold).


def fill_mysql(table: str, count: int) -> None:
    digits = "(SELECT 0 n UNION ALL " + " UNION ALL ".join(f"SELECT {i}" for i in range(1, 10)) + ")"
    joins = ", ".join(f"{digits} d{i}" for i in range(5))
    number = " + ".join(f"d{i}.n * {10**i}" for i in range(5))
    with mysql_raw() as conn, conn.cursor() as cur:
        cur.execute(
            f"INSERT INTO `{table}` (unique_key, function_name, priority, data, when_to_run) "
            f"SELECT CONCAT('fill-', {number}), 'f', 1, 'x', 0 FROM {joins} LIMIT {count}"
        )
        cur.execute(f"ANALYZE TABLE `{table}`")


def fill_postgres(table: str, count: int) -> None:
    with postgres_raw() as conn:
        conn.execute(
            f'INSERT INTO "{table}" (unique_key, function_name, priority, data, when_to_run) '
            "SELECT 'fill-' || g, 'f', 1, 'x', 0 FROM generate_series(1, %s) g",
            (count,),
        )
        conn.execute(f'ANALYZE "{table}"')


def fill_redis(prefix: str, count: int) -> None:
    raw = redis_raw()
    try:
        pipe = raw.pipeline(transaction=False)
        for i in range(count):
            key = f"{prefix}-f-fill-{i}".encode()
            pipe.hset(key, mapping={b"data": b"x", b"priority": 1})
            pipe.hset(b"gt:" + key, mapping={b"function": b"f", b"key": b"fill-%d" % i, b"seq": i})
            if i % 5_000 == 4_999:
                pipe.execute()
        pipe.execute()
    finally:
        raw.close()


# --------------------------------------------------------------------------------------------------------------
# What storing and deleting ten jobs costs the database.


def mysql_rows_read(store: Any) -> int:
    with store._conn.cursor() as cur:  # the store's own session: its counters are the store's statements
        cur.execute("SHOW SESSION STATUS LIKE 'Handler_read%'")
        return sum(int(value) for _, value in cur.fetchall())


def mysql_cost(store: Any, round_: int) -> tuple[int, int]:
    jobs = probes(round_)
    before = mysql_rows_read(store)
    store.apply(jobs, [])
    added = mysql_rows_read(store)
    for one in removals(jobs[:5]):  # as one worker finishes them
        store.apply([], [one])
    store.apply([], removals(jobs[5:]))  # as several do
    removed = mysql_rows_read(store)
    return added - before, removed - added


def test_mysql_reads_as_many_rows_per_job_at_100000_queued_as_at_1000(backend_factory: Any) -> None:
    backend, store = backend_factory("mysql")
    fill_mysql(backend.table, SMALL)
    small = mysql_cost(store, 0)
    with mysql_raw() as conn, conn.cursor() as cur:  # start over: the same keys again would be refused
        cur.execute(f"DELETE FROM `{backend.table}`")
    fill_mysql(backend.table, LARGE)
    large = mysql_cost(store, 1)
    # Each count includes the SHOW STATUS itself (a constant); a scan would add 100,000 rows per statement.
    # (MariaDB scanned for a one-pair "(unique_key, function_name) IN ((...))": 5 of the deletions here.)
    assert large[0] <= 2 * small[0] + 50, f"storing 10 jobs read {small[0]} rows at {SMALL}, {large[0]} at {LARGE}"
    assert large[1] <= 2 * small[1] + 50, f"deleting 10 jobs read {small[1]} rows at {SMALL}, {large[1]} at {LARGE}"


def postgres_plans(store: Any, table: str) -> list[str]:
    """The plans, custom and generic, of the statements a batch of stored and finished jobs runs."""
    jobs = probes(0)
    batches = [([], removals(jobs[:1])), ([], removals(jobs)), (jobs[:5], removals(jobs[5:])), (jobs, [])]
    import psycopg

    plans = []
    with postgres_raw() as conn:
        for number, (adds, removes) in enumerate(batches):
            statement = store.batch_statement(adds, removes)
            assert statement is not None
            query, params = statement
            for mode in ("force_custom_plan", "force_generic_plan"):
                with conn.transaction():
                    conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
                    placeholders = query.replace("%s", "{}").format(*(f"${i + 1}" for i in range(len(params))))
                    conn.execute(f"PREPARE probe{number} AS {placeholders}")
                    arguments = ", ".join(["%s"] * len(params))
                    literal = psycopg.ClientCursor(conn)  # EXECUTE's arguments as literals: their types are known
                    literal.execute(f"EXPLAIN (FORMAT JSON) EXECUTE probe{number}({arguments})", params)
                    plans.append(json.dumps(literal.fetchone()[0]))
                    conn.execute(f"DEALLOCATE probe{number}")
    return plans


def test_postgres_finds_each_job_through_the_index(backend_factory: Any) -> None:
    backend, store = backend_factory("postgres")
    fill_postgres(backend.table, LARGE)
    for plan in postgres_plans(store, backend.table):
        assert '"Seq Scan"' not in plan, f"a batch's statement scans the queue: {plan}"
        assert '"Index Scan"' in plan or '"Index Only Scan"' in plan or '"Insert"' in plan, plan


def test_sqlite_finds_each_job_through_the_primary_key(backend_factory: Any) -> None:
    backend, store = backend_factory("sqlite")
    with sqlite3.connect(store.path) as db:  # type: ignore[attr-defined]
        db.execute(
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {LARGE}) "
            f'INSERT INTO "{backend.table}" (unique_key, function_name, priority, data, when_to_run) '
            "SELECT 'fill-' || i, 'f', 1, 'x', 0 FROM n"
        )
        db.execute("ANALYZE")
        plan = " | ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + store.delete_sql, ("k", "f")))  # type: ignore[attr-defined]
    assert "USING INDEX" in plan or "USING PRIMARY KEY" in plan, plan
    assert not plan.startswith("SCAN"), plan


def redis_calls() -> dict[str, int]:
    raw = redis_raw()
    try:
        stats = raw.info("commandstats")
    finally:
        raw.close()
    return {name: int(value["calls"]) for name, value in stats.items()}


def redis_cost(store: QueueStore, round_: int) -> dict[str, int]:
    jobs = probes(round_)
    store.apply(jobs, [])
    before = redis_calls()
    store.apply([], removals(jobs))
    after = redis_calls()
    return {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}


def test_redis_sends_the_same_commands_per_job_at_100000_queued_as_at_1000(backend_factory: Any) -> None:
    backend, store = backend_factory("redis")
    fill_redis(backend.table, SMALL)
    small = redis_cost(store, 0)
    fill_redis(backend.table, LARGE)
    large = redis_cost(store, 1)
    small.pop("cmdstat_info", None)
    large.pop("cmdstat_info", None)
    assert small == large, (small, large)
    assert not {"cmdstat_scan", "cmdstat_keys"} & set(large), large
