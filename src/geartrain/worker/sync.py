"""The blocking form of :class:`~geartrain.worker.Worker`: ``work()`` runs it on an event loop in the calling thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from geartrain.client.loopthread import new_event_loop
from geartrain.client.transport import ServerSpec
from geartrain.worker.function import Executor, WorkerFunction
from geartrain.worker.worker import Worker


class SyncWorker:
    """Same arguments and :meth:`register` as :class:`~geartrain.worker.Worker`; :meth:`work` blocks until
    :meth:`stop` is called (from any thread, or a signal handler) or the process gets Ctrl-C.

    Plain functions get a :class:`~geartrain.worker.ThreadJob` (``job.send_data(...)`` without ``await``) and run
    in the worker's thread pool, so the connections keep being served while they work.
    """

    def __init__(self, servers: ServerSpec | Sequence[ServerSpec] = "localhost:4730", **options: Any) -> None:
        self.worker = Worker(servers, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._stop_requested: bool | None = None  # graceful flag of a stop() that came before work()

    def register(
        self, name: str, fn: WorkerFunction, *, timeout: float | None = None, executor: Executor | None = None
    ) -> None:
        """See :meth:`Worker.register`. May be called before or during :meth:`work`."""
        loop = self._loop
        if loop is None or not loop.is_running():
            self.worker.register(name, fn, timeout=timeout, executor=executor)
        else:
            asyncio.run_coroutine_threadsafe(self._register(name, fn, timeout, executor), loop).result(10)

    async def _register(self, name: str, fn: WorkerFunction, timeout: float | None, executor: Executor | None) -> None:
        self.worker.register(name, fn, timeout=timeout, executor=executor)

    def work(self) -> None:
        """Serve jobs until :meth:`stop`. Ctrl-C stops gracefully (running jobs are finished first)."""
        loop = new_event_loop()
        with self._lock:
            self._loop = loop
            if self._stop_requested is not None:
                self.worker.stop(self._stop_requested)
                self._stop_requested = None
        try:
            runner = loop.create_task(self.worker.run())
            try:
                loop.run_until_complete(runner)
            except KeyboardInterrupt:
                self.worker.stop(graceful=True)
                loop.run_until_complete(runner)
        finally:
            with self._lock:
                self._loop = None
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self, graceful: bool = True) -> None:
        """Make :meth:`work` return: after the running jobs end (``graceful``), or at once. Thread-safe."""
        with self._lock:
            loop = self._loop
            if loop is None:
                self._stop_requested = graceful
                return
        loop.call_soon_threadsafe(self.worker.stop, graceful)

    @property
    def jobs_done(self) -> int:
        return self.worker.jobs_done

    @property
    def connected(self) -> list[str]:
        return self.worker.connected
