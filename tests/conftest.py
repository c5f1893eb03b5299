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

from browser import browser  # noqa: F401  (headless Chromium for the dashboard tests)
from servers import REPO_ROOT, SERVER_COMMANDS, GearmanServer, require_program, start_server


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to test stale compiled code: a module mypyc compiled (setup.py) is imported instead of its ``.py``,
    so an edit to the source would go untested until the next build."""
    if os.environ.get("GEARTRAIN_PURE_PYTHON"):
        return
    stale = []
    for compiled in (REPO_ROOT / "src" / "geartrain").rglob("*.so"):
        source = compiled.with_name(compiled.name.split(".", 1)[0] + ".py")
        if source.is_file() and source.stat().st_mtime > compiled.stat().st_mtime:
            stale.append(str(source.relative_to(REPO_ROOT)))
    if stale:
        pytest.exit(f"compiled modules older than their source ({', '.join(sorted(stale))}): run `make build`", 2)


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


@pytest.fixture(autouse=True, scope="session")
def private_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Servers started without --store keep their queue under $XDG_STATE_HOME: never the user's real one.

    Without this, jobs a test leaves in ~/.local/state/geartrain/queue-PORT.db come back in the next test (and in the
    next run) that starts a server on the default store.
    """
    state_home = tmp_path_factory.mktemp("xdg-state")
    previous = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(state_home)
    yield state_home
    if previous is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = previous


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
