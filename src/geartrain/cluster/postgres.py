"""A cluster on one PostgreSQL table: the statements, and the connections that run them from the event loop.

The queue table is the store's (gearmand's columns, plus ``reducer`` and ``seq``), with three more columns when a
cluster uses it: ``owner`` (the node holding the job, NULL while it waits for any node), ``lease_until`` (the owner
must renew by then) and ``reruns`` (times a lapsed lease sent it back). Beside it:

* ``geartrain_nodes``: a row per node (address, start, last heartbeat, jobs held), for ``/api/cluster``;
* ``geartrain_leader``: which node does the housekeeping, under a lease of its own.

The life cycle's dead jobs are rows of the same table (function ``gt:dead:<function>``, never claimed); a partial
index over them alone lets every node read the dead set back each second without walking the queue. Its pauses and
run-time policy and cron changes are rows too (``gt:meta:paused``, ``gt:meta:policy``, ``gt:meta:cronentry``), read
back each second through the claim index; a change to a policy or cron record rewrites its row, where a job stored
under a key already held is left to the node that stored it first. Kept results (``gt:result:<function>``) carry
their expiry in ``when_to_run``, under a partial index of their own, by which the leader deletes those past their
time; a job's failed attempts go into its row in the batch that follows the failure.

Claims take the oldest waiting jobs of a function, by priority, with ``FOR UPDATE SKIP LOCKED``: two nodes never
get the same row, and neither waits for the other. New jobs left for any node are announced with ``pg_notify`` in
the transaction that stores them (delivered at its commit) on the channel ``gt_<table>``, its payload the function.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from geartrain.server.core.lifecycle import DEAD_PREFIX, RESULT_PREFIX, result_from_record
from geartrain.server.core.overrides import OVERRIDE_FUNCTIONS
from geartrain.server.core.records import Removal, StoredJob
from geartrain.server.core.sides import SIDE_PREFIX, side_from_record
from geartrain.store.common import job_from_row, net_batch
from geartrain.store.textcodec import bytes_to_text, text_to_bytes

if TYPE_CHECKING:
    from psycopg import AsyncConnection, Connection

    from geartrain.cluster.limits_postgres import PostgresLimits
    from geartrain.cluster.node import Claimed, Progress
    from geartrain.store.postgres import PostgresStore

NODES_TABLE = "geartrain_nodes"
LEADER_TABLE = "geartrain_leader"
EVENTS_TABLE = "geartrain_events"
#: A node whose heartbeat is this many leases old is gone for good: its clients' jobs and events are dropped.
GONE_AFTER_LEASES = 4
#: The dead records: a literal in every statement that reads them, so that PostgreSQL proves the partial index's
#: condition from the query's (a parameter would not do). The prefix is plain ASCII: stored as it is (textcodec).
#: ``IS_DEAD`` goes into statements with parameters, whose ``%%`` psycopg sends as ``%``.
DEAD_INDEX_CONDITION = f"function_name LIKE '{DEAD_PREFIX.decode()}%'"
IS_DEAD = DEAD_INDEX_CONDITION.replace("%", "%%")
#: The kept results, likewise: a partial index over them by expiry (their ``when_to_run``) lets the leader delete
#: those past their time without walking the queue.
RESULT_INDEX_CONDITION = f"function_name LIKE '{RESULT_PREFIX.decode()}%'"
IS_RESULT = RESULT_INDEX_CONDITION.replace("%", "%%")
#: Records that a later write replaces (a run-time policy or cron change), unlike a job.
REWRITTEN = frozenset(OVERRIDE_FUNCTIONS)


class PostgresClusterSql:
    """The statements of one node of a cluster on the store's table."""

    def __init__(self, store: PostgresStore, node: str, lease: float) -> None:
        self.store = store
        self.node = node
        self.lease = lease
        self.channel = f"gt_{store.table_name}"[:63]
        self.events_channel = f"gte_{store.table_name}"[:63]  # payload: the node that has packets to read
        self.table = store.table

    def upgrade(self, conn: Connection[Any]) -> None:
        """Add the cluster's columns, indexes and tables (idempotent; runs in the store's upgrade transaction)."""
        t, name = self.table, self.store.table_name[:50]
        conn.execute(
            f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS owner TEXT, ADD COLUMN IF NOT EXISTS lease_until TIMESTAMPTZ, "
            "ADD COLUMN IF NOT EXISTS reruns INTEGER NOT NULL DEFAULT 0, ADD COLUMN IF NOT EXISTS client_node TEXT, "
            "ADD COLUMN IF NOT EXISTS handle BYTEA, ADD COLUMN IF NOT EXISTS watchers TEXT[], "
            "ADD COLUMN IF NOT EXISTS numerator BIGINT NOT NULL DEFAULT 0, "
            "ADD COLUMN IF NOT EXISTS denominator BIGINT NOT NULL DEFAULT 0, ADD COLUMN IF NOT EXISTS meta BYTEA, "
            "ADD COLUMN IF NOT EXISTS attempts INTEGER NOT NULL DEFAULT 0, "
            "ADD COLUMN IF NOT EXISTS first_failed DOUBLE PRECISION NOT NULL DEFAULT 0"
        )
        # Claims walk the waiting jobs of one function in order; renewals and releases find a node's own.
        conn.execute(
            f'CREATE INDEX IF NOT EXISTS "{name}_claim_idx" ON {t} (function_name, priority, seq) WHERE owner IS NULL'
        )
        conn.execute(f'CREATE INDEX IF NOT EXISTS "{name}_owner_idx" ON {t} (owner) WHERE owner IS NOT NULL')
        # Every node reads the dead set back each second (cluster/node.py): the dead records alone, in order.
        conn.execute(f'CREATE INDEX IF NOT EXISTS "{name}_dead_idx" ON {t} (seq) WHERE {DEAD_INDEX_CONDITION}')
        # The leader deletes the kept results past their time (a result's when_to_run is when it expires).
        conn.execute(
            f'CREATE INDEX IF NOT EXISTS "{name}_result_idx" ON {t} (when_to_run) WHERE {RESULT_INDEX_CONDITION}'
        )
        # GET_STATUS on any node finds a job by the handle its submitting node gave.
        conn.execute(f'CREATE INDEX IF NOT EXISTS "{name}_handle_idx" ON {t} (handle)')
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {NODES_TABLE} (queue TEXT, node TEXT, address TEXT, started TIMESTAMPTZ, "
            "heartbeat TIMESTAMPTZ, jobs INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (queue, node))"
        )
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {LEADER_TABLE} (queue TEXT PRIMARY KEY, node TEXT, lease_until TIMESTAMPTZ)"
        )
        # Packets of foreground jobs on their way back to the node whose client waits (read and deleted by it).
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {EVENTS_TABLE} (seq BIGSERIAL PRIMARY KEY, queue TEXT NOT NULL, "
            "node TEXT NOT NULL, unique_key TEXT, function_name TEXT, type INTEGER, data BYTEA)"
        )
        conn.execute(f"CREATE INDEX IF NOT EXISTS {EVENTS_TABLE}_node_idx ON {EVENTS_TABLE} (queue, node, seq)")
        from geartrain.cluster import limits_postgres

        limits_postgres.upgrade(conn)  # cluster-wide concurrency slots and rate buckets

    def batch_statement(self, adds: Sequence[StoredJob], removes: Sequence[Removal]) -> tuple[str, list[Any]] | None:
        """One statement for a batch: deletes, then inserts that keep a row another node stored under the same key
        (the cluster's unique), announcing the jobs left for any node; a run-time policy or cron record replaces its
        row instead, and a failed attempt (a side record, core/sides.py) updates its job's row. Returns the keys of
        the rows it inserted (or replaced)."""
        adds, removes = net_batch(adds, removes)
        if not adds:
            return self.store.plain_statement(adds, removes)
        rewritten = [j for j in adds if j.function in REWRITTEN]
        if rewritten:  # rare (an admin's change): jobs keep the statement they always have
            adds = [j for j in adds if j.function not in REWRITTEN]
        attempted = [j for j in adds if j.function.startswith(SIDE_PREFIX)]
        if attempted:
            adds = [j for j in adds if not j.function.startswith(SIDE_PREFIX)]
        params: list[Any] = []
        parts: list[str] = []
        if removes:
            parts.append(
                f"removed AS (DELETE FROM {self.table} WHERE (unique_key, function_name) IN "
                "(SELECT * FROM unnest(%s::text[], %s::text[])) RETURNING 1)"
            )
            params += [[bytes_to_text(r.key) for r in removes], [bytes_to_text(r.function) for r in removes]]
        if attempted:
            parts.append(self._attempts_part(attempted, removes, params))
        parts.append(
            f"ins AS (INSERT INTO {self.table} (unique_key, function_name, priority, data, when_to_run, reducer, "
            "owner, lease_until, client_node, handle, meta) SELECT k, f, p, d, w, r, CASE WHEN o THEN %s END, "
            "CASE WHEN o THEN clock_timestamp() + %s * interval '1 second' END, CASE WHEN c THEN %s END, h, m "
            "FROM unnest(%s::text[], %s::text[], %s::int4[], %s::bytea[], %s::int4[], %s::bytea[], %s::bool[], "
            "%s::bool[], %s::bytea[], %s::bytea[]) WITH ORDINALITY AS batch(k, f, p, d, w, r, o, c, h, m, n) "
            "ORDER BY n ON CONFLICT (unique_key, function_name) DO NOTHING RETURNING unique_key, function_name, owner)"
        )
        params += [
            self.node,
            self.lease,
            self.node,
            [bytes_to_text(j.key) for j in adds],
            [bytes_to_text(j.function) for j in adds],
            [j.priority for j in adds],
            [j.data for j in adds],
            [_when(j) for j in adds],
            [j.reducer for j in adds],
            [j.owned for j in adds],
            [j.waiting for j in adds],
            [j.handle for j in adds],
            [j.meta or None for j in adds],
        ]
        parts.append(
            "announced AS (SELECT count(pg_notify(%s, f)) AS n FROM "
            "(SELECT DISTINCT function_name AS f FROM ins WHERE owner IS NULL) AS waiting)"
        )
        params.append(self.channel)
        where = "(SELECT n FROM announced) >= 0" + (" AND (SELECT count(*) FROM removed) >= 0" if removes else "")
        select = f"SELECT unique_key, function_name FROM ins WHERE {where}"
        if rewritten:
            parts.append(
                f"rewritten AS (INSERT INTO {self.table} (unique_key, function_name, priority, data, when_to_run) "
                "SELECT * FROM unnest(%s::text[], %s::text[], %s::int4[], %s::bytea[], %s::int4[]) "
                "ON CONFLICT (unique_key, function_name) DO UPDATE SET data = EXCLUDED.data, seq = EXCLUDED.seq "
                "RETURNING unique_key, function_name)"
            )
            params += [
                [bytes_to_text(j.key) for j in rewritten],
                [bytes_to_text(j.function) for j in rewritten],
                [j.priority for j in rewritten],
                [j.data for j in rewritten],
                [j.when for j in rewritten],
            ]
            select += " UNION ALL SELECT unique_key, function_name FROM rewritten"
        return f"WITH {', '.join(parts)} {select}", params

    def _attempts_part(self, sides: Sequence[StoredJob], removes: Sequence[Removal], params: list[Any]) -> str:
        """The update of a batch that writes failed attempts into their jobs' rows: (attempts, first failure, and
        the end of the backoff as the time the job may run, for a node that claims it after its node is gone). A
        job the batch deletes is left out (a row is changed once per statement)."""
        gone = {(r.key, r.function) for r in removes}
        updates = []
        for record in sides:
            side, function = side_from_record(record), record.function[len(SIDE_PREFIX) :]
            if side is not None and (record.key, function) not in gone:
                updates.append((record.key, function, side))
        params += [
            [bytes_to_text(key) for key, _, _ in updates],
            [bytes_to_text(function) for _, function, _ in updates],
            [side.attempts for _, _, side in updates],
            [side.first_failed for _, _, side in updates],
            [math.ceil(side.retry_at) for _, _, side in updates],
        ]
        return (
            f"attempted AS (UPDATE {self.table} AS t SET attempts = u.a, first_failed = u.first, when_to_run = u.w "
            "FROM unnest(%s::text[], %s::text[], %s::int4[], %s::float8[], %s::int4[]) AS u(k, f, a, first, w) "
            "WHERE t.unique_key = u.k AND t.function_name = u.f RETURNING 1)"
        )


