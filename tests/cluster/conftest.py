"""The cluster tests: their harness (tests/cluster/harness.py) as a module of their own, and the fixtures of a
table of a test's own and the nodes started on it."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from collections.abc import Iterator

import pytest
from harness import Node

from databases import BACKENDS, postgres_raw, require_service


@pytest.fixture
def table(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A table of this test's own: (store URL, table name); dropped afterwards with the cluster's rows."""
    require_service("postgres")
    for backend in BACKENDS["postgres"](tmp_path):
        yield backend.url, backend.table
        with postgres_raw() as conn:
            for side_table in ("geartrain_nodes", "geartrain_leader", "geartrain_events"):
                if conn.execute("SELECT to_regclass(%s)", (side_table,)).fetchone()[0] is not None:
                    conn.execute(f"DELETE FROM {side_table} WHERE queue = %s", (backend.table,))


@pytest.fixture
def nodes(table: tuple[str, str], tmp_path: Path) -> Iterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in started:
        node.stop()
