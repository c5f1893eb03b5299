"""The process the manager runs for a Python group: ``python -m geartrain.manager.child``.

It imports the group's callable, serves its functions with :class:`~geartrain.worker.Worker`, and exits 0 when
it is done: after ``--recycle-jobs`` jobs, or on SIGTERM/SIGINT once the job it is running has ended (the manager
relies on both to recycle and drain without cutting a job off). It also stops when its manager goes away, so a
``kill -9`` of the manager leaves no orphans behind.

With ``--check`` it only imports the callable, in the environment and directory the manager would run it in,
and exits: that is how ``geartrain manager --check`` finds a callable that would never start.

Exit statuses: 0 done (recycled, stopped, manager gone; with ``--check``: the callable loads), 3 the callable
cannot be imported (with ``--check``, the reason is the last line of standard output).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from geartrain.client.loopthread import new_event_loop
from geartrain.security.environment import (
    libgearman_tls_from_environment,
    secret_from_environment,
    ssl_from_environment,
)
from geartrain.worker import Worker

EXIT_IMPORT = 3
PARENT_POLL_INTERVAL = 1.0  # seconds between checks that the manager is still there

log = logging.getLogger("geartrain.manager.child")


def resolve(path: str) -> Callable[..., Any]:
    """``"package.module:function"`` (or ``module:Class.method``) -> the object; raises ImportError/AttributeError."""
    module_name, _, attribute = path.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{path} is not callable")
    return target  # type: ignore[no-any-return]


class ChildWorker:
    """A Worker serving one callable, which stops grabbing after ``recycle_jobs`` jobs have started."""

    def __init__(self, options: argparse.Namespace, fn: Callable[..., Any]) -> None:
        self.options = options
        # TLS and the secret come from the environment (the group's `env`, or the manager's own), as for `gearman -S`.
        tls = libgearman_tls_from_environment() if ssl_from_environment() else None
        self.worker = Worker(
            options.server,
            concurrency=options.concurrency,
            client_id=options.client_id,
            tls=tls,
            secret=secret_from_environment(),
        )
        self.started = 0
        self.reason = "stopped"
        self._loop: asyncio.AbstractEventLoop | None = None
        wrapped = self._counting_async(fn) if inspect.iscoroutinefunction(fn) else self._counting_sync(fn)
        for name in options.function:
            self.worker.register(name, wrapped)

    def _job_started(self) -> None:
        """Runs on the loop: stop taking jobs once the recycle count is reached (the job itself runs to its end)."""
        self.started += 1
        limit = self.options.recycle_jobs
        if limit and self.started >= limit:
            self.reason = f"recycled after {self.started} jobs"
            self.worker.stop(graceful=True)

    def _counting_async(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def counted(job: Any) -> Any:
            self._job_started()
            return await fn(job)

        return counted

    def _counting_sync(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def counted(job: Any) -> Any:
            # Runs in the worker's thread pool: the count is kept on the loop.
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._job_started)
            return fn(job)

        return counted

    def stop(self, reason: str) -> None:
        self.reason = reason
        self.worker.stop(graceful=True)

    async def watch_parent(self, parent: int) -> None:
        while True:
            await asyncio.sleep(PARENT_POLL_INTERVAL)
            if os.getppid() != parent:
                self.stop("the manager went away")
                return

    async def run(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop, f"stopped by {signal.Signals(signum).name}")
        watcher = asyncio.ensure_future(self.watch_parent(os.getppid()))
        try:
            await self.worker.run()
        finally:
            watcher.cancel()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m geartrain.manager.child")
    parser.add_argument("--server", action="append", required=True, help="a job server (repeatable)")
    parser.add_argument("--callable", required=True, help="package.module:function")
    parser.add_argument("--function", action="append", required=True, help="a Gearman function to serve")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--recycle-jobs", type=int, default=0)
    parser.add_argument("--client-id")
    parser.add_argument("--check", action="store_true", help="import the callable and exit (0: it loads)")
    return parser


def check(path: str) -> int:
    """``--check``: load the callable and say why not on stdout's last line (whatever the module printed comes
    before it). SystemExit counts too: a module that exits while being imported cannot serve either."""
    try:
        resolve(path)
    except (Exception, SystemExit) as exc:
        reason = str(exc).replace("\n", " ").strip()
        sys.stdout.write(f"\n{type(exc).__name__}: {reason}\n" if reason else f"\n{type(exc).__name__}\n")
        return EXIT_IMPORT
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    if options.check:
        return check(options.callable)
    prog = options.client_id or "worker"
    logging.basicConfig(level=logging.WARNING, format=f"{prog}[{os.getpid()}]: %(message)s")
    log.setLevel(logging.INFO)  # the reason this process ends, for whoever reads the manager's stderr
    try:
        fn = resolve(options.callable)
    except Exception as exc:
        sys.stderr.write(f"{prog}: cannot load {options.callable}: {type(exc).__name__}: {exc}\n")
        return EXIT_IMPORT
    child = ChildWorker(options, fn)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(child.run())
    log.info("%s; %d jobs done", child.reason, child.worker.jobs_done)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
