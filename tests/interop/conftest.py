"""Fixtures for the interop tests (the `gearman_server` fixture itself lives in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from programs import Children

from background import program_group


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Children]:
    """Starts background programs (workers, clients) and stops any still running after the test."""
    with program_group(tmp_path, "children", Children) as group:
        yield group
