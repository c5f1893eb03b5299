"""Clients and workers (geartrain's own libraries) talking to a server through a FaultyProxy.

Each foreground job must end exactly once from its client's point of view: the right result, or a clear
:class:`~geartrain.errors.GearmanError` (connection lost, no server) — never a wrong result, a second answer or a
hang. Each background job the server acknowledged must run to completion at least once.
Used by tests/reliability/test_faults.py (a short run) and benchmarks/reliability.py (a long one).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from geartrain import Client, Worker, WorkerJob
from geartrain.errors import GearmanError, GearmanTimeout, NoServersAvailable
from servers import admin, parse_status

FUNCTION = "reverse"
T = TypeVar("T")
CALL_TIMEOUT = 30.0  # a bound, not an expectation: a call that reaches it is reported as a hang


@dataclass
class FaultReport:
    foreground_ok: int = 0
    foreground_errors: collections.Counter[str] = field(default_factory=collections.Counter)
    wrong_results: int = 0
    hangs: int = 0
    background_acknowledged: int = 0
    background_refused: int = 0
    background_lost: int = 0
    left_on_server: int = -1  # jobs the server still held at the end (-1: not checked)
    executions: int = 0
    resent: int = 0  # calls tried again after NoServersAvailable (nothing had been sent)


def _jobs_held(server_address: str) -> int:
    return sum(row.total for row in parse_status(admin(server_address, "status")).values())


async def _retry_unsent(call: Callable[[], Awaitable[T]], report: FaultReport, attempts: int = 200) -> T:
    """What an application does with NoServersAvailable: the job was never sent (the client library is backing
    off after a lost connection, or found no server), so trying again later cannot run it twice."""
    for _ in range(attempts - 1):
        try:
            return await call()
        except NoServersAvailable:
            report.resent += 1
            await asyncio.sleep(0.02)
    return await call()


async def _client_run(
    address: str, name: str, jobs: int, background: int, report: FaultReport, acknowledged: set[str]
) -> None:
    client = Client(address, backoff_initial=0.01, backoff_max=0.2)
    try:
        for number in range(jobs):
            payload = f"{name}-{number}-payload".encode()
            try:
                result = await _retry_unsent(partial(client.do, FUNCTION, payload, timeout=CALL_TIMEOUT), report)
            except GearmanTimeout:
                report.hangs += 1
            except GearmanError as error:
                report.foreground_errors[type(error).__name__] += 1
            else:
                if result == payload[::-1]:
                    report.foreground_ok += 1
                else:
                    report.wrong_results += 1
        for number in range(background):
            unique = f"{name}-bg-{number}"
            try:
                submit = partial(client.submit, FUNCTION, unique, unique=unique, background=True, timeout=CALL_TIMEOUT)
                await _retry_unsent(submit, report)
            except GearmanError:
                report.background_refused += 1
            else:
                acknowledged.add(unique)
                report.background_acknowledged += 1
    finally:
        await client.close()


async def run_faults(
    address: str, clients: int, jobs: int, background: int, workers: int = 3, server_address: str | None = None
) -> FaultReport:
    """``clients`` clients each run ``jobs`` foreground jobs then submit ``background`` background jobs, while
    ``workers`` workers (all through ``address``) serve them. With ``server_address`` (the server itself, not the
    proxy), also wait for the server to hold no job before the workers stop: jobs of clients that gave up are
    dropped when a worker reaches them."""
    report = FaultReport()
    acknowledged: set[str] = set()
    completed: set[str] = set()

    async def reverse(job: WorkerJob) -> bytes:
        report.executions += 1
        if job.unique:
            completed.add(job.unique)
        return job.data[::-1]

    pool = []
    for _ in range(workers):
        worker = Worker(address, backoff_initial=0.01, backoff_max=0.2, concurrency=2)
        worker.register(FUNCTION, reverse)
        pool.append(worker)
    tasks = [asyncio.ensure_future(worker.run()) for worker in pool]
    try:
        await asyncio.gather(
            *(_client_run(address, f"c{i}", jobs, background, report, acknowledged) for i in range(clients))
        )
        # Acknowledged background jobs run even when their worker's connection is cut mid-job (they are requeued).
        deadline = time.monotonic() + 60
        while not acknowledged <= completed and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        report.background_lost = len(acknowledged - completed)
        if server_address is not None:
            deadline = time.monotonic() + 30
            while (held := _jobs_held(server_address)) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            report.left_on_server = held
    finally:
        for worker in pool:
            worker.stop(graceful=False)
        await asyncio.gather(*tasks, return_exceptions=True)
    return report
