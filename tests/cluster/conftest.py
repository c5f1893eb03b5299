"""The cluster tests: their harness (tests/cluster/harness.py) as a module of their own, and the fixtures of a
queue of a test's own (a PostgreSQL table or a Redis prefix) and the nodes started on it."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from collections.abc import Iterator

import pytest
from harness import Node, Queue

from databases import BACKENDS, postgres_raw, redis_raw, require_service

CLUSTER_STORES = ("postgres", "redis")


def _queue(kind: str, tmp_path: Path) -> Iterator[Queue]:
    require_service(kind)
    for backend in BACKENDS[kind](tmp_path):
        yield Queue(kind, backend.url, backend.table)
        if kind == "postgres":
            with postgres_raw() as conn:
                for side_table in ("geartrain_nodes", "geartrain_leader", "geartrain_events"):
                    if conn.execute("SELECT to_regclass(%s)", (side_table,)).fetchone()[0] is not None:
                        conn.execute(f"DELETE FROM {side_table} WHERE queue = %s", (backend.table,))
        else:
            raw = redis_raw()
            try:
                for key in raw.scan_iter(match=f"gt:{backend.table}:*", count=1000):
                    raw.delete(key)
            finally:
                raw.close()


@pytest.fixture(params=CLUSTER_STORES)
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Queue]:
    """A queue of this test's own on each store a cluster runs on; emptied afterwards with the cluster's records."""
    yield from _queue(request.param, tmp_path)


@pytest.fixture
def table(tmp_path: Path) -> Iterator[Queue]:
    """A PostgreSQL table of this test's own (tests that need one store, not each)."""
    yield from _queue("postgres", tmp_path)


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in started:
        node.stop()
