"""How the cost grows: geartrain against the C gearmand as the queue, the idle connections, the payload, the number
of functions and one job's size grow (issue 17).

    .venv/bin/python benchmarks/curves.py                    # every curve, 3 repetitions (make bench-curves)
    .venv/bin/python benchmarks/curves.py --skip-largest     # without the 10M queue (gearmand needs ~9 GB for it)
    .venv/bin/python benchmarks/curves.py --only queue,big-job --reps 5 --queued 10000,100000
    .venv/bin/python benchmarks/curves.py --smoke --geartrain-only --no-plot   # tiny sizes, seconds (the CI test)
    .venv/bin/python benchmarks/curves.py --report benchmarks/results/curves-<time>.json   # tables and plots again
    .venv/bin/python benchmarks/curves.py --report A.json B.json   # two runs' repetitions together (A-merged.json)

The curves (each point on a server started afresh, the two servers alternating as in compare.py; the method and
the figures are in docs/performance.md, "How the cost grows"):

* queue: N background jobs submitted, on the memory store and on SQLite (a unique per job, as gearmand's SQLite
  queue needs): submit rate, bytes of VmRSS per job, VmHWM; drain rate of 4 workers over a sample of the queue;
  on SQLite also the file's size and the replay time after a restart. geartrain gets ``--max-queued-bytes 0``
  (its 1 GiB cap would refuse 10M jobs); gearmand's SQLite queue stops at --gearmand-sqlite-max (it stores about
  1,600 jobs/s).
* idle: round trips of 1 client and 1 worker while idle connections are held open; sizes above what
  RLIMIT_NOFILE's hard limit allows are replaced by the largest that fits. geartrain gets ``--max-connections 0``.
* payload, functions: round trips of 4 clients and 4 echo workers against payload size and number of functions.
* big-job: one 100 MiB SUBMIT_JOB returned as WORK_COMPLETE, and again with a two-byte result: wall time, the
  server's VmHWM.

Results go to benchmarks/results/curves-<time>.json (rewritten after every point, so an interrupted run keeps what
it measured), tables to the .md file beside it, plots to docs/performance-curves-*.png (benchmarks/curves_plot.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare import (
    GEARMAND,
    HOST,
    Command,
    Server,
    free_port,
    gearmand_command,
    geartrain_command,
    machine,
    machine_line,
    stop_process,
)
from curves_plot import merge, plot_all, tables

from geartrain.bench import idle, replay
from geartrain.bench.bigjob import big_job, status_bytes
from geartrain.bench.functions import round_trip_functions
from geartrain.bench.workloads import Result, Target, bg_submit, drain_queued, round_trip

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CURVES = ("queue", "idle", "payload", "functions", "big-job")
MIB = 2**20
DEEP_DRAIN_SAMPLE = 20_000

FULL = {
    "queued": [10_000, 100_000, 1_000_000, 10_000_000],
    "idle": [0, 1_000, 10_000, 50_000],
    "payloads": [100, 10_000, 1_000_000],
    "functions": [1, 100, 10_000],
    "big": 100 * MIB,
    "drain_sample": 100_000,
    "sqlite_drain_sample": 10_000,
    "duration": 3.0,
    "warmup": 0.5,
}
SMOKE = FULL | {
    "queued": [1_000, 3_000],
    "idle": [0, 20],
    "payloads": [100, 10_000],
    "functions": [1, 10],
    "big": MIB,
    "drain_sample": 400,
    "sqlite_drain_sample": 200,
    "duration": 0.3,
    "warmup": 0.1,
}


def sizes(text: str | None, default: list[int], flag: str, least: int = 1) -> list[int]:
    if text is None:
        return list(default)
    try:
        values = [int(float(value)) for value in text.split(",") if value.strip()]
    except ValueError:
        raise SystemExit(f"curves.py: {flag} takes comma-separated numbers, got {text!r}") from None
    if not values or min(values) < least:
        raise SystemExit(f"curves.py: {flag} needs at least one size, each at least {least}: {text!r}")
    return values


class Run:
    """One run's settings, notes (what was skipped and why) and records, written to ``output`` after each point."""

    def __init__(self, args: argparse.Namespace, servers: dict[str, Command], output: Path) -> None:
        base = SMOKE if args.smoke else FULL
        self.servers = servers
        self.output = output
        queued = sizes(args.queued, base["queued"], "--queued")
        self.notes: list[str] = []
        if args.skip_largest and len(queued) > 1:
            self.notes.append(f"queue: the largest size ({max(queued):,}) skipped (--skip-largest).")
            queued.remove(max(queued))
        self.settings: dict[str, Any] = base | {
            "queued": queued,
            "idle": sizes(args.idle, base["idle"], "--idle", least=0),
            "payloads": sizes(args.payloads, base["payloads"], "--payloads", least=0),
            "functions": sizes(args.functions, base["functions"], "--functions"),
            "big": int(args.big_mib * MIB) if args.big_mib else base["big"],
            "drain_sample": args.drain_sample or base["drain_sample"],
            "stores": args.stores.split(","),
            "gearmand_sqlite_max": args.gearmand_sqlite_max,
            "largest_reps": args.largest_reps,
        }
        self.records: list[dict[str, Any]] = []
        self.info = machine()
        self.limits: dict[str, Any] = {}

    def record(self, curve: str, x: int, result: Result, rep: int, store: str = "memory") -> None:
        row = {"curve": curve, "x": x, "store": store, "rep": rep} | result.as_dict()
        self.records.append(row)
        figures = ", ".join(f"{k} {v:,.1f}" for k, v in result.metrics.items())
        print(f"  rep {rep + 1} {result.server:9} {curve} {store} {x:,}: {figures}", flush=True)
        self.save()

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            print(text, flush=True)

    def save(self) -> None:
        document = {
            "machine": self.info,
            "settings": self.settings,
            "limits": self.limits,
            "notes": self.notes,
            "servers": list(self.servers),
            "results": self.records,
        }
        self.output.write_text(json.dumps(document, indent=1) + "\n")


