"""Snapshots of servers' state over the admin protocol, and the rows ``geartrain top`` shows: per function its
queues, throughput and oldest waiting job, per server or merged over several servers (a cluster).

Any Gearman server answers ``status`` and ``prioritystatus`` (gauges: jobs queued and running, workers). geartrain
also answers ``status json``: the same gauges read at one instant (so the columns add up exactly), its counters
(jobs submitted and finished since it started: the throughput is their change per second between two snapshots)
and how long its longest-waiting job has waited. What a server does not answer is shown as unknown (``None``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from geartrain.admin.client import AdminClient
from geartrain.admin.records import FunctionStatus, PriorityStatus, WorkerInfo
from geartrain.errors import AdminError, GearmanError

N = TypeVar("N", int, float)


@dataclass(frozen=True)
class FunctionCounters:
    """What ``status json`` adds for one function: jobs submitted and finished (complete, fail, exception) since
    the server started, and how long the job that has waited longest in its queues has waited (``None``: none)."""

    submitted: int
    finished: int
    oldest: float | None


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
    #: Per function, from geartrain's `status json`; None for a server without it (gearmand).
    counters: dict[str, FunctionCounters] | None = None

    @property
    def worker_connections(self) -> list[WorkerInfo]:
        """Connections that registered at least one function (the others are clients and admin tools)."""
        return [worker for worker in self.workers if worker.functions]


@dataclass(frozen=True)
class FunctionRow:
    """One function as ``top`` shows it, on one server (``server``) or merged over several (``server`` empty,
    ``servers`` counting those that report it).

    ``queued`` = ``high + normal + low + pending``: ``pending`` jobs are counted by ``status`` but in no priority
    queue (waiting for the store to hold them, or out a retry's backoff). The rates are jobs per second submitted
    (``in_rate``) and finished (``out_rate``) since the previous snapshot; ``None`` on the first one, or from a
    server without counters. ``oldest``: seconds the longest-waiting queued job has waited.
    """

    name: str
    queued: int
    running: int
    workers: int
    high: int | None = None
    normal: int | None = None
    low: int | None = None
    pending: int | None = None
    in_rate: float | None = None
    out_rate: float | None = None
    oldest: float | None = None
    server: str = ""
    servers: int = 1


async def take_snapshot(admin: AdminClient) -> ServerSnapshot:
    """Ask one server for its functions (``status json``, else ``status`` and ``prioritystatus``), ``workers``,
    ``version``, ``getpid`` and ``status cluster``.

    ``prioritystatus`` and ``getpid`` are optional (older gearmand lacks the first): their absence is no error. The
    client's connection is kept for the next snapshot (and reopened by the client when it was lost).
    """
    now = time.monotonic()
    try:
        detailed = await admin.status_json()
        counters: dict[str, FunctionCounters] | None = None
        priorities: list[PriorityStatus] = []
        if detailed is not None:
            functions, priorities, counters = _from_json(detailed)
        else:
            functions = await admin.status()
        workers = await admin.workers()
        version = await admin.version()
        pid: int | None = None
        try:
            if detailed is None:
                priorities = await admin.priority_status()
            pid = await admin.getpid()
        except AdminError:
            pass
        cluster = await _cluster_rows(admin)
    except (GearmanError, OSError, ValueError, KeyError, TypeError) as exc:
        await admin.close()
        return ServerSnapshot(admin.name, now, error=str(exc) or type(exc).__name__)
    return ServerSnapshot(
        admin.name, now, functions, priorities, workers, version, pid, cluster=cluster, counters=counters
    )


def _from_json(
    detailed: dict[str, Any],
) -> tuple[list[FunctionStatus], list[PriorityStatus], dict[str, FunctionCounters]]:
    """The rows of ``status``, ``prioritystatus`` and the counters, all from one ``status json`` reply."""
    functions, priorities, counters = [], [], {}
    for entry in detailed["functions"]:
        name, queued = str(entry["name"]), entry["queued"]
        functions.append(FunctionStatus(name, int(entry["total"]), int(entry["running"]), int(entry["workers"])))
        priorities.append(
            PriorityStatus(name, int(queued["high"]), int(queued["normal"]), int(queued["low"]), int(entry["workers"]))
        )
        finished = int(entry["completed"]) + int(entry["failed"]) + int(entry["exceptions"])
        oldest = entry.get("oldest_queued")
        counters[name] = FunctionCounters(int(entry["submitted"]), finished, None if oldest is None else float(oldest))
    return functions, priorities, counters


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
    counters = current.counters or {}
    before: dict[str, FunctionCounters] | None = None
    elapsed = 0.0
    if previous is not None and not previous.error and previous.counters is not None:
        before, elapsed = previous.counters, current.taken - previous.taken
    rows = []
    for status in sorted(current.functions, key=lambda row: row.name):
        high = normal = low = pending = None
        queued = status.queued
        priority = by_priority.get(status.name)
        if priority is not None:
            high, normal, low = priority.high, priority.normal, priority.low
            # Two commands are two instants on gearmand: a job taken in between must not make `pending` negative.
            pending = max(0, status.queued - high - normal - low)
            queued = high + normal + low + pending
        in_rate = out_rate = oldest = None
        now = counters.get(status.name)
        if now is not None:
            oldest = now.oldest
            if before is not None and elapsed > 0:
                old = before.get(status.name, FunctionCounters(0, 0, None))  # new since: counted from 0
                in_rate = max(0, now.submitted - old.submitted) / elapsed
                out_rate = max(0, now.finished - old.finished) / elapsed
        rows.append(
            FunctionRow(
                status.name,
                queued,
                status.running,
                status.workers,
                high,
                normal,
                low,
                pending,
                in_rate,
                out_rate,
                oldest,
                current.server,
            )
        )
    return rows


def merge_rows(rows: Sequence[FunctionRow]) -> list[FunctionRow]:
    """One row per function over several servers: counts and rates summed, the oldest wait the longest; a column
    stays unknown (``None``) only when no server knows it."""
    by_name: dict[str, list[FunctionRow]] = {}
    for row in rows:
        by_name.setdefault(row.name, []).append(row)
    return [
        FunctionRow(
            name,
            sum(row.queued for row in group),
            sum(row.running for row in group),
            sum(row.workers for row in group),
            _sum(row.high for row in group),
            _sum(row.normal for row in group),
            _sum(row.low for row in group),
            _sum(row.pending for row in group),
            _sum(row.in_rate for row in group),
            _sum(row.out_rate for row in group),
            max((row.oldest for row in group if row.oldest is not None), default=None),
            servers=len(group),
        )
        for name, group in sorted(by_name.items())
    ]


def _sum(values: Iterable[N | None]) -> N | None:
    known = [value for value in values if value is not None]
    return sum(known[1:], known[0]) if known else None
