"""A geartrain server running in this process (own event loop on a thread), on a free port.

Shared by tests/integration (through its conftest's fixtures), tests/reliability and tests/security (tlshelpers).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import replace

from geartrain.server.config import ServerConfig
from geartrain.server.core.config import EngineConfig
from geartrain.server.node import build_node
from geartrain.server.server import new_event_loop
from geartrain.store.base import QueueStore


class InProcessServer:
    """Runs a node (:func:`build_node`) on a background thread; ``address`` is ``127.0.0.1:<port>``; ``server`` is
    its Gearman side, ``node.http`` its HTTP listener (with ``http_port`` in the config)."""

    def __init__(self, config: ServerConfig, store: QueueStore | None = None) -> None:
        self.config = config
        self.loop = new_event_loop(use_uvloop=False)
        self.node = build_node(config, store)
        self.server = self.node.gearman
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="geartrain-test-server", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            await self.node.start()
            self._ready.set()
            await self.node.serve()

        try:
            self.loop.run_until_complete(main())
        except BaseException as exc:  # surfaced to the test by start()/stop()
            self._error = exc
            self._ready.set()

    def start(self) -> InProcessServer:
        self.thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("in-process server did not start")
        if self._error is not None:
            raise self._error
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def stopped(self) -> bool:
        return not self.thread.is_alive()

    def call(self, function: Callable[[], object]) -> None:
        """Run ``function`` on the server's loop (thread-safe)."""
        self.loop.call_soon_threadsafe(function)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.server.stop)
            self.thread.join(10)
        if not self.loop.is_closed() and not self.thread.is_alive():
            self.loop.close()


def make_config(**engine_options: object) -> ServerConfig:
    engine = replace(EngineConfig(handle_prefix=b"H:test"), **engine_options)  # type: ignore[arg-type]
    return ServerConfig(hosts=("127.0.0.1",), port=0, engine=engine)
