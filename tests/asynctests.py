"""``async def`` tests without pytest-asyncio, for the conftests that want them (tests/client, tests/security).

Each such conftest hands its ``pytest_pyfunc_call`` to :func:`run_async_test`, so the rule stays per directory:
only the tests under those conftests are run this way.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest

TEST_TIMEOUT = 60.0  # seconds for any one async test


def run_async_test(pyfuncitem: pytest.Function, timeout: float = TEST_TIMEOUT) -> bool | None:
    """Run an ``async def`` test on a fresh event loop under a deadline and return True (the call is done); for
    any other test return None, so that pytest calls it as usual."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}

    async def bounded() -> None:
        async with asyncio.timeout(timeout):
            await pyfuncitem.obj(**kwargs)

    asyncio.run(bounded())
    return True
