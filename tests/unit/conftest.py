"""Fixtures of the unit suite: a fresh engine conversation per test."""

from __future__ import annotations

from collections.abc import Iterator

import conversation
import pytest
from conversation import Conversation


@pytest.fixture(autouse=True)
def submit_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Which submit path engines take: engine tests run with both (see pytest_generate_tests), others inline."""
    path = str(getattr(request, "param", "inline"))
    conversation.INLINE_SUBMITS = path == "inline"
    yield path
    conversation.INLINE_SUBMITS = True


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.module.__name__.startswith("test_engine") and "submit_path" in metafunc.fixturenames:
        metafunc.parametrize("submit_path", ["inline", "general"], indirect=True)


@pytest.fixture
def conv() -> Conversation:
    """An engine with handle prefix ``H:test`` and every other setting at its default."""
    return Conversation()
