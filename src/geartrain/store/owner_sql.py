"""The owner record of a SQL store (:mod:`geartrain.store.holder`): a row per queue table in ``geartrain_owner``.

Ages are measured by the database's clock, so the servers' clocks need not agree. gearmand never reads the table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

OWNER_TABLE = "geartrain_owner"

#: Runs one statement: its parameters in, (rows affected, rows returned) out.
Run = Callable[[str, Sequence[Any]], tuple[int, list[tuple[Any, ...]]]]


@dataclass(frozen=True, slots=True)
class OwnerStatements:
    create: str
    read: str
    insert: str
    replace: str
    delete: str


POSTGRES = OwnerStatements(
    create=f"CREATE TABLE IF NOT EXISTS {OWNER_TABLE} (queue TEXT PRIMARY KEY, holder TEXT NOT NULL, "
    "renewed TIMESTAMPTZ NOT NULL)",
    read=f"SELECT holder, EXTRACT(EPOCH FROM clock_timestamp() - renewed)::float8 FROM {OWNER_TABLE} WHERE queue = %s",
    insert=f"INSERT INTO {OWNER_TABLE} (queue, holder, renewed) VALUES (%s, %s, clock_timestamp()) "
    "ON CONFLICT (queue) DO NOTHING",
    replace=f"UPDATE {OWNER_TABLE} SET holder = %s, renewed = clock_timestamp() WHERE queue = %s AND holder = %s",
    delete=f"DELETE FROM {OWNER_TABLE} WHERE queue = %s AND holder = %s",
)

MYSQL = OwnerStatements(
    create=f"CREATE TABLE IF NOT EXISTS {OWNER_TABLE} (queue VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin "
    "PRIMARY KEY, holder TEXT NOT NULL, renewed DATETIME(6) NOT NULL)",
    read=f"SELECT holder, TIMESTAMPDIFF(MICROSECOND, renewed, UTC_TIMESTAMP(6)) / 1000000 FROM {OWNER_TABLE} "
    "WHERE queue = %s",
    insert=f"INSERT IGNORE INTO {OWNER_TABLE} (queue, holder, renewed) VALUES (%s, %s, UTC_TIMESTAMP(6))",
    # The time changes at every renewal, so a matched row always counts as affected (MySQL counts changed rows).
    replace=f"UPDATE {OWNER_TABLE} SET holder = %s, renewed = UTC_TIMESTAMP(6) WHERE queue = %s AND holder = %s",
    delete=f"DELETE FROM {OWNER_TABLE} WHERE queue = %s AND holder = %s",
)


class SqlOwnerRecords:
    """:class:`~geartrain.store.holder.OwnerRecords` on one SQL connection."""

    def __init__(self, run: Run, statements: OwnerStatements, queue: str) -> None:
        self._run = run
        self._sql = statements
        self._queue = queue

    def create(self) -> None:
        self._run(self._sql.create, ())

    def read_owner(self) -> tuple[str, float] | None:
        _, rows = self._run(self._sql.read, (self._queue,))
        return (str(rows[0][0]), float(rows[0][1])) if rows else None

    def insert_owner(self, text: str) -> bool:
        return self._run(self._sql.insert, (self._queue, text))[0] == 1

    def replace_owner(self, old: str, new: str) -> bool:
        return self._run(self._sql.replace, (new, self._queue, old))[0] == 1

    def delete_owner(self, text: str) -> None:
        self._run(self._sql.delete, (self._queue, text))
