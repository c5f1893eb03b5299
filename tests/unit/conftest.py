"""Fixtures of the unit suite: a fresh engine conversation per test."""

from __future__ import annotations

import pytest
from conversation import Conversation


@pytest.fixture
def conv() -> Conversation:
    """An engine with handle prefix ``H:test`` and every other setting at its default."""
    return Conversation()
