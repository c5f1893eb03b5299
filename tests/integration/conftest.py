"""Fixtures: a geartrain server in this process on a free port (the class lives in tests/inprocess.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from geartrain.server.config import ServerConfig
from inprocess import InProcessServer, make_config


@pytest.fixture
def server_factory() -> Iterator[Callable[..., InProcessServer]]:
    """Start servers with engine options (``job_retries=2`` ...) or a whole ``config=ServerConfig(...)``."""
    started: list[InProcessServer] = []

    def start(config: ServerConfig | None = None, **engine_options: object) -> InProcessServer:
        server = InProcessServer(config or make_config(**engine_options)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(server_factory: Callable[..., InProcessServer]) -> InProcessServer:
    return server_factory()
