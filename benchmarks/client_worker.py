"""Foreground round trips through a server with geartrain's own client and worker.

Starts the server (geartrain, or the C gearmand) on a free port, one worker process (geartrain.Worker, an async
function that returns its workload), and times N foreground jobs (SUBMIT_JOB -> JOB_CREATED -> JOB_ASSIGN_UNIQ ->
WORK_COMPLETE) from one client connection:

* ``sequential``: one job at a time (latency bound);
* ``pipelined``: up to ``--in-flight`` jobs outstanding at once (throughput bound).

    .venv/bin/python benchmarks/client_worker.py --jobs 10000 --server geartrain
    .venv/bin/python benchmarks/client_worker.py --jobs 10000 --server gearmand
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from geartrain import Client, Worker, WorkerJob  # noqa: E402
from geartrain.client.loopthread import new_event_loop  # noqa: E402


async def echo(job: WorkerJob) -> bytes:
    return job.data


def run_worker(address: str, concurrency: int) -> None:
    worker = Worker(address, concurrency=concurrency)
    worker.register("bench", echo)
    new_event_loop().run_until_complete(worker.run())


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (this one by default), from /proc."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU used by each process of the benchmark between two readings."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.start = {name: cpu_seconds(pid) for name, pid in pids.items()}

    def per_job_us(self, jobs: int) -> dict[str, float]:
        return {name: (cpu_seconds(pid) - self.start[name]) * 1e6 / jobs for name, pid in self.pids.items()}


async def measure(address: str, jobs: int, in_flight: int, pids: dict[str, int | None]) -> dict[str, object]:
    async with Client(address) as client:
        await client.do("bench", b"warm-up", timeout=30)  # connected, worker awake
        payload = b"x" * 64

        meter = CpuMeter(pids)
        started = time.perf_counter()
        for _ in range(jobs):
            await client.do("bench", payload)
        sequential = time.perf_counter() - started
        sequential_cpu = meter.per_job_us(jobs)

        semaphore = asyncio.Semaphore(in_flight)

        async def one() -> None:
            async with semaphore:
                await client.do("bench", payload)

        meter = CpuMeter(pids)
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(jobs)))
        pipelined = time.perf_counter() - started
        pipelined_cpu = meter.per_job_us(jobs)
    return {
        "sequential": jobs / sequential,
        "pipelined": jobs / pipelined,
        "sequential_cpu": sequential_cpu,
        "pipelined_cpu": pipelined_cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--worker-concurrency", type=int, default=100)
    parser.add_argument("--server", choices=["geartrain", "gearmand"], default="geartrain")
    parser.add_argument("--address", help="use a running server instead of starting one")
    parser.add_argument("--worker", metavar="ADDRESS", help=argparse.SUPPRESS)  # internal: be the worker process
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker, args.worker_concurrency)
        return

    from servers import start_server

    with tempfile.TemporaryDirectory() as workdir:
        server = None
        if args.address:
            address = args.address
        else:
            server = start_server(args.server, Path(workdir))
            address = server.address
        worker = subprocess.Popen(
            [sys.executable, __file__, "--worker", address, "--worker-concurrency", str(args.worker_concurrency)],
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
        pids: dict[str, int | None] = {"client": None, "worker": worker.pid}
        if server is not None:
            pids["server"] = server.pid
        try:
            rates = new_event_loop().run_until_complete(measure(address, args.jobs, args.in_flight, pids))
        finally:
            worker.terminate()
            worker.wait(10)
            if server is not None:
                server.stop()
    print(f"server={args.server if not args.address else address} jobs={args.jobs} (CPU in microseconds per job)")
    for mode, label in (("sequential", "1 in flight"), ("pipelined", f"{args.in_flight} in flight")):
        cpu = "  ".join(f"{name} {value:5.1f}" for name, value in rates[f"{mode}_cpu"].items())  # type: ignore[attr-defined]
        print(f"  {mode:10} ({label:>14}): {rates[mode]:8.0f} jobs/s   CPU/job: {cpu}")


if __name__ == "__main__":
    main()
