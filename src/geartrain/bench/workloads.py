"""The benchmark workloads of issue 5, each against a running server at ``Target``; each returns a ``Result``.

Every workload uses a function name of its own run (``bench-<workload>-<time>``), so runs against a shared server
never pick up each other's queued jobs. Submitted jobs stay queued where the workload has no workers (bg-submit,
memory, persist): run those against a server you can throw away.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from geartrain.bench.harness import run_tasks
from geartrain.bench.measure import ServerMeter, percentile, process_rss_bytes
from geartrain.bench.roundtrip import client_tasks, echo_latencies, idle_task
from geartrain.bench.submit import submit_tasks
from geartrain.bench.workers import worker_tasks


@dataclass(frozen=True)
class Target:
    """A server to measure; ``pid`` (when known and local) adds its CPU time and RSS to the results."""

    host: str
    port: int
    pid: int | None = None
    name: str = "server"


@dataclass
class Result:
    """One measurement. ``metrics`` hold the figures (see ``METRICS``), ``counts`` what was sent and answered."""

    workload: str
    variant: str
    server: str
    metrics: dict[str, float]
    counts: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    cpu_jobs: int = 0  # the jobs (or echoes) the CPU times were spent on
    server_cpu_s: float | None = None
    generator_cpu_s: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# metric -> (column label, True when higher is better)
METRICS: dict[str, tuple[str, bool]] = {
    "jobs_per_s": ("jobs/s", True),
    "p50_us": ("p50 µs", False),
    "p99_us": ("p99 µs", False),
    "p50_before_us": ("p50 µs before", False),
    "bytes_per_job": ("bytes/job", False),
    "seconds": ("seconds", False),
    "rss_mib": ("RSS MiB", False),
}


def _function(workload: str) -> str:
    return f"bench-{workload}-{time.time_ns()}"


def _processes(connections: int, processes: int | None) -> int:
    """Load-generator processes: one unless asked, as in the cross-check harness (gbench's ``--procs 1``). On a
    2-core machine, more processes than the server leaves room for cost context switches, not throughput."""
    return max(1, min(connections, processes or 1))


def bg_submit(
    target: Target,
    *,
    jobs: int = 200_000,
    connections: int = 1,
    unique: bool = False,
    payload_size: int = 100,
    processes: int | None = None,
    workload: str = "bg-submit",
    variant: str | None = None,
    duration: float | None = None,
    warmup: float = 1.0,
) -> Result:
    """``connections`` connections pipeline SUBMIT_JOB_BG: ``jobs`` of them, jobs/s until the last JOB_CREATED; or,
    with ``duration``, for ``warmup + duration`` seconds, jobs/s acknowledged in the last ``duration`` (the
    cross-check harness's method, what ``make bench`` uses)."""
    procs = _processes(connections, processes)
    function = _function(workload)
    tasks = submit_tasks(
        target.host,
        target.port,
        jobs=jobs,
        connections=connections,
        processes=procs,
        function=function,
        payload_size=payload_size,
        unique=unique,
        duration=duration,
        warmup=warmup,
    )
    meter = _Meter(target)
    start, results = run_tasks(tasks, on_start=meter.begin)
    acknowledged = sum(r["acknowledged"] for r in results)
    if duration is None:
        elapsed = max(r["end"] for r in results) - start
        rate = acknowledged / elapsed
        params: dict[str, Any] = {"jobs": jobs}
    else:
        elapsed = max(r["window_s"] for r in results)
        rate = sum(r["window_acknowledged"] for r in results) / elapsed
        params = {"duration": duration, "warmup": warmup}
    params |= {"connections": connections, "unique": unique, "payload_size": payload_size}
    return Result(
        workload=workload,
        variant=variant or f"{workload} c{connections} unique={'per-job' if unique else 'empty'}",
        server=target.name,
        metrics={"jobs_per_s": rate},
        counts={"submitted": sum(r["submitted"] for r in results), "acknowledged": acknowledged},
        elapsed_s=elapsed,
        cpu_jobs=acknowledged,
        server_cpu_s=meter.cpu(),
        generator_cpu_s=sum(r["cpu_s"] for r in results),
        params=params | {"processes": procs, "function": function},
    )


def persist(
    target: Target, *, jobs: int = 10_000, connections: int = 8, processes: int | None = None, store: str = "sqlite"
) -> Result:
    """bg-submit with a distinct unique per job, meant for a server on a durable store (each JOB_CREATED is
    a stored job); ``store`` names it in the variant."""
    return bg_submit(
        target,
        jobs=jobs,
        connections=connections,
        unique=True,
        processes=processes,
        workload="persist",
        variant=f"persist c{connections} unique=per-job, {store}",
    )


def drain(
    target: Target,
    *,
    jobs: int = 200_000,
    workers: int = 1,
    processes: int | None = None,
    payload_size: int = 100,
    unique: bool = False,
    store: str = "",
) -> Result:
    """Queue ``jobs`` background jobs, then ``workers`` workers GRAB_JOB / WORK_COMPLETE them all: jobs/s.

    ``unique``: a distinct unique per job (what a persistent gearmand needs: its SQL stores refuse a second job
    without one). ``store`` only names the store in the variant."""
    function = _function("drain")
    fill = submit_tasks(
        target.host,
        target.port,
        jobs=jobs,
        connections=2,
        processes=2,
        function=function,
        payload_size=payload_size,
        unique=unique,
    )
    _, filled = run_tasks(fill)
    queued = sum(r["acknowledged"] for r in filled)
    result = drain_queued(target, function, workers=workers, processes=processes)
    result.variant = f"drain {workers} worker{'s' if workers > 1 else ''}" + (f", {store}" if store else "")
    result.counts["queued"] = queued
    result.params |= {"jobs": jobs, "payload_size": payload_size, "unique": unique}
    return result


def drain_queued(
    target: Target, function: str, *, workers: int = 1, processes: int | None = None, limit: int | None = None
) -> Result:
    """``workers`` workers take the jobs already queued for ``function`` (``limit``: only that many each)."""
    procs = _processes(workers, processes)
    tasks = worker_tasks(
        target.host,
        target.port,
        workers=workers,
        processes=procs,
        function=function,
        mode="drain",
        stop_after=600,
        limit=limit,
    )
    meter = _Meter(target)
    start, results = run_tasks(tasks, on_start=meter.begin)
    elapsed = max(r["end"] for r in results) - start
    completed = sum(r["completed"] for r in results)
    return Result(
        workload="drain",
        variant=f"drain {workers} worker{'s' if workers > 1 else ''}",
        server=target.name,
        metrics={"jobs_per_s": completed / elapsed},
        counts={"completed": completed},
        elapsed_s=elapsed,
        cpu_jobs=completed,
        server_cpu_s=meter.cpu(),
        generator_cpu_s=sum(r["cpu_s"] for r in results),
        params={"workers": workers, "processes": procs, "function": function, "limit": limit},
    )


def round_trip(
    target: Target,
    *,
    clients: int = 16,
    depth: int = 1,
    workers: int = 4,
    duration: float = 3.0,
    warmup: float = 0.5,
    payload_size: int = 100,
    processes: int | None = None,
    extra_tasks: list[tuple[Any, dict[str, Any]]] | None = None,
    variant: str | None = None,
) -> Result:
    """``clients`` connections with ``depth`` foreground jobs each in flight, ``workers`` echo workers."""
    function = _function("round-trip")
    procs = _processes(clients, processes)
    tasks = list(extra_tasks or [])
    if procs > 1:  # workers in processes of their own; with one process they share the clients' selector
        tasks += worker_tasks(
            target.host,
            target.port,
            workers=workers,
            processes=_processes(workers, processes),
            function=function,
            mode="echo",
            stop_after=warmup + duration + 1.0,
        )
    tasks += client_tasks(
        target.host,
        target.port,
        clients=clients,
        depth=depth,
        processes=procs,
        function=function,
        payload_size=payload_size,
        warmup=warmup,
        duration=duration,
        workers=0 if procs > 1 else workers,
    )
    meter = _Meter(target)
    _, results = run_tasks(tasks, start_delay=0.05, on_start=meter.begin)
    latencies = sorted(x for r in results for x in r.get("latencies", ()))
    in_flight = clients * depth
    return Result(
        workload="round-trip",
        variant=variant or f"round-trip {in_flight} in flight, {workers} worker{'s' if workers > 1 else ''}",
        server=target.name,
        metrics={
            "jobs_per_s": len(latencies) / duration,
            "p50_us": percentile(latencies, 0.50) * 1e6,
            "p99_us": percentile(latencies, 0.99) * 1e6,
        },
        counts={
            "in_window": len(latencies),
            "submitted": sum(r.get("submitted", 0) for r in results),
            "answered": sum(r.get("answered", 0) for r in results),
            "workers_completed": sum(r.get("completed", 0) for r in results),
        }
        | ({"idle_held": sum(r["held"] for r in results if "held" in r)} if extra_tasks else {}),
        elapsed_s=duration,
        cpu_jobs=sum(r.get("answered", 0) for r in results),
        server_cpu_s=meter.cpu(),
        generator_cpu_s=sum(r["cpu_s"] for r in results),
        params={
            "clients": clients,
            "depth": depth,
            "in_flight": in_flight,
            "workers": workers,
            "duration": duration,
            "payload_size": payload_size,
            "processes": procs,
        },
    )


def echo(
    target: Target, *, duration: float = 4.0, warmup: float = 1.0, payload_size: int = 100, count: int | None = None
) -> Result:
    """ECHO_REQ ping-pong on one connection, one at a time: p50 and p99 latency over ``duration`` seconds (or
    ``count`` round trips) after ``warmup`` seconds, with a 100-byte payload: the cross-check harness's method."""
    meter = _Meter(target)
    started = time.perf_counter()
    latencies, cpu = echo_latencies(
        target.host,
        target.port,
        duration=duration,
        warmup=warmup,
        payload_size=payload_size,
        count=count,
        on_record=meter.begin,
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    return Result(
        workload="echo",
        variant="echo ping-pong",
        server=target.name,
        metrics={"p50_us": percentile(latencies, 0.5) * 1e6, "p99_us": percentile(latencies, 0.99) * 1e6},
        counts={"echoed": len(latencies)},
        elapsed_s=elapsed,
        cpu_jobs=len(latencies),
        server_cpu_s=meter.cpu(),
        generator_cpu_s=cpu,
        params={"duration": duration, "warmup": warmup, "count": count, "payload_size": payload_size},
    )


def memory(target: Target, *, jobs: int = 1_000_000, payload_size: int = 100, unique: bool = False) -> Result:
    """RSS growth of the server per queued job after ``jobs`` background jobs (needs the server's pid)."""
    if target.pid is None:
        raise ValueError("the memory workload reads the server's RSS from /proc: give the server's pid")
    before = process_rss_bytes(target.pid)
    result = bg_submit(
        target,
        jobs=jobs,
        connections=2,
        unique=unique,
        payload_size=payload_size,
        workload="memory",
        variant=f"memory {jobs} queued jobs",
    )
    after = process_rss_bytes(target.pid)
    if before is None or after is None:
        raise ValueError(f"cannot read /proc/{target.pid}/status")
    result.metrics = {"bytes_per_job": (after - before) / jobs}
    result.counts |= {"rss_before": before, "rss_after": after}
    return result


def connections(
    target: Target, *, idle: int = 5_000, duration: float = 3.0, warmup: float = 0.5, payload_size: int = 100
) -> Result:
    """Round-trip p50 (1 client, 1 worker) before and while ``idle`` idle connections are held open."""
    before = round_trip(target, clients=1, workers=1, duration=duration, warmup=warmup, payload_size=payload_size)
    holder = (
        idle_task,
        {"host": target.host, "port": target.port, "connections": idle, "hold": warmup + duration + 1.5},
    )
    held = round_trip(
        target,
        clients=1,
        workers=1,
        duration=duration,
        warmup=warmup,
        payload_size=payload_size,
        extra_tasks=[holder],
        variant=f"connections {idle} idle",
    )
    held.workload = "connections"
    held.metrics = {"p50_us": held.metrics["p50_us"], "p50_before_us": before.metrics["p50_us"]}
    held.params["idle_connections"] = idle
    return held


class _Meter:
    """The server's CPU time from the release of the generator to the end of the workload."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._meter: ServerMeter | None = None

    def begin(self) -> None:
        self._meter = ServerMeter(self.target.pid)

    def cpu(self) -> float | None:
        return None if self._meter is None else self._meter.elapsed_cpu()
