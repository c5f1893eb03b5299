"""gearmand, geartrain and the drain ceiling (benchmarks/ceiling.py) draining one Redis queue, side by side.

Per repetition and worker count, each server drains ``--jobs`` background jobs from a fresh queue on the local Redis
(gearmand and geartrain from a queue built in the store, the ceiling from the keys it writes itself); the order
rotates between repetitions. Prints jobs/s and the server's CPU per job (medians) and the paired ratios to gearmand.
The ceiling runs twice, its DELs answered in the loop and in a blocking ``recv`` (``--blocking``); with ``--mypyc``
also compiled by mypyc from the same file (built in a temporary directory first, about 20 seconds), as geartrain's
hot path is.

    .venv/bin/python benchmarks/ceiling_compare.py --reps 5 --jobs 20000 [--workers 1,4] [--mypyc]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare import HOST, free_port, gearmand_command, geartrain_command, stop_process

from geartrain.bench import replay
from geartrain.bench.stores import REDIS_URL, StoreKind, fresh_location
from geartrain.bench.workloads import Result, Target, drain_queued

CEILING = Path(__file__).resolve().parent / "ceiling.py"
FUNCTION = "f"


def compile_ceiling() -> Path:
    """A directory holding ceiling.py compiled by mypyc."""
    built = Path(tempfile.mkdtemp(prefix="ceiling-mypyc-"))
    shutil.copy(CEILING, built / "ceiling.py")
    mypyc = Path(sys.executable).parent / "mypyc"
    subprocess.run([str(mypyc), "ceiling.py"], cwd=built, check=True, stdout=subprocess.DEVNULL)
    (built / "ceiling.py").unlink()  # only the extension module is left to import
    return built


def ceiling_command(name: str, port: int, jobs: int, location: str, compiled: Path | None) -> list[str]:
    if name.startswith("ceiling-mypyc"):
        assert compiled is not None
        program = [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(compiled)!r}); import ceiling; ceiling.main()",
        ]
    else:
        program = [sys.executable, str(CEILING)]
    prefix = f"{location}-"  # the layout StoreKind.drop removes
    command = [*program, "--port", str(port), "--jobs", str(jobs), "--redis", REDIS_URL, "--prefix", prefix]
    return command + (["--blocking"] if name.endswith("-blocking") else [])


def drain_once(name: str, jobs: int, workers: int, compiled: Path | None) -> Result:
    kind = StoreKind("redis")
    workdir = Path(tempfile.mkdtemp(prefix=f"ceiling-{name}-"))
    location = fresh_location("redis", workdir)
    port = free_port()
    if name.startswith("ceiling"):
        command = ceiling_command(name, port, jobs, location, compiled)
    else:
        kind.build(location, jobs, FUNCTION)
        maker = gearmand_command if name == "gearmand" else geartrain_command
        command = maker(port, workdir, f"redis:{location}")
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                replay.admin_status(HOST, port, timeout=5)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start") from None
                time.sleep(0.02)
        return drain_queued(Target(HOST, port, process.pid, name), FUNCTION, workers=workers)
    finally:
        stop_process(process)
        kind.drop(location)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", default="1,4")
    parser.add_argument("--mypyc", action="store_true", help="also run the ceiling compiled by mypyc")
    args = parser.parse_args()
    names = ["gearmand", "geartrain", "ceiling", "ceiling-blocking"]
    compiled = compile_ceiling() if args.mypyc else None
    if compiled is not None:
        names += ["ceiling-mypyc", "ceiling-mypyc-blocking"]
    figures: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for rep in range(args.reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for workers in (int(w) for w in args.workers.split(",")):
            for name in order:
                result = drain_once(name, args.jobs, workers, compiled)
                rate = result.metrics["jobs_per_s"]
                cpu = (result.server_cpu_s or 0.0) / max(result.cpu_jobs, 1) * 1e6
                figures.setdefault((name, workers), []).append((rate, cpu))
                print(
                    f"rep {rep + 1} {name:22} {workers} worker(s): {rate:9,.0f} jobs/s, server {cpu:5.1f} µs/job",
                    flush=True,
                )
    for workers in (int(w) for w in args.workers.split(",")):
        base = figures[("gearmand", workers)]
        for name in names:
            runs = figures[(name, workers)]
            ratios = [ours[0] / theirs[0] for ours, theirs in zip(runs, base, strict=True)]
            print(
                f"{workers} worker(s) {name:22}: {statistics.median(r for r, _ in runs):9,.0f} jobs/s, server "
                f"{statistics.median(c for _, c in runs):5.1f} µs/job, paired ratio to gearmand "
                f"{statistics.median(ratios):.2f}x ({', '.join(f'{r:.2f}' for r in ratios)})"
            )
    if compiled is not None:
        shutil.rmtree(compiled, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
