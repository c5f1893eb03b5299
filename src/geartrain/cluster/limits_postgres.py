"""Cluster-wide concurrency and rate on PostgreSQL (the loop is :mod:`geartrain.cluster.limits`).

Two tables beside the cluster's others, shared by every queue table (a ``queue`` column tells them apart):

* ``geartrain_slots``: per function and node, the concurrency slots the node holds and how many it wants. The slots
  of a node whose heartbeat is older than the lease are no one's: the node died or lost the database, and its jobs
  went back to the queue too. A node changes its row under a transaction-scoped advisory lock on the function, so
  the rows it reads (each statement of the transaction reads afresh after the lock) are those every other node
  left, and no two nodes grant themselves the same free slot.
* ``geartrain_buckets``: per function, the cluster's token bucket (tokens and when it was last filled). Taking
  tokens is one upsert that fills the bucket by the database's clock and takes what it can, on the row it locks.

Both run on a connection of their own, so the transaction never mixes with the node's other statements.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from geartrain.server.core.shares import allot, take_tokens
from geartrain.store.textcodec import bytes_to_text

if TYPE_CHECKING:
    from psycopg import AsyncConnection, Connection

    from geartrain.cluster.postgres import PostgresClusterSql

SLOTS_TABLE = "geartrain_slots"
BUCKETS_TABLE = "geartrain_buckets"

# The bucket after a fill by the time since the last one (the row as locked: another node's take comes first).
_LEVEL = (
    "least(%(capacity)s::float8, b.tokens + %(refill)s::float8 * "
    "greatest(0.0, extract(epoch FROM EXCLUDED.updated - b.updated)::float8))"
)
TAKE_TOKENS = (
    f"INSERT INTO {BUCKETS_TABLE} AS b (queue, function_name, tokens, updated, granted) "
    "VALUES (%(queue)s, %(function)s, %(first_left)s, clock_timestamp(), %(first)s) "
    "ON CONFLICT (queue, function_name) DO UPDATE SET "
    f"granted = least(%(wanted)s, floor({_LEVEL}))::int, "
    f"tokens = {_LEVEL} - least(%(wanted)s, floor({_LEVEL})), "
    "updated = greatest(b.updated, EXCLUDED.updated) "
    "RETURNING granted, tokens"
)


def upgrade(conn: Connection[Any]) -> None:
    """Create the two tables (idempotent; in the store's upgrade transaction)."""
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {SLOTS_TABLE} (queue TEXT, function_name TEXT, node TEXT, "
        "slots INTEGER NOT NULL DEFAULT 0, wanted INTEGER NOT NULL DEFAULT 0, "
        "PRIMARY KEY (queue, function_name, node))"
    )
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {BUCKETS_TABLE} (queue TEXT, function_name TEXT, "
        "tokens DOUBLE PRECISION NOT NULL, updated TIMESTAMPTZ NOT NULL, granted INTEGER NOT NULL DEFAULT 0, "
        "PRIMARY KEY (queue, function_name))"
    )


class PostgresLimits:
    """The database side of :class:`~geartrain.cluster.limits.ClusterLimits` on PostgreSQL."""

    def __init__(self, sql: PostgresClusterSql, nodes_table: str) -> None:
        self.sql = sql
        self.nodes_table = nodes_table  # where each node's heartbeat is (cluster/postgres.py)
        self.queue = sql.store.table_name
        self._conn: AsyncConnection[Any] | None = None

    async def _connection(self) -> AsyncConnection[Any]:
        import psycopg

        if self._conn is None or self._conn.closed:
            with self.sql.store._errors():
                self._conn = await psycopg.AsyncConnection.connect(self.sql.store.conninfo, autocommit=True)
        return self._conn

    def _lost(self, conn: AsyncConnection[Any]) -> None:
        if conn.closed or conn.broken:
            self._conn = None

    async def slots(self, function: bytes, capacity: int, want: int, floor: int, running: int) -> tuple[int, int, int]:
        """Hold what :func:`~geartrain.server.core.shares.allot` says of ``function``'s slots: returns (held,
        granted, cap). Nothing is granted while this node's own lease has lapsed."""
        sql, name = self.sql, bytes_to_text(function)
        conn = await self._connection()
        try:
            with sql.store._errors():
                async with conn.transaction():
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"geartrain-slots:{self.queue}:{name}",)
                    )
                    cursor = await conn.execute(
                        f"SELECT n.node, coalesce(s.slots, 0), coalesce(s.wanted, 0), "
                        "n.heartbeat >= clock_timestamp() - %s * interval '1 second' "
                        f"FROM {self.nodes_table} n LEFT JOIN {SLOTS_TABLE} s ON s.queue = n.queue AND s.node = n.node "
                        "AND s.function_name = %s WHERE n.queue = %s",
                        (sql.lease, name, self.queue),
                    )
                    rows = await cursor.fetchall()
                    alive = any(node == sql.node and live for node, _, _, live in rows)
                    others = [(node, int(s), int(w)) for node, s, w, live in rows if live and node != sql.node]
                    held, granted, cap = allot(capacity, sql.node, want if alive else 0, floor, running, others)
                    # The rows of nodes forgotten by the node table go too (their slots counted for nothing already).
                    await conn.execute(
                        f"WITH gone AS (DELETE FROM {SLOTS_TABLE} WHERE queue = %s AND function_name = %s "
                        f"AND node <> %s AND node NOT IN (SELECT node FROM {self.nodes_table} WHERE queue = %s) "
                        "RETURNING 1) "
                        f"INSERT INTO {SLOTS_TABLE} (queue, function_name, node, slots, wanted) "
                        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (queue, function_name, node) "
                        "DO UPDATE SET slots = EXCLUDED.slots, wanted = EXCLUDED.wanted",
                        (self.queue, name, sql.node, self.queue, self.queue, name, sql.node, held, want),
                    )
        except BaseException:
            self._lost(conn)
            raise
        return held, granted, cap

    async def tokens(self, function: bytes, capacity: float, refill: float, wanted: int) -> tuple[int, float]:
        """Take up to ``wanted`` whole tokens from ``function``'s bucket: returns (taken, tokens left there)."""
        first = take_tokens(capacity, wanted)  # a bucket not made yet is full
        params = {
            "queue": self.queue,
            "function": bytes_to_text(function),
            "capacity": capacity,
            "refill": refill,
            "wanted": wanted,
            "first": first,
            "first_left": capacity - first,
        }
        conn = await self._connection()
        try:
            with self.sql.store._errors():
                cursor = await conn.execute(TAKE_TOKENS, params, prepare=True)
                row = await cursor.fetchone()
        except BaseException:
            self._lost(conn)
            raise
        return (int(row[0]), float(row[1])) if row else (0, 0.0)

    async def drop(self, functions: Sequence[bytes] | None = None) -> None:
        """Give back this node's slots (of these functions, or all)."""
        query = f"DELETE FROM {SLOTS_TABLE} WHERE queue = %s AND node = %s"
        params: tuple[Any, ...] = (self.queue, self.sql.node)
        if functions is not None:
            query += " AND function_name = ANY(%s::text[])"
            params += ([bytes_to_text(function) for function in functions],)
        conn = await self._connection()
        try:
            with self.sql.store._errors():
                await conn.execute(query, params)
        except BaseException:
            self._lost(conn)
            raise

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
        self._conn = None
