"""SQLite store (standard library): the embedded default, on gearmand's ``libsqlite3`` table.

The table is gearmand's (``unique_key, function_name, priority, data, when_to_run``, primary key on the first two),
so a queue the C server wrote is taken over as it is; geartrain adds a ``reducer`` column when it is missing (gearmand
ignores it). WAL mode; ``sync`` is SQLite's ``synchronous`` setting (``full`` syncs the WAL at every commit, so an
acknowledged job survives a power cut; ``normal`` survives a crash of the process; ``off`` leaves it to the OS).

The server holding the queue holds an OS lock (``flock``) on ``<file>.lock`` beside it, which names the holder; the
lock dies with the process. Not on the database file itself: closing any descriptor of a file drops every POSIX lock
the process holds on it, SQLite's own included.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from geartrain.server.core.records import Removal, StoredJob
from geartrain.store.base import StoreError, StoreHeld, StoreUnavailable
from geartrain.store.common import check_identifier, driver_reason, job_from_row
from geartrain.store.holder import Holder, held_message

SYNC_MODES = ("full", "normal", "off")


def quote_identifier(name: str) -> str:
    """A table name checked to be a plain identifier, double-quoted (names cannot be query parameters)."""
    return f'"{check_identifier(name)}"'


def to_text(value: bytes) -> str | bytes:
    """gearmand's text columns: UTF-8 stays text; other bytes are stored as a BLOB and come back unchanged."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


def from_text(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


class SQLiteStore:
    """One SQLite database file; one connection, used by one thread at a time."""

    hold_renewal = None  # an OS lock: nothing to renew

    def __init__(self, path: str | Path, table: str = "gearman_queue", sync: str = "full") -> None:
        if sync not in SYNC_MODES:
            raise StoreError(f"invalid sync mode {sync!r} (choose from {', '.join(SYNC_MODES)})")
        self.path = Path(path)
        self.table = quote_identifier(table)
        self.sync = sync
        self.description = f"sqlite://{self.path}"
        # The statements a batch runs (tests check their plans: each finds its row through the primary key).
        self.insert_sql = (
            f"INSERT OR REPLACE INTO {self.table} "
            "(unique_key, function_name, priority, data, when_to_run, reducer) VALUES (?, ?, ?, ?, ?, ?)"
        )
        self.delete_sql = f"DELETE FROM {self.table} WHERE unique_key = ? AND function_name = ?"
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._db: sqlite3.Connection | None = None
        self._lock: int | None = None  # the lock file's descriptor while held

    def open(self) -> None:
        self.close()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=6.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.sync.upper()}")
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (unique_key TEXT, function_name TEXT, priority INTEGER, "
                "data BLOB, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name))"
            )
            columns = {row[1] for row in db.execute(f"PRAGMA table_info({self.table})")}
            if "when_to_run" not in columns:  # tables of gearmand before 0.23
                db.execute(f"ALTER TABLE {self.table} ADD COLUMN when_to_run INTEGER")
            if "reducer" not in columns:
                db.execute(f"ALTER TABLE {self.table} ADD COLUMN reducer BLOB")
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"{self.description}: {driver_reason(exc)}") from exc
        self._db = db

    def load(self) -> Iterator[StoredJob]:
        cursor = self._connection().execute(
            f"SELECT unique_key, function_name, priority, data, when_to_run, reducer FROM {self.table} ORDER BY rowid"
        )
        while rows := cursor.fetchmany(10_000):
            for key, function, priority, data, when, reducer in rows:
                key_bytes = from_text(key or "")
                yield job_from_row(key_bytes, from_text(function), priority, data, when, reducer)

    def apply(self, adds: Sequence[StoredJob], removes: Sequence[Removal]) -> None:
        db = self._connection()
        try:
            db.execute("BEGIN IMMEDIATE")
            if adds:
                db.executemany(
                    self.insert_sql,
                    [(to_text(j.key), to_text(j.function), j.priority, j.data, j.when, j.reducer) for j in adds],
                )
            if removes:
                db.executemany(
                    self.delete_sql,
                    [(to_text(r.key), to_text(r.function)) for r in removes],
                )
            db.execute("COMMIT")
        except BaseException as exc:
            # Whatever failed (a value SQLite cannot hold raises OverflowError, not sqlite3.Error), the
            # transaction must not stay open, or every later BEGIN would fail.
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreUnavailable(f"{self.description}: {exc}") from exc
            if isinstance(exc, OverflowError | ValueError | TypeError):
                raise StoreError(f"{self.description}: {exc}") from exc
            raise

    def truncate(self) -> None:
        """Delete every record (``--store-queue-on-shutdown`` rewrites the queue at each stop)."""
        self._connection().execute(f"DELETE FROM {self.table}")

    def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            db.close()

    def hold(self, holder: Holder) -> None:
        if self._lock is not None:
            return
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreUnavailable(f"{self.description}: cannot open its lock file {self.lock_path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            os.close(fd)
            raise StoreHeld(held_message(self.description, text, None)) from None
        except OSError as exc:
            os.close(fd)
            raise StoreUnavailable(f"{self.description}: cannot lock {self.lock_path}: {exc}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode().encode(), 0)
        self._lock = fd

    def renew_hold(self) -> bool:
        return self._lock is not None

    def release_hold(self) -> None:
        if self._lock is not None:
            fd, self._lock = self._lock, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # the lock goes with the descriptor

    def batch_writer(self) -> None:
        return None  # a local file: the store thread keeps the fsync off the loop

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable(f"{self.description}: not open")
        return self._db
