"""geartrain against the C gearmand, side by side: every workload of `geartrain bench`, on every store.

    .venv/bin/python benchmarks/compare.py               # the full set (make bench), 3 repetitions
    .venv/bin/python benchmarks/compare.py --smoke       # every workload once, small sizes (make bench-smoke)
    .venv/bin/python benchmarks/compare.py --only round-trip,echo --reps 5
    .venv/bin/python benchmarks/compare.py --only persist,drain,depth --stores mysql,redis   # persistent section

One server runs at a time, on a free port, started afresh for every measurement. Within a repetition each
workload runs against every server in turn, and the order rotates between repetitions (A B, then B A, ...), so a
slow minute on the shared machine hurts both sides alike. The table shows medians and the ratio
geartrain/gearmand, oriented so that > 1 means geartrain is better (for latency, memory and time too). Every result
goes to benchmarks/results/<time>.jsonl (one JSON object per line; the first line describes the machine), and the
table to the .md file next to it. Without /usr/sbin/gearmand only geartrain runs, and the table says so.

The persistent section runs both servers on the same databases (bench/stores.py: SQLite in the run's directory,
the local MariaDB, PostgreSQL and Redis; a store that cannot be reached is left out, saying why): submits, drains
with one and four workers, and per queue length (--depths) the replay time, memory after replay, and the rate at
which one worker drains 2,000 of the replayed jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
GEARMAND = "/usr/sbin/gearmand"
HOST = "127.0.0.1"

from geartrain.bench import replay  # noqa: E402
from geartrain.bench.measure import process_rss_bytes  # noqa: E402
from geartrain.bench.report import comparison_table  # noqa: E402
from geartrain.bench.stores import KINDS, StoreKind, fresh_location  # noqa: E402
from geartrain.bench.suite import geartrain_flags, run, select, store_of  # noqa: E402
from geartrain.bench.workloads import Result, Target, drain_queued  # noqa: E402

# name -> command for (port, working directory, store): store is "memory" or "<kind>:<location>" (bench/stores.py)
Command = Callable[[int, Path, str], list[str]]


def geartrain_command(port: int, workdir: Path, store: str) -> list[str]:
    executable = ROOT / ".venv" / "bin" / "geartrain"
    program = [str(executable)] if executable.exists() else [sys.executable, "-m", "geartrain"]
    command = [*program, "server", "--listen", HOST, "--port", str(port), "--log-file", "none"]
    if store == "memory":
        return [*command, "--store", "memory"]
    kind, _, location = store.partition(":")
    return command + StoreKind(kind).geartrain_args(location)


def gearmand_command(port: int, workdir: Path, store: str) -> list[str]:
    command = [GEARMAND, "--port", str(port), "--listen", HOST, "--log-file", "none", "-t", "1"]
    command += ["-P", str(workdir / "gearmand.pid"), "--config-file", os.devnull]
    if store != "memory":
        kind, _, location = store.partition(":")
        command += StoreKind(kind).gearmand_args(location)
    return command


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Server:
    """One server process on a free port, in its own temporary directory."""

    def __init__(self, name: str, command: Command, store: str, flags: tuple[str, ...] = ()) -> None:
        """``store``: memory, a kind (a fresh queue of that kind, removed at the stop) or ``<kind>:<location>``."""
        self.name = name
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        self.fresh: tuple[StoreKind, str] | None = None
        if store in KINDS:
            location = fresh_location(store, self.workdir)
            self.fresh = (StoreKind(store), location)
            store = f"{store}:{location}"
        self.port = free_port()
        self.process = subprocess.Popen(
            command(self.port, self.workdir, store) + list(flags),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "server.log").open("wb"),
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.workdir / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{log}")
            try:
                replay.admin_status(HOST, self.port, timeout=5)
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"{self.name} did not answer on port {self.port} within {timeout:.0f} s")

    @property
    def target(self) -> Target:
        return Target(HOST, self.port, self.process.pid, self.name)

    def stop(self) -> None:
        stop_process(self.process)
        if self.fresh is not None:
            kind, location = self.fresh
            kind.drop(location)
        shutil.rmtree(self.workdir, ignore_errors=True)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gearmand = "not installed"
    if os.path.exists(GEARMAND):
        out = subprocess.run([GEARMAND, "--version"], capture_output=True, text=True, check=False)
        gearmand = (out.stdout or out.stderr).strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "gearmand": gearmand,
        "load_average": os.getloadavg()[0],
        "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


def measure_depth(name: str, command: Command, kind: StoreKind, queued: int, drained: int) -> list[Result]:
    """A server started on a queue of ``queued`` jobs built in the store: how long until it answers with all of
    them (replay), its memory then, and how fast one worker drains ``drained`` of them (a deletion in a large
    table costs what it costs in a small one, or this falls). A server that cannot load the queue (gearmand 1.1.20
    exits with status 1 on a million jobs in Redis) gives no figures; the error is printed."""
    workdir = Path(tempfile.mkdtemp(prefix=f"depth-{name}-"))
    location = fresh_location(kind.name, workdir)
    function = "depth"
    try:
        kind.build(location, queued, function)
        port = free_port()
        try:
            seconds, process = replay.time_until_ready(
                command(port, workdir, f"{kind.name}:{location}"), HOST, port, queued, function=function
            )
        except (RuntimeError, TimeoutError) as exc:
            print(f"  {name} could not replay {queued:,} jobs from {kind.name}: {exc}", flush=True)
            return []
        try:
            rss = process_rss_bytes(process.pid)
            drain = drain_queued(Target(HOST, port, process.pid, name), function, workers=1, limit=drained)
        finally:
            stop_process(process)
    finally:
        kind.drop(location)
        shutil.rmtree(workdir, ignore_errors=True)
    figures = {"seconds": seconds} | ({"rss_mib": rss / 2**20} if rss else {})
    drain.variant = f"drain 1 worker, {drained} of {queued:,} queued, {kind.name}"
    return [
        Result("replay", f"replay {queued:,} stored jobs, {kind.name}", name, figures, {"jobs": queued}, seconds),
        drain,
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, help="repetitions (default 3; 1 with --smoke)")
    parser.add_argument("--smoke", action="store_true", help="every workload once with small sizes")
    parser.add_argument("--only", help="comma-separated workloads (bg-submit, drain, ..., persist, depth)")
    parser.add_argument(
        "--depths",
        help="queue lengths replayed and drained per store (default 10000,1000000; smoke 2000,20000)",
    )
    parser.add_argument(
        "--stores", help=f"comma-separated stores of the persistent section (default: {','.join(KINDS)})"
    )
    parser.add_argument("--geartrain-only", action="store_true", help="do not run the C gearmand")
    parser.add_argument("--output", type=Path, help="JSON lines file (default benchmarks/results/<time>.jsonl)")
    parser.add_argument("--report", type=Path, metavar="JSONL", help="only print the table of an earlier results file")
    args = parser.parse_args()
    if args.report:
        return report(args.report)
    reps = args.reps or (1 if args.smoke else 3)
    only = args.only.split(",") if args.only else None
    servers: dict[str, Command] = {"geartrain": geartrain_command}
    note = ""
    if args.geartrain_only:
        note = "geartrain only (--geartrain-only)."
    elif os.path.exists(GEARMAND):
        servers["gearmand"] = gearmand_command
    else:
        note = f"{GEARMAND} is not installed: geartrain only, no ratios."
    if note:
        print(note, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = args.output or RESULTS / time.strftime("%Y%m%d-%H%M%S.jsonl", time.gmtime())
    info = machine()
    results: list[dict[str, Any]] = []
    with output.open("w") as sink:
        sink.write(json.dumps({"machine": info, "reps": reps, "smoke": args.smoke}) + "\n")

        def record(result: Result, rep: int) -> None:
            row = result.as_dict() | {"rep": rep}
            results.append(row)
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            figures = ", ".join(f"{k} {v:.1f}" for k, v in result.metrics.items())
            print(f"  rep {rep + 1} {result.server:9} {result.variant}: {figures}", flush=True)

        stores = _stores(args)
        depths = _depths(args, only)
        failed: set[tuple[str, str, int]] = set()
        names = list(servers)
        for rep in range(reps):
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for variant in select(args.smoke, only, stores):
                store = store_of(variant)
                for name in order:
                    flags = geartrain_flags(variant) if name == "geartrain" else ()
                    server = Server(name, servers[name], store, flags)
                    try:
                        record(run(variant.workload, server.target, **variant.arguments(args.smoke)), rep)
                    finally:
                        server.stop()
            for kind in stores if depths else ():
                for queued in depths:
                    for name in order:
                        if (name, kind, queued) in failed:
                            continue  # it failed in an earlier repetition: no need to wait for it again
                        drained = min(2_000 if not args.smoke else 300, queued)
                        measured = measure_depth(name, servers[name], StoreKind(kind), queued, drained)
                        if not measured:
                            failed.add((name, kind, queued))
                        for result in measured:
                            record(result, rep)
    table = comparison_table(results, "geartrain", "gearmand" if "gearmand" in servers else None)
    header = machine_line(info)
    if note:
        header += f"\n{note}\n"
    output.with_suffix(".md").write_text(header + "\n" + table)
    print("\n" + header + "\n" + table)
    print(f"results: {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}")
    return 0


def machine_line(info: dict[str, Any]) -> str:
    return (
        f"Machine: {info['nproc']} cores, {info['cpu']}, Linux {info['kernel']}, Python {info['python']}, "
        f"{info['gearmand']}; load average {info['load_average']:.2f} at the start, {info['time']}.\n"
    )


def report(path: Path) -> int:
    """The table of a results file (also of an interrupted run: every finished measurement is in it)."""
    info: dict[str, Any] = {}
    results = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if "machine" in record:
            info = record["machine"]
        else:
            results.append(record)
    servers = {r["server"] for r in results}
    table = comparison_table(results, "geartrain", "gearmand" if "gearmand" in servers else None)
    print((machine_line(info) if info else "") + "\n" + table)
    return 0


def _stores(args: argparse.Namespace) -> list[str]:
    """The stores of the persistent section that can be measured here (each one left out says why)."""
    wanted = args.stores.split(",") if args.stores else list(KINDS)
    usable = []
    for kind in wanted:
        if kind not in KINDS:
            raise SystemExit(f"compare.py: unknown store {kind!r} (choose from {', '.join(KINDS)})")
        reason = StoreKind(kind).unavailable()
        if reason is None:
            usable.append(kind)
        else:
            print(f"persistent section without {kind}: {reason}", flush=True)
    return usable


def _depths(args: argparse.Namespace, only: list[str] | None) -> list[int]:
    if only and "depth" not in only:
        return []
    if args.depths:
        return [int(value) for value in args.depths.split(",")]
    return [2_000, 20_000] if args.smoke else [10_000, 1_000_000]


if __name__ == "__main__":
    sys.exit(main())
