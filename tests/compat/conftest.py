"""Fixtures for the python-gearman compatibility tests (`gearman_server` comes from tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The runs against the C gearmand use a third-party program: mark them `interop`."""
    here = Path(__file__).parent
    for item in items:
        callspec = getattr(item, "callspec", None)
        if here in Path(item.path).parents and callspec and callspec.params.get("gearman_server") == "gearmand":
            item.add_marker(pytest.mark.interop)
