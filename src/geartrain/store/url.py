"""Choose a store by URL.

``memory``                                      no persistence (jobs live in the server's memory only)
``sqlite:///var/lib/geartrain/queue.db``        a file (everything after ``sqlite://`` is the path)
``mysql://user:pw@host:3306/db``                MySQL / MariaDB
``postgresql://user:pw@host:5432/db``           PostgreSQL (``postgres://`` too)
``redis://:pw@host:6379/0``                     Redis

Query parameters: ``table`` (SQL stores; gearmand's defaults ``gearman_queue`` / ``queue``), ``sync`` (sqlite:
full, normal, off), ``prefix`` (redis; ``_gear_``).
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from geartrain.store.base import QueueStore, StoreError

SCHEMES = ("memory", "sqlite", "mysql", "postgresql", "postgres", "redis")


def describe(url: str) -> str:
    """The URL with any password hidden, for logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def open_store(url: str, *, sqlite_sync: str | None = None) -> QueueStore | None:
    """The store a URL names, not yet opened; ``None`` for ``memory`` (no persistence)."""
    if url in ("memory", "memory:", "memory://"):
        return None
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    if scheme == "sqlite":
        from geartrain.store.sqlite import SQLiteStore

        path = unquote(url.split("://", 1)[1].split("?", 1)[0]) if "://" in url else unquote(parts.path)
        if not path:
            raise StoreError("sqlite URL needs a file path: sqlite:///path/to/queue.db")
        return SQLiteStore(
            path, table=query.get("table", "gearman_queue"), sync=sqlite_sync or query.get("sync", "full")
        )
    if scheme == "mysql":
        from geartrain.store.mysql import MySQLStore

        return MySQLStore(
            host=parts.hostname or "localhost",
            port=parts.port or 3306,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            database=parts.path.lstrip("/") or "gearmand",
            table=query.get("table", "gearman_queue"),
        )
    if scheme in ("postgresql", "postgres"):
        from geartrain.store.postgres import PostgresStore

        table = query.pop("table", "queue")
        conninfo = parts._replace(query="&".join(f"{k}={v}" for k, v in query.items())).geturl()
        return PostgresStore(conninfo, table=table)
    if scheme == "redis":
        from geartrain.store.redis import RedisStore

        return RedisStore(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            password=unquote(parts.password) if parts.password else None,
            db=int(parts.path.lstrip("/") or 0),
            prefix=query.get("prefix", "_gear_"),
        )
    raise StoreError(f"unknown store {describe(url)!r}: use one of {', '.join(SCHEMES)}")
