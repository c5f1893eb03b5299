"""client-library: foreground round trips through geartrain's own asyncio Client and Worker (not raw packets).

Measures the libraries rather than the server: one Client connection with ``in_flight`` ``do()`` calls
outstanding, one Worker process (an async function echoing its payload, ``concurrency`` jobs at a time). The
figures include the CPU each side spent per job, so a slow library shows next to a slow server.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from geartrain.bench.harness import Gate, Task, run_tasks
from geartrain.bench.measure import own_cpu_seconds, percentile
from geartrain.bench.workloads import Result, Target, _function, _Meter


async def _echo(job: Any) -> bytes:
    return bytes(job.data)


def library_worker_task(params: dict[str, Any], gate: Gate) -> dict[str, Any]:
    from geartrain import Worker
    from geartrain.client.loopthread import new_event_loop

    worker = Worker(params["address"], concurrency=params["concurrency"])
    worker.register(params["function"], _echo)
    loop = new_event_loop()
    start = gate()
    cpu_before = own_cpu_seconds()
    running = loop.create_task(worker.run())
    stop_event = params["stop_event"]
    deadline = start + params["stop_after"]
    while not stop_event.is_set() and time.perf_counter() < deadline and not running.done():
        loop.run_until_complete(asyncio.sleep(0.05))
    worker.stop(graceful=False)
    loop.run_until_complete(asyncio.wait([running], timeout=5))
    loop.close()
    return {"cpu_s": own_cpu_seconds() - cpu_before}


def library_client_task(params: dict[str, Any], gate: Gate) -> dict[str, Any]:
    from geartrain import Client
    from geartrain.client.loopthread import new_event_loop

    async def measure() -> dict[str, Any]:
        payload = b"x" * params["payload_size"]
        async with Client(params["address"]) as client:
            await client.do(params["function"], b"warm-up", timeout=30)  # connected, worker awake
            latencies: list[float] = []

            async def one() -> None:
                sent = time.perf_counter()
                await client.do(params["function"], payload, timeout=60)
                latencies.append(time.perf_counter() - sent)

            semaphore = asyncio.Semaphore(params["in_flight"])

            async def bounded() -> None:
                async with semaphore:
                    await one()

            cpu_before = own_cpu_seconds()
            started = time.perf_counter()
            await asyncio.gather(*(bounded() for _ in range(params["jobs"])))
            elapsed = time.perf_counter() - started
            return {"latencies": latencies, "elapsed": elapsed, "cpu_s": own_cpu_seconds() - cpu_before}

    loop = new_event_loop()
    gate()
    try:
        return loop.run_until_complete(measure())
    finally:
        params["stop_event"].set()  # the worker process can go
        loop.close()


def client_library(
    target: Target, *, jobs: int = 10_000, in_flight: int = 100, concurrency: int = 100, payload_size: int = 64
) -> Result:
    """``jobs`` foreground jobs through geartrain's Client (``in_flight`` outstanding) and Worker."""
    address = f"{target.host}:{target.port}"
    function = _function("client-library")
    common: dict[str, Any] = {"address": address, "function": function}
    tasks: list[tuple[Task, dict[str, Any]]] = [
        # The worker serves until the client task sets the shared stop event (or, at worst, for 10 minutes).
        (library_worker_task, common | {"concurrency": concurrency, "stop_after": 600.0}),
        (library_client_task, common | {"jobs": jobs, "in_flight": in_flight, "payload_size": payload_size}),
    ]
    meter = _Meter(target)
    _, results = run_tasks(tasks, on_start=meter.begin)
    client = results[1]
    latencies = sorted(client["latencies"])
    return Result(
        workload="client-library",
        variant=f"client-library {in_flight} in flight",
        server=target.name,
        metrics={
            "jobs_per_s": len(latencies) / client["elapsed"],
            "p50_us": percentile(latencies, 0.5) * 1e6,
            "p99_us": percentile(latencies, 0.99) * 1e6,
        },
        counts={"submitted": jobs, "answered": len(latencies)},
        elapsed_s=client["elapsed"],
        cpu_jobs=len(latencies),
        server_cpu_s=meter.cpu(),
        generator_cpu_s=client["cpu_s"] + results[0]["cpu_s"],
        params={"jobs": jobs, "in_flight": in_flight, "concurrency": concurrency, "payload_size": payload_size},
    )
