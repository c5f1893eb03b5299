"""MySQL / MariaDB store (PyMySQL, pure Python), on gearmand's ``-q MySQL`` table.

The table is gearmand's (``unique_key VARCHAR(64), function_name VARCHAR(255), priority INT, data LONGBLOB,
when_to_run INT``, unique key on the first two), so the C server's queue is taken over as it is and gearmand can read
ours back: it selects its five columns by name, and the two columns geartrain adds do not disturb it:

* ``reducer LONGBLOB NULL`` (gearmand drops a reduce job's reducer; we keep it);
* ``seq BIGINT NOT NULL AUTO_INCREMENT`` with a unique key of its own: :meth:`MySQLStore.load` replays
  ``ORDER BY seq``, i.e. in submission order. Rows that exist when the column is added are numbered in table order,
  which for gearmand's table (no primary key, so InnoDB's hidden row id) is insertion order. A re-add of a stored key
  takes a new ``seq`` (``seq = VALUES(seq)`` in ``ON DUPLICATE KEY UPDATE`` is the freshly generated value), so it
  counts as the later submission, as in the other stores.

Names and keys: the connection speaks utf8mb4 and names go through :mod:`geartrain.store.textcodec` (UTF-8 names
unchanged, other bytes escaped one character per byte). The key columns get a binary, no-pad collation
(``utf8mb4_nopad_bin`` on MariaDB, ``utf8mb4_0900_bin`` on MySQL 8, else ``utf8mb4_bin``): gearmand's default
``*_general_ci`` would make ``Resize`` and ``resize`` (or ``e`` and ``é``, or ``f`` and ``f ``) one key, so a
re-add or a delete would hit another function's job. An existing utf8mb4 table is switched to that collation when
opened (same characters, same widths: gearmand does not notice); a table in another character set is left alone and
then holds only names that character set can represent. The session runs in strict mode, so a value too long for
its column is an error (the batch is refused) rather than silently truncated.

A batch is one round trip: its statements (multi-row INSERTs and DELETEs of about 1 MB each) go as one
multi-statement query, wrapped in BEGIN ... COMMIT when there is more than one (a lone statement is its own
transaction under autocommit). DELETEs spell out each ``unique_key = ... AND function_name = ...`` pair: MariaDB
reads a one-pair row-constructor IN list as a scan of the whole table. PyMySQL escapes the values itself (it has
no server-side prepared statements); data goes as hex literals (binary-safe, never charset-converted), so one job's
data must stay under half the server's ``max_allowed_packet`` (16 MiB by default on MariaDB, so 8 MiB), as
gearmand needs too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from geartrain.server.core.records import Removal, StoredJob
from geartrain.store.base import StoreUnavailable
from geartrain.store.common import (
    check_identifier,
    chunks,
    job_from_row,
    net_batch,
    require_driver,
    translate_errors,
)
from geartrain.store.holder import RENEWAL, Holder, StoreHold
from geartrain.store.owner_sql import MYSQL, SqlOwnerRecords
from geartrain.store.textcodec import bytes_to_text, text_to_bytes

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from pymysql.connections import Connection

    from geartrain.store.mysql_wire import MySQLWriter

COLLATIONS = ("utf8mb4_nopad_bin", "utf8mb4_0900_bin", "utf8mb4_bin")  # the first one the server has wins
KEY_COLUMNS = (("unique_key", 64), ("function_name", 255))  # gearmand's widths
DELETE_CHUNK = 1000  # (key, function) pairs per DELETE statement
STATEMENT_BYTES = 1 << 20  # statements are packed into queries of about this size (far below max_allowed_packet)
CONNECT_TIMEOUT = 10
IO_TIMEOUT = 120  # seconds a read or write may block before the connection counts as lost


class MySQLStore:
    """One MySQL or MariaDB table; one connection, used by one thread at a time."""

    hold_renewal = RENEWAL

    def __init__(
        self, host: str, port: int, user: str, password: str, database: str, table: str = "gearman_queue"
    ) -> None:
        require_driver("pymysql", "mysql")
        self.host, self.port, self.user, self.password, self.database = host, port, user, password, database
        self.table_name = check_identifier(table)
        self.table = f"`{table}`"
        self.description = f"mysql://{user}@{host}:{port}/{database}?table={table}"
        self._conn: Connection[Any] | None = None
        self._hold = StoreHold(self.description, lambda: self._owner(self._connection()), self._errors)

    def open(self) -> None:
        self.close()
        conn = self.connect()
        self._conn = conn
        try:
            with self._errors():
                self._upgrade_table(conn)
        except BaseException:
            self.close()
            raise

    def connect(self) -> Connection[Any]:
        """A new connection with the store's session settings (blocks; StoreUnavailable when it cannot)."""
        import pymysql
        from pymysql.constants import CLIENT

        with self._errors():
            return pymysql.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                database=self.database,
                charset="utf8mb4",
                autocommit=True,  # apply() opens its own transaction; a read sees the latest commit
                client_flag=CLIENT.MULTI_STATEMENTS,  # a batch goes in one query: BEGIN; INSERT; DELETE; COMMIT
                sql_mode="STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION",  # too long or out of range is an error
                connect_timeout=CONNECT_TIMEOUT,
                read_timeout=IO_TIMEOUT,
                write_timeout=IO_TIMEOUT,
            )

    def _upgrade_table(self, conn: Connection[Any]) -> None:
        with conn.cursor() as cur:
            cur.execute("SELECT COLLATION_NAME FROM information_schema.COLLATIONS")
            available = {row[0] for row in cur.fetchall()}
            collation = next((name for name in COLLATIONS if name in available), "utf8mb4_bin")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} ("
                f"unique_key VARCHAR(64) CHARACTER SET utf8mb4 COLLATE {collation}, "
                f"function_name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE {collation}, "
                "priority INT, data LONGBLOB, when_to_run INT, UNIQUE KEY (unique_key, function_name))"
            )
            cur.execute(
                "SELECT LOWER(COLUMN_NAME), CHARACTER_SET_NAME, COLLATION_NAME, CHARACTER_MAXIMUM_LENGTH "
                "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
                (self.table_name,),
            )
            columns = {row[0]: row for row in cur.fetchall()}
            changes = []
            for name, default_width in KEY_COLUMNS:
                _, charset, current, width = columns.get(name, (name, None, None, None))
                if charset == "utf8mb4" and current != collation:  # same characters, only comparison changes
                    width = int(width or default_width)
                    changes.append(f"MODIFY {name} VARCHAR({width}) CHARACTER SET utf8mb4 COLLATE {collation}")
            if "when_to_run" not in columns:  # tables of gearmand before 0.23
                changes.append("ADD COLUMN when_to_run INT")
            if "reducer" not in columns:
                changes.append("ADD COLUMN reducer LONGBLOB NULL")
            if "seq" not in columns:
                changes.append("ADD COLUMN seq BIGINT NOT NULL AUTO_INCREMENT, ADD UNIQUE KEY seq (seq)")
            if changes:
                cur.execute(f"ALTER TABLE {self.table} " + ", ".join(changes))
        self._owner(conn).create()

    def load(self) -> Iterator[StoredJob]:
        import pymysql.cursors

        conn = self._connection()
        with self._errors(), conn.cursor(pymysql.cursors.SSCursor) as cur:  # streams: a big queue is not buffered
            cur.execute(
                f"SELECT unique_key, function_name, priority, data, when_to_run, reducer FROM {self.table} ORDER BY seq"
            )
            while rows := cur.fetchmany(1000):
                for key, function, priority, data, when, reducer in rows:
                    key_bytes = text_to_bytes(key or "")
                    yield job_from_row(key_bytes, text_to_bytes(function or ""), priority, data, when, reducer)

    def apply(self, adds: Sequence[StoredJob], removes: Sequence[Removal]) -> None:
        conn = self._connection()
        queries = self.queries(conn.escape, *net_batch(adds, removes))
        if not queries:
            return
        with self._errors():
            try:
                with conn.cursor() as cur:
                    for query in queries:
                        cur.execute(query)
                        while cur.nextset():  # one result per statement of a multi-statement query
                            pass
            except BaseException:
                _rollback(conn)
                raise

    def queries(self, escape: Callable[[Any], str], adds: Sequence[StoredJob], removes: Sequence[Removal]) -> list[str]:
        """The batch as few multi-statement queries as fit in a packet: usually one round trip for the lot.

        A lone statement runs as it is (autocommit makes it a transaction of its own); several are wrapped in
        BEGIN ... COMMIT, which may span queries when the batch is larger than one packet.
        """
        statements: list[str] = []
        rows: list[str] = []
        size = 0
        for j in adds:
            row = escape((bytes_to_text(j.key), bytes_to_text(j.function), j.priority, j.data, j.when, j.reducer))
            if rows and size + len(row) > STATEMENT_BYTES:
                statements.append(self._insert(rows))
                rows, size = [], 0
            rows.append(row)
            size += len(row) + 1
        if rows:
            statements.append(self._insert(rows))
        for part in chunks(removes, DELETE_CHUNK):
            # Each pair spelt out: MariaDB reads a one-pair "(a, b) IN ((x, y))" as a full-table scan.
            pairs = " OR ".join(
                f"(unique_key = {escape(bytes_to_text(r.key))} AND function_name = {escape(bytes_to_text(r.function))})"
                for r in part
            )
            statements.append(f"DELETE FROM {self.table} WHERE {pairs}")
        if len(statements) <= 1:
            return statements
        queries: list[str] = []
        current = ["BEGIN"]
        size = 0
        for statement in statements:
            if size and size + len(statement) > STATEMENT_BYTES:
                queries.append(";".join(current))
                current, size = [], 0
            current.append(statement)
            size += len(statement) + 1
        current.append("COMMIT")
        queries.append(";".join(current))
        return queries

    def _insert(self, rows: list[str]) -> str:
        # A re-add takes a new seq (VALUES(seq) is the freshly generated one): it counts as the later submission.
        return (
            f"INSERT INTO {self.table} (unique_key, function_name, priority, data, when_to_run, reducer) VALUES "
            + ",".join(rows)
            + " ON DUPLICATE KEY UPDATE priority = VALUES(priority), data = VALUES(data), "
            "when_to_run = VALUES(when_to_run), reducer = VALUES(reducer), seq = VALUES(seq)"
        )

    def hold(self, holder: Holder) -> None:
        self._hold.take(holder)

    def renew_hold(self) -> bool:
        return self._hold.renew()

    def release_hold(self) -> None:
        self._hold.release()

    def _owner(self, conn: Connection[Any]) -> SqlOwnerRecords:
        def run(sql: str, params: Sequence[Any]) -> tuple[int, list[tuple[Any, ...]]]:
            with conn.cursor() as cur:
                affected = cur.execute(sql, tuple(params))
                return affected, list(cur.fetchall())

        return SqlOwnerRecords(run, MYSQL, self.table_name)

    def batch_writer(self) -> MySQLWriter:
        from geartrain.store.mysql_wire import MySQLWriter

        return MySQLWriter(self, IO_TIMEOUT)

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            # already gone (killed, server down): nothing left to release
            with contextlib.suppress(Exception):
                conn.close()

    def _connection(self) -> Connection[Any]:
        if self._conn is None:
            raise StoreUnavailable(f"{self.description}: not open")
        return self._conn

    def _errors(self) -> AbstractContextManager[None]:
        import pymysql

        return translate_errors(
            self.description,
            unavailable=(pymysql.OperationalError, pymysql.InterfaceError, OSError),
            failed=(pymysql.MySQLError, ValueError, TypeError),
        )


def _rollback(conn: Connection[Any]) -> None:
    # the connection is gone, and the server rolls back what it had on its own
    with contextlib.suppress(Exception):
        conn.rollback()
