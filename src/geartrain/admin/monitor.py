"""Snapshots of a server's state over the admin protocol, and the rates between two of them (for ``geartrain top``).

The admin protocol has no counters, only gauges (jobs queued and running, workers), so the rates are changes of
those gauges per second between two snapshots: a positive ``queued_rate`` means a backlog growing that fast.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from geartrain.admin.client import AdminClient
from geartrain.admin.records import FunctionStatus, PriorityStatus, WorkerInfo
from geartrain.errors import AdminError, GearmanError


@dataclass(frozen=True)
class ServerSnapshot:
    """What one server reported at ``taken`` (monotonic seconds); ``error`` is set instead when it could not."""

    server: str
    taken: float
    functions: list[FunctionStatus] = field(default_factory=list)
    priorities: list[PriorityStatus] = field(default_factory=list)
    workers: list[WorkerInfo] = field(default_factory=list)
    version: str = ""
    pid: int | None = None
    error: str | None = None
    #: A cluster node's `status cluster` rows (node, address, heartbeat age, jobs held, leader); None otherwise.
    cluster: list[tuple[str, ...]] | None = None

    @property
    def worker_connections(self) -> list[WorkerInfo]:
        """Connections that registered at least one function (the others are clients and admin tools)."""
        return [worker for worker in self.workers if worker.functions]


@dataclass(frozen=True)
class FunctionRow:
    """One function as ``top`` shows it; ``*_rate`` are None on the first snapshot (nothing to compare with)."""

    name: str
    queued: int
    running: int
    workers: int
    high: int | None = None
    normal: int | None = None
    low: int | None = None
    queued_rate: float | None = None
    running_rate: float | None = None


async def take_snapshot(admin: AdminClient) -> ServerSnapshot:
    """Ask one server for ``status``, ``workers``, ``version``, ``prioritystatus`` and ``getpid``.

    ``prioritystatus`` and ``getpid`` are optional (older gearmand lacks the first): their absence is no error. The
    client's connection is kept for the next snapshot (and reopened by the client when it was lost).
    """
    now = time.monotonic()
    try:
        functions = await admin.status()
        workers = await admin.workers()
        version = await admin.version()
        priorities: list[PriorityStatus] = []
        pid: int | None = None
        try:
            priorities = await admin.priority_status()
            pid = await admin.getpid()
        except AdminError:
            pass
        cluster = await _cluster_rows(admin)
    except (GearmanError, OSError, ValueError) as exc:
        await admin.close()
        return ServerSnapshot(admin.name, now, error=str(exc) or type(exc).__name__)
    return ServerSnapshot(admin.name, now, functions, priorities, workers, version, pid, cluster=cluster)


async def _cluster_rows(admin: AdminClient) -> list[tuple[str, ...]] | None:
    """`status cluster` of a geartrain cluster node; None for any other server (geartrain without --cluster answers
    ERR; gearmand ignores the second word and answers `status`, whose rows have four fields, not five)."""
    try:
        lines = await admin.command("status cluster")
    except AdminError:
        return None
    rows = [tuple(line.decode("utf-8", "replace").split("\t")) for line in lines]
    return rows if rows and all(len(row) == 5 for row in rows) else None


async def take_snapshots(admins: list[AdminClient]) -> list[ServerSnapshot]:
    """Every server at once, in the order given."""
    return list(await asyncio.gather(*(take_snapshot(admin) for admin in admins)))


def function_rows(current: ServerSnapshot, previous: ServerSnapshot | None = None) -> list[FunctionRow]:
    """The functions of ``current``, by name, with rates against ``previous`` (same server, taken earlier)."""
    by_priority = {row.name: row for row in current.priorities}
    before = {row.name: row for row in previous.functions} if previous is not None and not previous.error else None
    elapsed = current.taken - previous.taken if previous is not None else 0.0
    rows = []
    for status in sorted(current.functions, key=lambda row: row.name):
        queued_rate = running_rate = None
        if before is not None and elapsed > 0:
            old = before.get(status.name)
            old_queued, old_running = (old.queued, old.running) if old is not None else (0, 0)
            queued_rate = (status.queued - old_queued) / elapsed
            running_rate = (status.running - old_running) / elapsed
        priority = by_priority.get(status.name)
        rows.append(
            FunctionRow(
                status.name,
                status.queued,
                status.running,
                status.workers,
                priority.high if priority else None,
                priority.normal if priority else None,
                priority.low if priority else None,
                queued_rate,
                running_rate,
            )
        )
    return rows
