"""PostgreSQL store (psycopg 3), on gearmand's ``-q Postgres`` table.

The table is gearmand's (``unique_key VARCHAR(64), function_name VARCHAR(255), priority INTEGER, data BYTEA,
when_to_run INTEGER, UNIQUE (unique_key, function_name)``), so the C server's queue is taken over as it is and
gearmand, which selects its five columns by name, can read ours. geartrain adds, when missing:

* ``reducer BYTEA`` (gearmand drops a reduce job's reducer; we keep it);
* ``seq BIGSERIAL`` plus an index on it: :meth:`PostgresStore.load` replays ``ORDER BY seq``, in submission order.
  Rows that exist when the column is added are numbered in the table's physical order (gearmand's insertion order,
  as far as PostgreSQL keeps it). A re-add takes ``EXCLUDED.seq``, the value the default drew for the proposed row,
  so it counts as the later submission, as in the other stores.

Names and keys: PostgreSQL text holds neither NUL nor invalid UTF-8, so they go through
:mod:`geartrain.store.textcodec`: UTF-8 names unchanged (gearmand's rows, and gearmand reading ours, keep working),
other bytes escaped one character per byte (so they still fit gearmand's VARCHAR widths). The connection is forced
to ``client_encoding=UTF8``; the database should be UTF8 too (PostgreSQL's usual default).

Everything is parameterised (gearmand builds its DELETE by concatenating strings); a batch is one statement,
whatever its size (one round trip, prepared once): the rows travel as arrays and ``unnest`` turns them back into
rows, and a batch with both adds and removes deletes in a ``WITH`` part of the INSERT.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from geartrain.server.core.records import Removal, StoredJob
from geartrain.store.base import StoreError, StoreUnavailable
from geartrain.store.common import check_identifier, job_from_row, net_batch, require_driver, translate_errors
from geartrain.store.holder import RENEWAL, Holder, StoreHold
from geartrain.store.owner_sql import POSTGRES, SqlOwnerRecords
from geartrain.store.pool import ConnectionPool
from geartrain.store.textcodec import bytes_to_text, text_to_bytes

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from psycopg import AsyncConnection, Connection

    from geartrain.cluster.postgres import PostgresClusterSql

# Set unless the conninfo says otherwise: fail fast on a dead host, name ourselves in pg_stat_activity, and notice
# a silently vanished server through TCP keepalives rather than blocking forever.
WRITER_CONNECTIONS = 4  # batches of deletions in flight at once, a connection each
DELETE_ONE, DELETE_MANY = "geartrain_delete_one", "geartrain_delete_many"  # prepared on each writer connection
CONNECT_DEFAULTS = {"connect_timeout": "10", "application_name": "geartrain", "keepalives_idle": "60"}


class PostgresStore:
    """One PostgreSQL table; one connection, used by one thread at a time."""

    hold_renewal = RENEWAL

    def __init__(self, conninfo: str, table: str = "queue") -> None:
        require_driver("psycopg", "postgres")
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        try:
            params = conninfo_to_dict(conninfo)  # a key=value string or a postgresql:// URL; "" = libpq defaults
        except Exception as exc:
            raise StoreError(f"invalid PostgreSQL connection string: {exc}") from exc
        self.table_name = check_identifier(table)
        self.table = f'"{table}"'
        defaults = {key: value for key, value in CONNECT_DEFAULTS.items() if key not in params}
        self.conninfo = make_conninfo(conninfo, **defaults, client_encoding="UTF8")  # textcodec's output is UTF-8
        where = f"{params.get('host', '')}{':' + str(params['port']) if 'port' in params else ''}"
        user = f"{params['user']}@" if "user" in params else ""
        self.description = f"postgresql://{user}{where}/{params.get('dbname', '')}?table={table}"  # no password
        self._conn: Connection[Any] | None = None
        self._hold = StoreHold(self.description, lambda: self._owner(self._connection()), self._errors)
        self.cluster: PostgresClusterSql | None = None  # set when this server is a node of a cluster on the table

    def open(self) -> None:
        import psycopg

        self.close()
        with self._errors():
            conn = psycopg.connect(self.conninfo, autocommit=True)
        self._conn = conn
        try:
            with self._errors(), conn.transaction():
                self._upgrade_table(conn)
        except BaseException:
            self.close()
            raise

    def _upgrade_table(self, conn: Connection[Any]) -> None:
        t = self.table
        # Servers starting together (a cluster's nodes) would race on CREATE TABLE IF NOT EXISTS, which is not safe
        # against a concurrent creation; the lock lasts until this transaction ends.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"geartrain:{self.table_name}",))
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {t} (unique_key VARCHAR(64), function_name VARCHAR(255), "
            "priority INTEGER, data BYTEA, when_to_run INTEGER, UNIQUE (unique_key, function_name))"
        )
        rows = conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (t,),
        ).fetchall()
        columns = {row[0] for row in rows}
        if "when_to_run" not in columns:  # tables of gearmand before 0.23
            conn.execute(f"ALTER TABLE {t} ADD COLUMN when_to_run INTEGER")
        if "reducer" not in columns:
            conn.execute(f"ALTER TABLE {t} ADD COLUMN reducer BYTEA")
        if "seq" not in columns:
            # Checked first rather than ADD COLUMN IF NOT EXISTS: that form still creates a sequence when the
            # column exists. The index lets replay walk the table in order instead of sorting every payload.
            conn.execute(f"ALTER TABLE {t} ADD COLUMN seq BIGSERIAL")
            conn.execute(f'CREATE INDEX IF NOT EXISTS "{self.table_name[:55]}_seq_idx" ON {t} (seq)')
        self._owner(conn).create()
        if self.cluster is not None:
            self.cluster.upgrade(conn)

    def load(self) -> Iterator[StoredJob]:
        conn = self._connection()
        # A named (server-side) cursor streams the rows; it needs a transaction around it.
        with self._errors(), conn.transaction(), conn.cursor(name="geartrain_replay") as cur:
            cur.itersize = 1000
            cur.execute(
                f"SELECT unique_key, function_name, priority, data, when_to_run, reducer FROM {self.table} ORDER BY seq"
            )
            for key, function, priority, data, when, reducer in cur:
                key_bytes = text_to_bytes(key or "")
                yield job_from_row(key_bytes, text_to_bytes(function or ""), priority, data, when, reducer)

    def apply(self, adds: Sequence[StoredJob], removes: Sequence[Removal]) -> None:
        conn = self._connection()
        statement = self.batch_statement(adds, removes)
        if statement is not None:
            with self._errors():
                conn.execute(*statement, prepare=True)

    def batch_statement(self, adds: Sequence[StoredJob], removes: Sequence[Removal]) -> tuple[str, list[Any]] | None:
        """The one statement (and its parameters) that applies a batch, or ``None`` for an empty batch."""
        if self.cluster is not None and adds:
            return self.cluster.batch_statement(adds, removes)
        return self.plain_statement(adds, removes)

    def plain_statement(self, adds: Sequence[StoredJob], removes: Sequence[Removal]) -> tuple[str, list[Any]] | None:
        """:meth:`batch_statement` outside a cluster (and for a cluster's batches without adds)."""
        adds, removes = net_batch(adds, removes)
        params: list[Any] = []
        delete = insert = ""
        if len(removes) == 1 and not adds:
            # A drain with one worker: a plain equality is planned and run in 100 µs less than the unnest form.
            removal = removes[0]
            return (
                f"DELETE FROM {self.table} WHERE unique_key = %s::text AND function_name = %s::text",
                [bytes_to_text(removal.key), bytes_to_text(removal.function)],
            )
        if removes:
            # IN (SELECT ...) is planned as index lookups; a join with unnest becomes a scan once the batch is big.
            delete = (
                f"DELETE FROM {self.table} WHERE (unique_key, function_name) IN "
                "(SELECT * FROM unnest(%s::text[], %s::text[]))"
            )
            params += [[bytes_to_text(r.key) for r in removes], [bytes_to_text(r.function) for r in removes]]
        if adds:
            # WITH ORDINALITY + ORDER BY: rows (and so their seq values) go in in the batch's order.
            insert = (
                f"INSERT INTO {self.table} (unique_key, function_name, priority, data, when_to_run, reducer) "
                "SELECT k, f, p, d, w, r FROM unnest(%s::text[], %s::text[], %s::int4[], %s::bytea[], "
                "%s::int4[], %s::bytea[]) WITH ORDINALITY AS batch(k, f, p, d, w, r, n) ORDER BY n "
                "ON CONFLICT (unique_key, function_name) DO UPDATE SET priority = EXCLUDED.priority, "
                "data = EXCLUDED.data, when_to_run = EXCLUDED.when_to_run, reducer = EXCLUDED.reducer, "
                "seq = EXCLUDED.seq"
            )
            params += [
                [bytes_to_text(j.key) for j in adds],
                [bytes_to_text(j.function) for j in adds],
                [j.priority for j in adds],
                [j.data for j in adds],
                [j.when for j in adds],
                [j.reducer for j in adds],
            ]
        if delete and insert:
            # One statement, so one round trip and its own transaction under autocommit. The two parts see the
            # same snapshot; net_batch made their keys disjoint, so that does not matter.
            return f"WITH removed AS ({delete}) {insert}", params
        if delete or insert:
            return delete or insert, params
        return None

    def hold(self, holder: Holder) -> None:
        self._hold.take(holder)

    def renew_hold(self) -> bool:
        return self._hold.renew()

    def release_hold(self) -> None:
        self._hold.release()

    def _owner(self, conn: Connection[Any]) -> SqlOwnerRecords:
        def run(sql: str, params: Sequence[Any]) -> tuple[int, list[tuple[Any, ...]]]:
            cursor = conn.execute(sql, params)
            return cursor.rowcount, cursor.fetchall() if cursor.description else []

        return SqlOwnerRecords(run, POSTGRES, self.table_name)

    def batch_writer(self) -> PostgresWriter:
        return PostgresWriter(self)

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            # already gone (terminated, server down): nothing left to release
            with contextlib.suppress(Exception):
                conn.close()

    def _connection(self) -> Connection[Any]:
        if self._conn is None:
            raise StoreUnavailable(f"{self.description}: not open")
        return self._conn

    def _errors(self) -> AbstractContextManager[None]:
        import psycopg

        return translate_errors(
            self.description,
            unavailable=(psycopg.OperationalError, psycopg.InterfaceError, OSError),
            failed=(psycopg.Error, ValueError, TypeError, OverflowError),
        )


class PostgresWriter:
    """The store's batches from the event loop, on asynchronous psycopg connections of its own: the same statement
    as :meth:`PostgresStore.apply`, one round trip per batch. Up to :attr:`concurrency` batches run at once, each on
    a connection of the pool (PostgreSQL then flushes their commits to the log together)."""

    concurrency = WRITER_CONNECTIONS

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._pool: ConnectionPool[AsyncConnection[Any]] = ConnectionPool(self._connect, self._finish, _usable)
        self._watched: dict[AsyncConnection[Any], _Libpq] = {}  # connections remove_now has used, read by it

    async def open(self) -> None:
        await self._pool.reset()

    async def _connect(self) -> AsyncConnection[Any]:
        import psycopg

        store = self._store
        with store._errors():
            conn = await psycopg.AsyncConnection.connect(store.conninfo, autocommit=True)
            try:
                # Named once per connection for remove_now, which runs them by name through libpq itself.
                where = "unique_key = $1 AND function_name = $2"
                await conn.execute(f"PREPARE {DELETE_ONE} (text, text) AS DELETE FROM {store.table} WHERE {where}")
                pairs = "(unique_key, function_name) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
                await conn.execute(f"PREPARE {DELETE_MANY} (text[], text[]) AS DELETE FROM {store.table} WHERE {pairs}")
            except BaseException:
                _finish(conn)
                raise
        return conn

    async def apply(self, adds: Sequence[StoredJob], removes: Sequence[Removal]) -> frozenset[tuple[bytes, bytes]]:
        """Returns, in a cluster, the keys of the adds the table already held (another node stored them)."""
        statement = self._store.batch_statement(adds, removes)
        if statement is None:
            return frozenset()
        async with self._pool.borrow() as conn:
            self._unwatch(conn)  # psycopg waits on the socket itself now
            with self._store._errors():
                cursor = await conn.execute(*statement, prepare=True)
                if self._store.cluster is None or not adds or cursor.description is None:
                    return frozenset()
                stored = {(text_to_bytes(key), text_to_bytes(name)) for key, name in await cursor.fetchall()}
        return frozenset((j.key, j.function) for j in adds if (j.key, j.function) not in stored)

    def remove_now(self, removes: Sequence[Removal], done: Callable[[BaseException | None], None]) -> bool:
        """psycopg's ``execute`` spends about 100 µs of Python on a statement, more than PostgreSQL takes to run the
        deletion; here libpq is driven directly: the prepared statement sent, its one result read when the socket
        is readable, in the loop turn that reads it."""
        from psycopg import pq

        # A cluster's deletions are these same statements (PostgresClusterSql.batch_statement hands a batch without adds
        # to plain_statement), so a node takes this path too.
        conn = self._pool.take_idle()
        if conn is None:
            return False
        pgconn = conn.pgconn
        if pgconn.transaction_status != pq.TransactionStatus.IDLE:
            self._pool.give_back(conn)
            return False
        if len(removes) == 1:
            name = DELETE_ONE.encode()
            params = [bytes_to_text(removes[0].key).encode(), bytes_to_text(removes[0].function).encode()]
        else:
            name = DELETE_MANY.encode()
            params = [_text_array([r.key for r in removes]), _text_array([r.function for r in removes])]
        try:
            pgconn.send_query_prepared(name, params)
            unsent = pgconn.flush()
        except Exception:  # psycopg.OperationalError: the connection is gone; apply() connects afresh
            self._pool.give_back(conn, lost=True)
            return False
        watch = self._watched.get(conn)
        if watch is None:
            watch = self._watched[conn] = _Libpq(conn, self._pool, self._store.description, self._unwatch)
        watch.start(done, bool(unsent))
        return True

    def _unwatch(self, conn: AsyncConnection[Any]) -> None:
        watch = self._watched.pop(conn, None)
        if watch is not None:
            watch.stop()

    def _finish(self, conn: AsyncConnection[Any]) -> None:
        self._unwatch(conn)  # before its socket closes: the loop must not watch a closed descriptor
        _finish(conn)

    def close(self) -> None:
        self._pool.close()


class _Libpq:
    """A writer connection's socket, watched from its first deletion by remove_now until psycopg uses it again or
    it closes (adding and removing the reader for every deletion cost a tenth of a drained job's instructions)."""

    def __init__(
        self,
        conn: AsyncConnection[Any],
        pool: ConnectionPool[AsyncConnection[Any]],
        description: str,
        unwatch: Callable[[AsyncConnection[Any]], None],
    ) -> None:
        self._conn, self._pool, self._description, self._unwatch = conn, pool, description, unwatch
        self._fd = conn.pgconn.socket
        self._done: Callable[[BaseException | None], None] | None = None  # the deletion in flight
        self._error: BaseException | None = None
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._readable)

    def start(self, done: Callable[[BaseException | None], None], unsent: bool) -> None:
        self._done, self._error = done, None
        if unsent:
            self._loop.add_writer(self._fd, self._writable)

    def stop(self) -> None:
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)

    def _writable(self) -> None:
        try:
            if self._conn.pgconn.flush():
                return
        except Exception as exc:
            self._lost(exc)
            return
        self._loop.remove_writer(self._fd)

    def _readable(self) -> None:
        from psycopg import pq

        pgconn = self._conn.pgconn
        try:
            pgconn.consume_input()  # between deletions: a notice, or the server closing the connection
            if self._done is None:
                return
            while not pgconn.is_busy():
                result = pgconn.get_result()
                if result is None:  # every result read: the connection is idle again
                    done, self._done = self._done, None
                    self._pool.give_back(self._conn)
                    done(self._error)
                    return
                if result.status != pq.ExecStatus.COMMAND_OK:
                    message = (result.error_message or b"").decode("utf-8", "replace").strip()
                    self._error = StoreError(f"{self._description}: {message}")
        except Exception as exc:  # psycopg.OperationalError: the connection is lost
            self._lost(exc)

    def _lost(self, error: Exception) -> None:
        done, self._done = self._done, None
        self._unwatch(self._conn)
        if done is None:  # idle in the pool: closed now, dropped when next taken
            _finish(self._conn)
            return
        self._pool.give_back(self._conn, lost=True)
        done(StoreUnavailable(f"{self._description}: {error}"))


def _text_array(values: Sequence[bytes]) -> bytes:
    """A text[] literal of the (textcodec-escaped) values, each quoted."""
    items = []
    for value in values:
        text = bytes_to_text(value).encode()
        items.append(b'"' + text.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"')
    return b"{" + b",".join(items) + b"}"


def _usable(conn: AsyncConnection[Any]) -> bool:
    return not conn.closed


def _finish(conn: AsyncConnection[Any]) -> None:
    # The socket is closed at once; nothing is waited for (the server may be gone).
    with contextlib.suppress(Exception):
        conn.pgconn.finish()
