"""Helpers for the client/worker library tests: polling with a deadline, running a worker, (re)starting servers."""

from __future__ import annotations

import asyncio
import inspect
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from geartrain import Worker
from servers import (
    HOST,
    SERVER_COMMANDS,
    START_TIMEOUT,
    GearmanServer,
    ServerStartError,
    _server_env,
    _wait_ready,
    free_port,
)

POLL = 0.01
T = TypeVar("T")


async def eventually(predicate: Callable[[], Awaitable[T] | T], timeout: float = 10.0, message: str = "") -> T:
    """Poll `predicate` (sync or async) until it returns something truthy and return it; fail after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}; last {value!r}")
        await asyncio.sleep(POLL)


@asynccontextmanager
async def running(worker: Worker, *, graceful: bool = False, servers: int | None = None) -> AsyncIterator[Worker]:
    """Run `worker` in the background for the block; first wait until it is connected to `servers` servers
    (default: all of them) and has registered its functions there."""
    task = asyncio.create_task(worker.run())
    wanted = len(worker._addresses) if servers is None else servers
    try:
        await eventually(lambda: len(worker.connected) >= wanted or task.done(), message="the worker to connect")
        if task.done():
            task.result()
        yield worker
    finally:
        worker.stop(graceful=graceful)
        await asyncio.wait_for(task, 15)


def start_on_port(name: str, port: int, workdir: Path) -> GearmanServer:
    """Start server `name` on the given port (to bring one back where clients and workers expect it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}-{port}-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            SERVER_COMMANDS[name](port, workdir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_server_env(),
            cwd=workdir,
            start_new_session=True,
        )
    server = GearmanServer(name, HOST, port, process, log_path)
    try:
        _wait_ready(server, time.monotonic() + START_TIMEOUT)
    except ServerStartError:
        server.stop()
        raise
    return server


def new_server(name: str, workdir: Path) -> GearmanServer:
    return start_on_port(name, free_port(), workdir)


def kill(server: GearmanServer) -> None:
    """SIGKILL, as a crash would: nobody is told."""
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)
