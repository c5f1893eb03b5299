"""PostgreSQL's own CPU per job when a queue on it is drained, with no job server at all: the floor under any
server's burn-down of a PostgreSQL queue on this machine (docs/performance.md, "Ceilings").

A table with the schema of a geartrain cluster's queue is filled with ``--jobs`` jobs; ``--clients`` connections
(one process each) then drain it as a cluster node does: claim ``--claim`` jobs with ``FOR UPDATE SKIP LOCKED``
(the owner set, a lease), then delete each job as it is done. Two ways to delete, alternating over ``--reps``:

    job    one DELETE per job, each its own transaction (a commit per job): what a server needs to tell a worker
           anything after its result only once the job is gone from the store (geartrain's default promise, and
           gearmand's way with its PostgreSQL queue)
    batch  one DELETE per claimed batch (a commit per ``--claim`` jobs): the deletions of jobs finished together

Prints jobs per second and the CPU time of every PostgreSQL process (backends, WAL writer, checkpointer) per job,
and the share of the machine's cores PostgreSQL alone would take at ``--at`` jobs per second.

    python benchmarks/postgres_floor.py --jobs 100000 --reps 3 --at 24500
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from geartrain.bench.measure import process_cpu_seconds
from geartrain.bench.stores import POSTGRES_URL, StoreKind

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import database_pids  # a sibling script, not a package

FUNCTION = "burn"
POSTGRES = StoreKind("postgres")


def create_queue(table: str, jobs: int) -> None:
    """A cluster's queue table (geartrain's own schema code), holding ``jobs`` jobs of 100 bytes."""
    import psycopg

    from geartrain.cluster.postgres import PostgresClusterSql
    from geartrain.store.postgres import PostgresStore

    store = PostgresStore(POSTGRES_URL, table)
    store.cluster = PostgresClusterSql(store, "floor", 15.0)
    store.open()  # creates the table, the cluster's columns and indexes
    store.close()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(
            f'INSERT INTO "{table}" (unique_key, function_name, priority, data, handle) SELECT %s || g, %s, 1, '
            "decode(repeat('78', 100), 'hex'), ('H:floor:' || g)::bytea FROM generate_series(1, %s) AS g",
            ("job-", FUNCTION, jobs),
        )


def jobs_left(table: str) -> int:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
        return int(row[0]) if row is not None else 0


def drop_queue(table: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{table}"')


def drainer(table: str, index: int, claim: int, per_job: bool, go: Any, finished: Any, leave: Any) -> None:
    """One connection draining the queue until it is empty; it stays connected until ``leave`` (a backend that
    exits before the reading would take its CPU time with it)."""
    import psycopg

    claim_sql = (
        f'WITH picked AS (SELECT ctid FROM "{table}" WHERE owner IS NULL AND function_name = %s '
        "ORDER BY priority, seq LIMIT %s FOR UPDATE SKIP LOCKED) "
        f"UPDATE \"{table}\" AS t SET owner = %s, lease_until = clock_timestamp() + interval '15 second' "
        "FROM picked WHERE t.ctid = picked.ctid RETURNING t.unique_key, t.data"
    )
    delete_one = f'DELETE FROM "{table}" WHERE unique_key = %s AND function_name = %s'
    delete_many = f'DELETE FROM "{table}" WHERE unique_key = ANY(%s) AND function_name = %s'
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        go.wait()
        while keys := [row[0] for row in conn.execute(claim_sql, (FUNCTION, claim, f"floor-{index}"), prepare=True)]:
            if per_job:
                for key in keys:
                    conn.execute(delete_one, (key, FUNCTION), prepare=True)
            else:
                conn.execute(delete_many, (keys, FUNCTION), prepare=True)
        with finished.get_lock():
            finished.value += 1
        leave.wait()


def drain(table: str, clients: int, claim: int, per_job: bool, jobs: int) -> tuple[float, float]:
    """Jobs per second, and PostgreSQL's CPU microseconds per job."""
    go, leave = multiprocessing.Event(), multiprocessing.Event()
    finished = multiprocessing.Value("i", 0)
    processes = [
        multiprocessing.Process(target=drainer, args=(table, index, claim, per_job, go, finished, leave))
        for index in range(clients)
    ]
    for process in processes:
        process.start()
    time.sleep(2)  # connected, waiting at the gate
    before = {pid: process_cpu_seconds(pid) or 0.0 for pid in database_pids(POSTGRES)}
    started = time.perf_counter()
    go.set()
    while finished.value < clients:
        time.sleep(0.002)
    elapsed = time.perf_counter() - started
    cpu = sum((process_cpu_seconds(pid) or 0.0) - before.get(pid, 0.0) for pid in database_pids(POSTGRES))
    leave.set()
    for process in processes:
        process.join(30)
    return jobs / elapsed, cpu / jobs * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=4, help="connections draining (as a server's workers)")
    parser.add_argument("--claim", type=int, default=16, help="jobs per claim (a cluster node's prefetch)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--at", type=float, default=24_500, help="a rate to express the CPU per job in cores at")
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"job": [], "batch": []}
    for rep in range(args.reps):
        for mode in ("job", "batch"):
            table = f"gt_floor_{uuid.uuid4().hex[:10]}"
            try:
                create_queue(table, args.jobs)
                rate, cpu = drain(table, args.clients, args.claim, mode == "job", args.jobs)
                left = jobs_left(table)
                if left:
                    raise SystemExit(f"postgres_floor: {left} jobs were left in the queue")
            finally:
                drop_queue(table)
            results[mode].append((rate, cpu))
            print(f"rep {rep + 1} commit per {mode:5}: {rate:9,.0f} jobs/s, PostgreSQL {cpu:6.1f} µs of CPU per job")
    cores = os.cpu_count() or 1
    for mode, runs in results.items():
        rate = statistics.median(r for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(
            f"commit per {mode:5}: {rate:9,.0f} jobs/s, PostgreSQL {cpu:6.1f} µs/job (medians); at {args.at:,.0f} "
            f"jobs/s PostgreSQL alone would take {cpu * args.at / 1e6:.2f} of this machine's {cores} cores"
        )


if __name__ == "__main__":
    main()
