"""Fixtures for the command line tool tests (`gearman_server` itself comes from tests/conftest.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from clitools import SCRIPTS, Background, Programs, at

from background import program_group
from servers import GearmanServer, status_of, wait_until


@pytest.fixture
def programs(tmp_path: Path) -> Iterator[Programs]:
    """Starts background programs (workers, clients) and stops any still running after the test."""
    with program_group(tmp_path, "programs", Programs) as group:
        yield group


@pytest.fixture
def events_worker(gearman_server: GearmanServer, programs: Programs) -> Background:
    """scripts/events_worker.py serving its functions (chatty, zero, echo, up, fail, exc) until the test ends."""
    worker = programs.start("events-worker", [sys.executable, str(SCRIPTS / "events_worker.py"), *at(gearman_server)])

    def ready() -> bool:
        if not worker.running():
            raise AssertionError(f"events worker exited: {worker.stderr!r}")
        row = status_of(gearman_server, "chatty")  # announced last
        return row is not None and row.workers >= 1

    wait_until(ready, message="the events worker to register")
    return worker


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The runs against the C gearmand use a third-party program: mark them `interop` (tests that run the C tools
    or PHP carry the mark themselves)."""
    here = Path(__file__).parent
    for item in items:
        callspec = getattr(item, "callspec", None)
        if here in Path(item.path).parents and callspec and callspec.params.get("gearman_server") == "gearmand":
            item.add_marker(pytest.mark.interop)
