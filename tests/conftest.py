"""Shared fixtures. `gearman_server` runs each test against every selected server implementation.

Select implementations with GEARTRAIN_INTEROP_SERVERS (comma-separated: geartrain, gearmand; default both), or with
`pytest -k gearmand` / `-k geartrain` on the parameter id.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers import SERVER_COMMANDS, GearmanServer, require_program, start_server


def _selected_servers() -> list[str]:
    raw = os.environ.get("GEARTRAIN_INTEROP_SERVERS", "").strip()
    if not raw:
        return list(SERVER_COMMANDS)
    names = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SERVER_COMMANDS))
    if unknown:
        raise pytest.UsageError(
            f"GEARTRAIN_INTEROP_SERVERS: unknown server(s) {unknown}; choose from {sorted(SERVER_COMMANDS)}"
        )
    return names


@pytest.fixture(params=_selected_servers())
def gearman_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GearmanServer]:
    """A fresh server on a free 127.0.0.1 port, stopped (SIGTERM, then SIGKILL) after the test."""
    name: str = request.param
    if name == "gearmand":
        require_program("gearmand")
    workdir = tmp_path / "server"
    workdir.mkdir()
    server = start_server(name, workdir)
    try:
        yield server
    finally:
        status = server.stop()
        # Captured by pytest and shown only when the test fails.
        print(f"--- {name} on {server.address}, exit status {status}, log:\n{server.log_tail()}")
    # A server that crashed during the test, or needed SIGKILL to stop, is a bug even if the test passed.
    assert status in (0, -signal.SIGTERM), f"{name} exited with status {status}:\n{server.log_tail()}"
