"""Fixtures for the store contract: every store, each test on a table or key prefix of its own, dropped afterwards.

The database helpers live in tests/databases.py (shared with the server-level store tests).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from databases import BACKENDS, SERVER_STORES, STORES, Backend, require_service
from geartrain.store.base import QueueStore


@pytest.fixture(params=STORES)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each store in turn, on a table (or key prefix) of this test's own."""
    name: str = request.param
    if name in SERVER_STORES:
        require_service(name)
    yield from BACKENDS[name](tmp_path)


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (the kernel just handed it out and it was closed again)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def store(backend: Backend) -> Iterator[QueueStore]:
    """An opened store of `backend`, closed after the test."""
    opened = backend.make()
    opened.open()
    try:
        yield opened
    finally:
        opened.close()
