"""Store flags: geartrain's ``--store URL`` and gearmand's ``-q TYPE`` families, turned into a QueueStore."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from geartrain.server.config import DEFAULT_PORT
from geartrain.store.base import QueueStore, StoreError
from geartrain.store.url import describe, open_store

QUEUE_TYPES = ("builtin", "libsqlite3", "mysql", "postgres", "redis")


def default_state_dir() -> Path:
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "geartrain"


def default_queue_file(state_dir: Path, port: int) -> Path:
    """The default SQLite file: one per port, so that two servers on one host keep apart (and a second server on
    the same port is refused by the file's lock). ``queue.db``, the name before there was one per port, is still
    the file of the server on 4730 when it exists and the new name does not."""
    path = state_dir / f"queue-{port}.db"
    legacy = state_dir / "queue.db"
    if port == DEFAULT_PORT and not path.exists() and legacy.exists():
        return legacy
    return path


def add_store_arguments(parser: argparse.ArgumentParser, *, gearmand_defaults: bool) -> None:
    group = parser.add_argument_group("persistent queue")
    group.add_argument(
        "--store",
        default=None,
        metavar="URL",
        help="where background jobs are kept: memory, sqlite:///path/queue.db, mysql://user:pw@host/db, "
        "postgresql://user@host/db, redis://host:6379/0 (default: "
        + ("memory, or what -q chooses" if gearmand_defaults else "sqlite in --state-dir")
        + "); GEARTRAIN_STORE also sets it",
    )
    group.add_argument(
        "--state-dir", default=None, help=f"directory of the default sqlite queue ({default_state_dir()})"
    )
    group.add_argument(
        "--store-sync",
        choices=("full", "normal", "off"),
        default=None,
        help="sqlite: sync the log at every commit (full: survives power loss), only at checkpoints (normal: "
        "survives a crash of the server), or never (off)",
    )
    group.add_argument(
        "--store-ack",
        choices=("all", "submits"),
        default="all",
        help="what waits for the store: every acknowledgement (all: a background submit's JOB_CREATED, and a "
        "worker's next reply after a job's result until the job is deleted), or only submits (submits: a finished "
        "job is deleted a transaction later, and may run again if the server crashes in between)",
    )
    group.add_argument(
        "-q",
        "--queue-type",
        default="builtin",
        type=str.lower,
        help="gearmand's queue types: " + ", ".join(QUEUE_TYPES),
    )
    group.add_argument("--libsqlite3-db", default=None, help="-q libsqlite3: database file")
    group.add_argument("--libsqlite3-table", default="gearman_queue", help="-q libsqlite3: table")
    group.add_argument(
        "--store-queue-on-shutdown",
        action="store_true",
        help="-q libsqlite3: write the queue only when the server stops (not crash safe)",
    )
    group.add_argument("--mysql-host", default="localhost", help="-q MySQL: host")
    group.add_argument("--mysql-port", type=int, default=3306, help="-q MySQL: port")
    group.add_argument("--mysql-user", default="root", help="-q MySQL: user")
    group.add_argument("--mysql-password", default="", help="-q MySQL: password")
    group.add_argument("--mysql-db", default="gearmand", help="-q MySQL: database")
    group.add_argument("--mysql-table", default="gearman_queue", help="-q MySQL: table")
    group.add_argument("--libpq-conninfo", default="", help="-q Postgres: libpq connection string or URL")
    group.add_argument("--libpq-table", default="queue", help="-q Postgres: table")
    group.add_argument("--redis-server", default="127.0.0.1", help="-q redis: host")
    group.add_argument("--redis-port", type=int, default=6379, help="-q redis: port")
    group.add_argument("--redis-password", default=None, help="-q redis: password")
    group.add_argument("--redis-prefix", default="_gear_", help="-q redis: key prefix")


def store_from_args(args: argparse.Namespace, *, gearmand_defaults: bool) -> QueueStore | None:
    """The store the flags choose (not opened), or ``None`` for memory only."""
    if args.store:
        return open_store(args.store, sqlite_sync=args.store_sync)
    queue_type = args.queue_type
    if queue_type not in QUEUE_TYPES:
        raise StoreError(f"unknown queue type {queue_type!r} (choose from {', '.join(QUEUE_TYPES)})")
    if queue_type == "builtin":
        if gearmand_defaults:
            return None
        state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
        return open_store(f"sqlite://{default_queue_file(state_dir, args.port)}", sqlite_sync=args.store_sync)
    if queue_type == "libsqlite3":
        if not args.libsqlite3_db:
            raise StoreError("-q libsqlite3 needs --libsqlite3-db FILE")
        from geartrain.store.sqlite import SQLiteStore

        return SQLiteStore(args.libsqlite3_db, table=args.libsqlite3_table, sync=args.store_sync or "full")
    if queue_type == "mysql":
        from geartrain.store.mysql import MySQLStore

        return MySQLStore(
            host=args.mysql_host,
            port=args.mysql_port,
            user=args.mysql_user,
            password=args.mysql_password,
            database=args.mysql_db,
            table=args.mysql_table,
        )
    if queue_type == "postgres":
        from geartrain.store.postgres import PostgresStore

        return PostgresStore(args.libpq_conninfo, table=args.libpq_table)
    from geartrain.store.redis import RedisStore

    return RedisStore(
        host=args.redis_server,
        port=args.redis_port,
        password=args.redis_password,
        db=0,
        prefix=args.redis_prefix,
    )


__all__ = ["add_store_arguments", "describe", "store_from_args"]