def queue_point(run: Run, name: str, store: str, queued: int, rep: int) -> None:
    """Submit ``queued`` jobs, read the memory, drain a sample; on SQLite also the file and the replay."""
    command = run.servers[name]
    workdir = Path(tempfile.mkdtemp(prefix=f"curves-{name}-"))
    location = "memory" if store == "memory" else f"sqlite:{workdir / 'queue.db'}"
    flags = ("--max-queued-bytes", "0") if name == "geartrain" else ()
    server = Server(name, command, location, flags)
    process = None
    try:
        pid = server.process.pid
        before = status_bytes(pid, "VmRSS") or 0
        result = bg_submit(
            server.target, jobs=queued, connections=2, unique=store != "memory", workload="queue", variant="queue"
        )
        after = status_bytes(pid, "VmRSS") or 0
        function = result.params["function"]
        metrics = {
            "submit_jobs_per_s": result.metrics["jobs_per_s"],
            "bytes_per_job": (after - before) / queued,
            "rss_mib": after / MIB,
            "hwm_mib": (status_bytes(pid, "VmHWM") or 0) / MIB,
        }
        sample = min(queued, run.settings["drain_sample" if store == "memory" else "sqlite_drain_sample"])
        if queued >= 10_000_000:
            sample = min(sample, DEEP_DRAIN_SAMPLE)  # gearmand drains a 10M queue at about 230 jobs/s
        target = server.target
        if store != "memory":
            server.stop()
            metrics["db_mib"] = sum(p.stat().st_size for p in workdir.glob("queue.db*")) / MIB
            port = free_port()
            seconds, process = replay.time_until_ready(
                [*command(port, workdir, location), *flags], HOST, port, queued, function=function
            )
            metrics["replay_s"] = seconds
            metrics["replay_rss_mib"] = (status_bytes(process.pid, "VmRSS") or 0) / MIB
            target = Target(HOST, port, process.pid, name)
        drained = drain_queued(target, function, workers=4, limit=max(1, sample // 4))
        metrics["drain_jobs_per_s"] = drained.metrics["jobs_per_s"]
        if drained.server_cpu_s is not None and drained.cpu_jobs:
            metrics["drain_server_us"] = drained.server_cpu_s * 1e6 / drained.cpu_jobs
        result.metrics = metrics
        result.variant = f"queue {store} {queued:,}"
        result.counts |= {"rss_before": before, "rss_after": after, "drained": drained.counts["completed"]}
        result.params |= {"store": store, "drain_workers": 4, "drain_sample": sample}
        run.record("queue", queued, result, rep, store)
    finally:
        if process is not None:
            stop_process(process)
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def idle_point(run: Run, name: str, count: int, rep: int) -> None:
    server = Server(name, run.servers[name], "memory", ("--max-connections", "0") if name == "geartrain" else ())
    socks = []
    try:
        started = time.perf_counter()
        socks = idle.open_idle(HOST, server.port, count)
        opened_s = time.perf_counter() - started
        assert server.process.pid is not None
        rss = status_bytes(server.process.pid, "VmRSS") or 0
        result = round_trip(
            server.target,
            clients=1,
            workers=1,
            duration=run.settings["duration"],
            warmup=run.settings["warmup"],
            variant=f"idle {count:,}",
        )
        held = idle.still_open(socks)
        if held != count:
            raise ConnectionError(f"{name} closed {count - held} of {count} idle connections during the run")
        result.metrics["rss_mib"] = rss / MIB
        result.counts |= {"idle_held": held}
        result.params |= {"idle": count, "open_s": opened_s}
        run.record("idle", count, result, rep)
    finally:
        idle.close_all(socks)
        server.stop()


def round_trip_point(run: Run, name: str, curve: str, x: int, rep: int) -> None:
    server = Server(name, run.servers[name], "memory")
    try:
        timing = {"duration": run.settings["duration"], "warmup": run.settings["warmup"]}
        if curve == "payload":
            result = round_trip(server.target, clients=4, workers=4, payload_size=x, variant=f"payload {x:,}", **timing)
            result.metrics["mib_per_s"] = result.metrics["jobs_per_s"] * x / MIB
        else:
            result = round_trip_functions(server.target, functions=x, clients=4, workers=4, **timing)
        run.record(curve, x, result, rep)
    finally:
        server.stop()


def big_job_point(run: Run, name: str, rep: int) -> None:
    server = Server(name, run.servers[name], "memory")
    try:
        run.record("big-job", run.settings["big"], big_job(server.target, size=run.settings["big"]), rep)
    finally:
        server.stop()
    # The same job with a two-byte result: what a job costs on its way from client to worker alone (one copy).
    server = Server(name, run.servers[name], "memory")
    try:
        result = big_job(server.target, size=run.settings["big"], echo=False)
        run.record("big-job, result ok", run.settings["big"], result, rep)
    finally:
        server.stop()


def idle_sizes(run: Run) -> list[int]:
    """The idle counts that fit under RLIMIT_NOFILE (each of the others replaced by the largest that does)."""
    soft, hard = idle.raise_open_files()
    fits = (hard - 500) // 1000 * 1000  # the server's and the generator's own descriptors besides
    run.limits |= {"nofile_soft": soft, "nofile_hard": hard, "idle_fits": fits}
    out: list[int] = []
    for count in run.settings["idle"]:
        if count > fits:
            run.note(
                f"idle: {count:,} connections cannot be held: RLIMIT_NOFILE's hard limit is {hard:,} for this "
                f"process and the servers it starts (raising it needs CAP_SYS_RESOURCE); measured {fits:,} instead."
            )
            count = fits
        if count not in out:
            out.append(count)
    return out


def measure(run: Run, reps: int, only: list[str]) -> None:
    names = list(run.servers)
    idle_counts = idle_sizes(run) if "idle" in only else []
    largest = max(run.settings["queued"])
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        if "queue" in only:
            for store in run.settings["stores"]:
                for queued in run.settings["queued"]:
                    if queued == largest and queued >= 10_000_000 and rep >= run.settings["largest_reps"]:
                        continue
                    for name in order:
                        if name == "gearmand" and store == "sqlite" and queued > run.settings["gearmand_sqlite_max"]:
                            run.note(
                                f"queue: gearmand's SQLite queue not measured above "
                                f"{run.settings['gearmand_sqlite_max']:,} jobs (--gearmand-sqlite-max)."
                            )
                            continue
                        queue_point(run, name, store, queued, rep)
        for count in idle_counts:
            for name in order:
                idle_point(run, name, count, rep)
        for curve, key in (("payload", "payloads"), ("functions", "functions")):
            for x in run.settings[key] if curve in only else ():
                for name in order:
                    round_trip_point(run, name, curve, x, rep)
        for name in order if "big-job" in only else ():
            big_job_point(run, name, rep)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """A bad flag: one line and status 2 (argparse would print the whole usage first)."""
        self.exit(2, f"curves.py: {message} (see --help)\n")


def parse_args() -> argparse.Namespace:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, help="repetitions (default 3; 1 with --smoke)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and short windows (seconds in all)")
    parser.add_argument("--only", help=f"comma-separated curves (default all: {','.join(CURVES)})")
    parser.add_argument("--queued", help="queue lengths (default 10000,100000,1000000,10000000)")
    parser.add_argument("--skip-largest", action="store_true", help="leave out the largest queue length")
    parser.add_argument("--largest-reps", type=int, default=1, help="repetitions of a 10M+ queue (default 1)")
    parser.add_argument("--stores", default="memory,sqlite", help="stores of the queue curve (memory,sqlite)")
    parser.add_argument("--drain-sample", type=int, help="jobs drained from each memory queue (default 100000)")
    parser.add_argument("--gearmand-sqlite-max", type=int, default=100_000, help="largest gearmand SQLite queue")
    parser.add_argument("--idle", help="idle connection counts (default 0,1000,10000,50000)")
    parser.add_argument("--payloads", help="payload sizes in bytes (default 100,10000,1000000)")
    parser.add_argument("--functions", help="function counts (default 1,100,10000)")
    parser.add_argument("--big-mib", type=float, help="size of the big job in MiB (default 100)")
    parser.add_argument("--geartrain-only", action="store_true", help="do not run the C gearmand")
    parser.add_argument("--output", type=Path, help="JSON file (default benchmarks/results/curves-<time>.json)")
    parser.add_argument("--plots", type=Path, default=ROOT / "docs", help="directory of the PNGs (default docs/)")
    parser.add_argument("--no-plot", action="store_true", help="write no PNGs (no matplotlib needed)")
    parser.add_argument(
        "--report", type=Path, nargs="+", metavar="JSON", help="only the tables and plots of earlier runs (merged)"
    )
    args = parser.parse_args()
    only = args.only.split(",") if args.only else list(CURVES)
    unknown = sorted(set(only) - set(CURVES))
    if unknown:
        parser.exit(2, f"curves.py: unknown curve {', '.join(unknown)} (choose from {', '.join(CURVES)})\n")
    bad_stores = sorted(set(args.stores.split(",")) - {"memory", "sqlite"})
    if bad_stores:
        parser.exit(2, f"curves.py: unknown store {', '.join(bad_stores)} (choose from memory, sqlite)\n")
    if (args.reps is not None and args.reps < 1) or args.largest_reps < 0:
        parser.exit(2, "curves.py: --reps must be at least 1 and --largest-reps at least 0\n")
    if (args.big_mib is not None and args.big_mib <= 0) or (args.drain_sample is not None and args.drain_sample < 1):
        parser.exit(2, "curves.py: --big-mib and --drain-sample must be positive\n")
    for path in args.report or ():
        if not path.is_file():
            parser.exit(2, f"curves.py: no such results file: {path}\n")
    args.only = only
    return args


def finish(document: dict[str, Any], path: Path, plots: Path | None) -> int:
    """Tables to stdout and to the .md beside ``path``; the PNGs unless ``plots`` is None."""
    text = machine_line(document["machine"]) + "\n" + tables(document)
    path.with_suffix(".md").write_text(text)
    print("\n" + text)
    if plots is not None:
        try:
            written = plot_all(document, plots)
        except ImportError:
            print("curves.py: the plots need matplotlib: .venv/bin/pip install -e '.[bench]'", file=sys.stderr)
            return 1
        for png in written:
            print(f"wrote {png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}")
    print(f"results: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


def main() -> int:
    args = parse_args()
    plots = None if args.no_plot else args.plots
    if args.report:
        first = args.report[0]
        document = merge([json.loads(p.read_text()) for p in args.report])
        path = first
        if len(args.report) > 1:
            path = first.with_name(first.stem + "-merged.json")
            path.write_text(json.dumps(document, indent=1) + "\n")
        return finish(document, path, plots)
    servers: dict[str, Command] = {"geartrain": geartrain_command}
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = args.output or RESULTS / time.strftime("curves-%Y%m%d-%H%M%S.json", time.gmtime())
    run = Run(args, servers, output)
    if args.geartrain_only:
        run.note("geartrain only (--geartrain-only).")
    elif os.path.exists(GEARMAND):
        servers["gearmand"] = gearmand_command
    else:
        run.note(f"{GEARMAND} is not installed: geartrain only, no ratios.")
    measure(run, args.reps or (1 if args.smoke else 3), args.only)
    run.save()
    return finish(json.loads(output.read_text()), output, plots)


if __name__ == "__main__":
    sys.exit(main())