def _when(record: StoredJob) -> int:
    """The ``when_to_run`` of a record: a kept result's is when it expires (the leader deletes it then), in whole
    seconds rounded up; a job's is its own."""
    if record.function.startswith(RESULT_PREFIX):
        kept = result_from_record(record)
        if kept is not None:
            return math.ceil(kept.expires)
    return record.when


class PostgresClusterDb:
    """The database side of :class:`~geartrain.cluster.node.ClusterNode` on PostgreSQL: claims, leases, the leader
    and wake-ups, on asynchronous connections of its own (one for statements, one listening)."""

    def __init__(self, sql: PostgresClusterSql) -> None:
        self.sql = sql
        self._conn: AsyncConnection[Any] | None = None
        self._listener: AsyncConnection[Any] | None = None
        self._address = ""  # this node's, as registered

    @property
    def description(self) -> str:
        return self.sql.store.description

    async def _connection(self) -> AsyncConnection[Any]:
        import psycopg

        if self._conn is None or self._conn.closed:
            with self.sql.store._errors():
                self._conn = await psycopg.AsyncConnection.connect(self.sql.store.conninfo, autocommit=True)
        return self._conn

    async def _run(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        conn = await self._connection()
        try:
            with self.sql.store._errors():
                cursor = await conn.execute(query, params, prepare=True)
                return await cursor.fetchall() if cursor.description else []
        except BaseException:
            if conn.closed or conn.broken:
                self._conn = None
            raise

    def limits(self) -> PostgresLimits:
        """The database side of cluster-wide concurrency and rate (cluster/limits_postgres.py)."""
        from geartrain.cluster.limits_postgres import PostgresLimits

        return PostgresLimits(self.sql, NODES_TABLE)

    async def register(self, address: str) -> int:
        """Enter this node in the node table; hand back the jobs an earlier run of this node held. Returns that
        count."""
        sql = self.sql
        self._address = address
        await self._run(
            f"INSERT INTO {NODES_TABLE} (queue, node, address, started, heartbeat) VALUES (%s, %s, %s, "
            "clock_timestamp(), clock_timestamp()) ON CONFLICT (queue, node) DO UPDATE SET address = EXCLUDED.address, "
            "started = EXCLUDED.started, heartbeat = EXCLUDED.heartbeat, jobs = 0",
            (sql.store.table_name, sql.node, address),
        )
        # The clients of an earlier run of this node are gone: their jobs nobody runs yet, and packets for them.
        await self._run(f"DELETE FROM {sql.table} WHERE client_node = %s AND owner IS NULL", (sql.node,))
        await self._run(f"DELETE FROM {EVENTS_TABLE} WHERE queue = %s AND node = %s", (sql.store.table_name, sql.node))
        return await self.release_all()

    async def claim(self, function: bytes, limit: int) -> list[Claimed]:
        """Up to ``limit`` waiting jobs of ``function`` for this node, in priority and submission order, each with
        the node whose client waits for it (``None`` for a background job) and the nodes whose clients coalesced
        onto it."""
        sql = self.sql
        rows = await self._run(
            f"WITH picked AS (SELECT ctid FROM {sql.table} WHERE owner IS NULL AND function_name = %s "
            "AND (when_to_run IS NULL OR when_to_run <= extract(epoch FROM clock_timestamp())) "
            "ORDER BY priority, seq LIMIT %s FOR UPDATE SKIP LOCKED) "
            f"UPDATE {sql.table} AS t SET owner = %s, lease_until = clock_timestamp() + %s * interval '1 second' "
            "FROM picked WHERE t.ctid = picked.ctid "
            "RETURNING t.unique_key, t.function_name, t.priority, t.data, t.when_to_run, t.reducer, t.seq, "
            "t.client_node, t.handle, t.watchers, t.meta, t.attempts, t.first_failed",
            (bytes_to_text(function), limit, sql.node, sql.lease),
        )
        rows.sort(key=lambda row: (row[2], row[6]))
        return [
            (
                replace(
                    job_from_row(text_to_bytes(key or ""), text_to_bytes(name or ""), priority, data, when, reducer),
                    handle=bytes(handle or b""),
                    meta=bytes(meta or b""),
                ),
                client,
                tuple(watchers or ()),
                (int(attempts), float(first)),
            )
            for key, name, priority, data, when, reducer, _, client, handle, watchers, meta, attempts, first in rows
        ]

    async def watch(self, keys: Sequence[tuple[bytes, bytes]]) -> dict[tuple[bytes, bytes], str]:
        """Note this node on each of these jobs, whose runner relays their packets to it; returns, per job still
        stored, the node that holds it ('' while it waits for any node). The update waits for a claim of the row
        under way, so a job is either claimed with this node noted, or its holder is returned."""
        sql = self.sql
        rows = await self._run(
            f"UPDATE {sql.table} SET watchers = CASE WHEN %s = ANY(coalesce(watchers, '{{}}')) THEN watchers "
            "ELSE array_append(coalesce(watchers, '{}'), %s) END WHERE (unique_key, function_name) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[])) RETURNING unique_key, function_name, coalesce(owner, '')",
            (
                sql.node,
                sql.node,
                [bytes_to_text(key) for key, _ in keys],
                [bytes_to_text(function) for _, function in keys],
            ),
        )
        return {(text_to_bytes(key), text_to_bytes(name)): owner for key, name, owner in rows}

    async def renew(self, jobs_held: int) -> bool:
        """Extend the lease of every job this node holds, and its heartbeat (raises StoreUnavailable). Returns
        whether the node table had forgotten this node (silent for GONE_AFTER_LEASES leases, cut off from the
        database): it is entered again, else it would be listed nowhere and get no slots of a limited function."""
        sql = self.sql
        rows = await self._run(
            f"WITH renewed AS (UPDATE {sql.table} SET lease_until = clock_timestamp() + %s * interval '1 second' "
            f"WHERE owner = %s RETURNING 1) INSERT INTO {NODES_TABLE} (queue, node, address, started, heartbeat, jobs) "
            "SELECT %s, %s, %s, clock_timestamp(), clock_timestamp(), %s WHERE (SELECT count(*) FROM renewed) >= 0 "
            "ON CONFLICT (queue, node) DO UPDATE SET heartbeat = EXCLUDED.heartbeat, jobs = EXCLUDED.jobs "
            "RETURNING xmax = 0",  # xmax is 0 on a row just inserted, not on one updated
            (sql.lease, sql.node, sql.store.table_name, sql.node, self._address, jobs_held),
        )
        return bool(rows and rows[0][0])

    async def still_stored(self, keys: Sequence[tuple[bytes, bytes]]) -> dict[tuple[bytes, bytes], Progress]:
        """Which of these (key, function) the table still holds, each with whether a node holds (runs) it and its
        last WORK_STATUS."""
        rows = await self._run(
            f"SELECT unique_key, function_name, owner IS NOT NULL, numerator, denominator FROM {self.sql.table} "
            "WHERE (unique_key, function_name) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
            ([bytes_to_text(key) for key, _ in keys], [bytes_to_text(function) for _, function in keys]),
        )
        return {(text_to_bytes(key), text_to_bytes(name)): (bool(held), n, d) for key, name, held, n, d in rows}

    async def status(self, handles: Sequence[bytes]) -> dict[bytes, Progress]:
        """The jobs stored under these handles (any node's), as :meth:`still_stored` describes them."""
        rows = await self._run(
            f"SELECT handle, owner IS NOT NULL, numerator, denominator FROM {self.sql.table} "
            "WHERE handle = ANY(%s::bytea[])",
            (list(handles),),
        )
        return {bytes(handle): (bool(held), n, d) for handle, held, n, d in rows}

    async def set_progress(self, updates: Sequence[tuple[bytes, bytes, int, int]]) -> None:
        """The last WORK_STATUS of running jobs: (key, function, numerator, denominator)."""
        await self._run(
            f"UPDATE {self.sql.table} AS t SET numerator = u.n, denominator = u.d FROM "
            "unnest(%s::text[], %s::text[], %s::int8[], %s::int8[]) AS u(k, f, n, d) "
            "WHERE t.unique_key = u.k AND t.function_name = u.f",
            (
                [bytes_to_text(key) for key, _, _, _ in updates],
                [bytes_to_text(function) for _, function, _, _ in updates],
                [numerator for _, _, numerator, _ in updates],
                [denominator for _, _, _, denominator in updates],
            ),
        )

    async def sweep_results(self, limit: int) -> int:
        """Delete up to ``limit`` kept results past their time (by the database's clock), through the result index;
        returns how many. Results stored before that index had their expiry in ``when_to_run`` (0 there) get it
        first, a batch at a time; one whose record does not read is deleted (no node would answer with it)."""
        sql = self.sql
        legacy = await self._run(
            f"SELECT unique_key, function_name, data FROM {sql.table} WHERE {IS_RESULT} AND when_to_run <= 0 LIMIT %s",
            (limit,),
        )
        if legacy:
            keys, names, expiries = [], [], []
            for key, name, data in legacy:
                record = StoredJob(text_to_bytes(key or ""), text_to_bytes(name or ""), b"", 1, bytes(data or b""))
                kept = result_from_record(record)
                keys.append(key)
                names.append(name)
                expiries.append(math.ceil(kept.expires) if kept is not None else 1)
            await self._run(
                f"UPDATE {sql.table} AS t SET when_to_run = u.w FROM unnest(%s::text[], %s::text[], %s::int4[]) "
                "AS u(k, f, w) WHERE t.unique_key = u.k AND t.function_name = u.f",
                (keys, names, expiries),
            )
        rows = await self._run(
            f"WITH expired AS (SELECT ctid FROM {sql.table} WHERE {IS_RESULT} AND when_to_run > 0 "
            "AND when_to_run < floor(extract(epoch FROM now()))::int4 LIMIT %s FOR UPDATE SKIP LOCKED) "
            f"DELETE FROM {sql.table} AS t USING expired WHERE t.ctid = expired.ctid RETURNING 1",
            (limit,),
        )
        return len(rows)

    async def release(self, keys: Sequence[Removal]) -> None:
        """Hand these jobs of this node back to the cluster (announced, so a sleeping node claims them)."""
        if not keys:
            return
        sql = self.sql
        await self._run(
            f"WITH freed AS (UPDATE {sql.table} SET owner = NULL, lease_until = NULL WHERE owner = %s AND "
            "(unique_key, function_name) IN (SELECT * FROM unnest(%s::text[], %s::text[])) RETURNING function_name) "
            "SELECT count(pg_notify(%s, f)) FROM (SELECT DISTINCT function_name AS f FROM freed) AS waiting",
            (sql.node, [bytes_to_text(k.key) for k in keys], [bytes_to_text(k.function) for k in keys], sql.channel),
        )

    async def release_all(self) -> int:
        """Hand every job this node holds back to the cluster; returns how many."""
        sql = self.sql
        rows = await self._run(
            f"WITH freed AS (UPDATE {sql.table} SET owner = NULL, lease_until = NULL WHERE owner = %s "
            "RETURNING function_name) SELECT coalesce(sum(n), 0)::int, count(pg_notify(%s, f)) FROM "
            "(SELECT function_name AS f, count(*) AS n FROM freed GROUP BY function_name) AS waiting",
            (sql.node, sql.channel),
        )
        return int(rows[0][0]) if rows else 0

    async def lead(self) -> bool:
        """Take or keep the leader's lease; ``True`` while this node leads."""
        sql = self.sql
        rows = await self._run(
            f"INSERT INTO {LEADER_TABLE} (queue, node, lease_until) VALUES (%s, %s, clock_timestamp() + "
            "%s * interval '1 second') ON CONFLICT (queue) DO UPDATE SET node = EXCLUDED.node, "
            f"lease_until = EXCLUDED.lease_until WHERE {LEADER_TABLE}.node = EXCLUDED.node "
            f"OR {LEADER_TABLE}.lease_until < clock_timestamp() RETURNING node",
            (sql.store.table_name, sql.node, sql.lease),
        )
        return bool(rows)

    async def rescue(self) -> int:
        """Send the jobs of every lapsed lease back to the cluster (their node died or lost the database)."""
        sql = self.sql
        rows = await self._run(
            f"WITH lapsed AS (UPDATE {sql.table} SET owner = NULL, lease_until = NULL, reruns = reruns + 1 "
            "WHERE owner IS NOT NULL AND lease_until < clock_timestamp() RETURNING function_name) "
            "SELECT n, pg_notify(%s, f) FROM (SELECT function_name AS f, count(*) AS n FROM lapsed "
            "GROUP BY function_name) AS waiting",
            (sql.channel,),
        )
        gone = (
            f"SELECT node FROM {NODES_TABLE} WHERE queue = %s AND heartbeat < clock_timestamp() - "
            f"%s * interval '1 second'"
        )
        gone_params = (sql.store.table_name, sql.lease * GONE_AFTER_LEASES)
        await self._run(f"DELETE FROM {sql.table} WHERE owner IS NULL AND client_node IN ({gone})", gone_params)
        await self._run(
            f"DELETE FROM {EVENTS_TABLE} WHERE queue = %s AND node IN ({gone})", (sql.store.table_name, *gone_params)
        )
        # Listed a while after they die (/api/cluster shows their heartbeat's age), then forgotten.
        await self._run(
            f"DELETE FROM {NODES_TABLE} WHERE node IN ({gone}) AND queue = %s", (*gone_params, sql.store.table_name)
        )
        return sum(int(row[0]) for row in rows)

    async def send_events(self, events: Sequence[tuple[str, bytes, bytes, int, bytes]]) -> None:
        """Packets for the nodes whose clients wait: (node, key, function, packet type, arguments after the
        handle joined by NUL), in order; each node is told on the events channel."""
        sql = self.sql
        await self._run(
            f"WITH sent AS (INSERT INTO {EVENTS_TABLE} (queue, node, unique_key, function_name, type, data) "
            "SELECT %s, n, k, f, t, d FROM unnest(%s::text[], %s::text[], %s::text[], %s::int4[], %s::bytea[]) "
            "WITH ORDINALITY AS e(n, k, f, t, d, o) ORDER BY o RETURNING node) "
            "SELECT count(pg_notify(%s, node)) FROM (SELECT DISTINCT node FROM sent) AS told",
            (
                sql.store.table_name,
                [event[0] for event in events],
                [bytes_to_text(event[1]) for event in events],
                [bytes_to_text(event[2]) for event in events],
                [event[3] for event in events],
                [event[4] for event in events],
                sql.events_channel,
            ),
        )

    async def take_events(self) -> list[tuple[bytes, bytes, int, bytes]]:
        """The packets waiting for this node's clients, oldest first: (key, function, type, arguments)."""
        sql = self.sql
        rows = await self._run(
            f"DELETE FROM {EVENTS_TABLE} WHERE queue = %s AND node = %s "
            "RETURNING seq, unique_key, function_name, type, data",
            (sql.store.table_name, sql.node),
        )
        rows.sort()
        return [
            (text_to_bytes(key), text_to_bytes(name), int(ptype), bytes(data)) for _, key, name, ptype, data in rows
        ]

    async def records(self, functions: Sequence[bytes]) -> list[tuple[bytes, bytes, bytes]]:
        """The records stored under reserved functions no node claims (the life cycle's: pauses, run-time policy
        and cron changes) as (function, key, data), through the claim index: a few rows however long the queue."""
        rows = await self._run(
            f"SELECT function_name, unique_key, data FROM {self.sql.table} "
            "WHERE function_name = ANY(%s::text[]) AND owner IS NULL",
            ([bytes_to_text(function) for function in functions],),
        )
        return [(text_to_bytes(name), text_to_bytes(key), bytes(data or b"")) for name, key, data in rows]

    async def dead_version(self) -> tuple[int, int]:
        """How many dead records the table holds, and the sum of their sequence numbers: a change of the dead set
        changes one or the other (each record gets a new number), so a node reads the records again only then. The
        sum rather than the highest number: a record committed late may carry a lower number than one already read."""
        rows = await self._run(f"SELECT count(*), coalesce(sum(seq), 0) FROM {self.sql.table} WHERE {IS_DEAD}", ())
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    async def dead_records(self, limit: int) -> list[StoredJob]:
        """The dead records of every node, oldest first: the newest ``limit`` of them (through the dead index)."""
        rows = await self._run(
            f"SELECT unique_key, function_name, priority, data, when_to_run, reducer FROM {self.sql.table} "
            f"WHERE {IS_DEAD} ORDER BY seq DESC LIMIT %s",
            (limit,),
        )
        rows.reverse()
        return [
            job_from_row(text_to_bytes(key or ""), text_to_bytes(name or ""), priority, data, when, reducer)
            for key, name, priority, data, when, reducer in rows
        ]

    async def revive(self, moves: Sequence[tuple[Removal, StoredJob]]) -> list[int]:
        """Move dead records back into the queue: each (dead record, live job) whose dead record this statement
        deletes is inserted as a job left for any node, and announced. Returns the positions of those moved; a
        dead record already gone (retried or deleted meanwhile, by any node) moves nothing. Two nodes moving the
        same record at once: the second's deletion waits for the first's and finds nothing."""
        if not moves:
            return []
        sql = self.sql
        rows = await self._run(
            "WITH batch AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::int4[], "
            "%s::bytea[], %s::bytea[], %s::bytea[]) WITH ORDINALITY AS b(dk, df, k, f, p, d, r, h, o)), "
            f"taken AS (DELETE FROM {sql.table} WHERE {IS_DEAD} AND (unique_key, function_name) IN "
            "(SELECT dk, df FROM batch) RETURNING unique_key, function_name), "
            "moved AS (SELECT batch.* FROM batch JOIN taken ON taken.unique_key = batch.dk "
            "AND taken.function_name = batch.df), "
            f"ins AS (INSERT INTO {sql.table} (unique_key, function_name, priority, data, when_to_run, reducer, "
            "handle) SELECT k, f, p, d, 0, r, h FROM moved ORDER BY o "
            "ON CONFLICT (unique_key, function_name) DO NOTHING RETURNING function_name), "
            "announced AS (SELECT count(pg_notify(%s, f)) AS n FROM "
            "(SELECT DISTINCT function_name AS f FROM ins) AS waiting) "
            "SELECT o FROM moved WHERE (SELECT n FROM announced) >= 0",
            (
                [bytes_to_text(dead.key) for dead, _ in moves],
                [bytes_to_text(dead.function) for dead, _ in moves],
                [bytes_to_text(job.key) for _, job in moves],
                [bytes_to_text(job.function) for _, job in moves],
                [job.priority for _, job in moves],
                [job.data for _, job in moves],
                [job.reducer for _, job in moves],
                [job.handle for _, job in moves],
                sql.channel,
            ),
        )
        return sorted(int(position) - 1 for (position,) in rows)

    async def results(self, handles: Sequence[bytes]) -> list[StoredJob]:
        """The kept results (``gt:result:`` records, keyed by handle) stored under these handles by any node,
        through the table's unique index, whose first column is the key."""
        rows = await self._run(
            f"SELECT unique_key, function_name, priority, data, when_to_run, reducer FROM {self.sql.table} "
            f"WHERE unique_key = ANY(%s::text[]) AND {IS_RESULT}",
            ([bytes_to_text(handle) for handle in handles],),
        )
        return [
            job_from_row(text_to_bytes(key or ""), text_to_bytes(name or ""), priority, data, when, reducer)
            for key, name, priority, data, when, reducer in rows
        ]

    async def nodes(self) -> list[dict[str, Any]]:
        """The cluster's nodes as the API shows them."""
        sql = self.sql
        rows = await self._run(
            f"SELECT n.node, n.address, extract(epoch FROM n.started)::float8, "
            "extract(epoch FROM clock_timestamp() - n.heartbeat)::float8, n.jobs, l.node IS NOT NULL "
            f"FROM {NODES_TABLE} n LEFT JOIN {LEADER_TABLE} l ON l.queue = n.queue AND l.node = n.node "
            "AND l.lease_until >= clock_timestamp() WHERE n.queue = %s ORDER BY n.node",
            (sql.store.table_name,),
        )
        return [
            {"node": node, "address": address, "started": started, "heartbeat_age": age, "jobs": jobs, "leader": lead}
            for node, address, started, age, jobs, lead in rows
        ]

    async def notifications(self) -> AsyncIterator[tuple[bool, bytes]]:
        """What the cluster's channels announce, as it comes: ``(False, function)`` for jobs waiting for any node,
        ``(True, node)`` for packets waiting for a node's clients. Raises StoreUnavailable when the listening
        connection is lost (the caller listens again)."""
        import psycopg

        with self.sql.store._errors():
            conn = await psycopg.AsyncConnection.connect(self.sql.store.conninfo, autocommit=True)
        self._listener = conn
        try:
            with self.sql.store._errors():
                await conn.execute(f'LISTEN "{self.sql.channel}"')
                await conn.execute(f'LISTEN "{self.sql.events_channel}"')
                async for notice in conn.notifies():
                    yield notice.channel == self.sql.events_channel, text_to_bytes(notice.payload)
        finally:
            self._listener = None
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        for conn in (self._conn, self._listener):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
        self._conn = self._listener = None
