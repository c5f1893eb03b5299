"""Fixtures for the client/worker library tests (`gearman_server` itself comes from tests/conftest.py).

`async def` tests run here on a fresh event loop each, under a deadline (pytest-asyncio is not needed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from libhelpers import start_on_port

from asynctests import run_async_test
from servers import GearmanServer, free_port, require_program


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """``async def`` tests run on a fresh event loop each, under a deadline."""
    return run_async_test(pyfuncitem)


@pytest.fixture
def spare_servers(tmp_path: Path) -> Iterator[Callable[..., GearmanServer]]:
    """Start extra servers: `spare("geartrain")`, `spare("gearmand", port=P)`; all stopped after the test."""
    started: list[GearmanServer] = []

    def spare(name: str = "geartrain", port: int | None = None) -> GearmanServer:
        if name == "gearmand":
            require_program("gearmand")
        server = start_on_port(name, port or free_port(), tmp_path / f"spare-{len(started)}")
        started.append(server)
        return server

    yield spare
    for server in started:
        server.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The runs against the C gearmand use a third-party program: mark them `interop` (the geartrain runs are not)."""
    here = Path(__file__).parent
    for item in items:
        callspec = getattr(item, "callspec", None)
        if here in Path(item.path).parents and callspec and callspec.params.get("gearman_server") == "gearmand":
            item.add_marker(pytest.mark.interop)
