"""Fixtures of the HTTP suite: real server processes with the HTTP listener on (see http_harness.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from http_harness import HttpServer, start_http_server


@pytest.fixture
def http_server_factory(tmp_path: Path) -> Iterator[Callable[..., HttpServer]]:
    """Start servers with extra flags (default ``--store memory``); all are stopped after the test."""
    started: list[HttpServer] = []

    def start(*extra: str) -> HttpServer:
        server = start_http_server(tmp_path, *extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def http_server(http_server_factory: Callable[..., HttpServer]) -> HttpServer:
    return http_server_factory()
