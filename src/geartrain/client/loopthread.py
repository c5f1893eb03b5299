"""A private event loop on a daemon thread, for the blocking wrappers of the asyncio API."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from geartrain.errors import GearmanTimeout

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed (it is faster), asyncio's otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class LoopThread:
    """Runs coroutines on a loop owned by one background thread; :meth:`run` blocks the caller until done."""

    def __init__(self, name: str = "geartrain-loop") -> None:
        self.loop = new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        # Whatever is left (callbacks of closed transports) gets one last turn before the loop closes.
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()

    @property
    def closed(self) -> bool:
        return not self._thread.is_alive()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and return its result; ``timeout`` cancels it and raises GearmanTimeout."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a blocking call was made from the client's own event loop thread")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise GearmanTimeout(f"no result in {timeout}s") from None
        except BaseException:
            future.cancel()
            raise

    def call(self, function: Callable[[], T]) -> T:
        """Run a plain function on the loop thread and return its result."""

        async def wrapper() -> T:
            return function()

        return self.run(wrapper())

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start ``coro`` on the loop without waiting for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop and wait for the thread (idempotent)."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)


async def await_value(awaitable: Awaitable[T]) -> T:
    """Wrap any awaitable in a coroutine (for :meth:`LoopThread.run`)."""
    return await awaitable
