"""``geartrain bench``: the performance workloads of ``make bench`` against any server address."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from geartrain.bench.measure import connect, parse_address
from geartrain.cli.usage import ArgumentParser

EPILOG = """workloads:
  bg-submit    connections pipeline SUBMIT_JOB_BG (100-byte payloads): jobs/s (--duration: in a window)
  drain        queue --jobs background jobs, then --workers workers GRAB_JOB/WORK_COMPLETE them: jobs/s
  round-trip   --clients connections x --depth foreground jobs in flight, --workers echo workers: jobs/s, p50, p99
  echo         ECHO_REQ ping-pong on one connection (--duration after --warmup, or --count pings): p50, p99
  memory       server RSS growth per queued job after --jobs background jobs (needs --server-pid)
  connections  round-trip p50 before and while --idle idle connections are held open
  persist      bg-submit with a distinct unique per job (point it at a server on a durable store)
  client-library  foreground jobs through geartrain's own Client and Worker (--in-flight do() calls at once)
  suite        every variant of `make bench` in turn (--smoke: the small set); memory only with --server-pid

bg-submit, memory and persist leave their jobs queued (under a function name of their own): use a server you
can throw away. CPU figures: the generator's own, and the server's when --server-pid is given.
"""


def build_parser() -> argparse.ArgumentParser:
    from geartrain.bench.suite import WORKLOADS

    parser = ArgumentParser(
        prog="geartrain bench",
        description="Measure a Gearman job server (geartrain, the C gearmand, any other) with a load generator "
        "that runs in separate processes and pipelines pre-built packets.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("workload", choices=[*WORKLOADS, "suite"])
    parser.add_argument("-a", "--address", default="127.0.0.1:4730", help="HOST:PORT of the server")
    parser.add_argument("--server-pid", type=int, help="the server's pid, for its CPU time and RSS (/proc)")
    parser.add_argument("--server-name", default="server", help="label of the server in the results")
    parser.add_argument("--json", action="store_true", help="print one JSON object per result instead of a table")
    parser.add_argument("--smoke", action="store_true", help="suite: the small sizes of make bench-smoke")
    parser.add_argument("--jobs", type=int, help="jobs to submit or queue")
    parser.add_argument("--connections", type=int, help="bg-submit/persist: client connections")
    parser.add_argument(
        "--unique", choices=("empty", "per-job"), help="bg-submit/memory: empty unique or a distinct one per job"
    )
    parser.add_argument("--workers", type=int, help="drain/round-trip: worker connections")
    parser.add_argument("--clients", type=int, help="round-trip: client connections")
    parser.add_argument("--depth", type=int, help="round-trip: jobs in flight per client connection")
    parser.add_argument("--duration", type=float, help="bg-submit/round-trip/connections/echo: seconds measured")
    parser.add_argument("--warmup", type=float, help="bg-submit/round-trip/connections/echo: seconds before measuring")
    parser.add_argument("--payload-size", type=int, help="bytes of each job's payload")
    parser.add_argument("--idle", type=int, help="connections: idle connections to hold")
    parser.add_argument("--count", type=int, help="echo: stop after this many recorded round trips")
    parser.add_argument("--in-flight", type=int, help="client-library: do() calls outstanding at once")
    parser.add_argument(
        "--processes", type=int, help="load-generator processes (default: one, as in the cross-check harness)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from geartrain.bench.report import results_table
    from geartrain.bench.suite import run, select
    from geartrain.bench.workloads import Result, Target

    try:
        host, port = parse_address(args.address)
        connect((host, port), timeout=5.0).close()  # before any load generator: not a traceback from each
    except ValueError as exc:
        sys.stderr.write(f"geartrain bench: invalid --address {args.address!r}: {exc}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"geartrain bench: cannot connect to {args.address}: {exc.strerror or exc}\n")
        return 2
    target = Target(host, port, args.server_pid, args.server_name)
    options = {
        "jobs": args.jobs,
        "connections": args.connections,
        "unique": None if args.unique is None else args.unique == "per-job",
        "workers": args.workers,
        "clients": args.clients,
        "depth": args.depth,
        "duration": args.duration,
        "warmup": args.warmup,
        "payload_size": args.payload_size,
        "idle": args.idle,
        "count": args.count,
        "in_flight": args.in_flight,
        "processes": args.processes,
    }
    if args.workload == "suite":
        plan = [
            (v.workload, v.arguments(args.smoke))
            for v in select(args.smoke, stores=[])  # the store variants start servers of their own (compare.py)
            if args.server_pid is not None or "needs-pid" not in v.tags
        ]
    else:
        plan = [(args.workload, {})]
    results: list[Result] = []
    for workload, fixed in plan:
        try:
            result = run(workload, target, **(fixed | {k: v for k, v in options.items() if v is not None}))
        except (OSError, ValueError, RuntimeError) as exc:
            # A load generator's error carries its traceback: its last line is the reason.
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            sys.stderr.write(f"geartrain bench: {workload}: {lines[-1]}\n")
            return 1
        results.append(result)
        if args.json:
            print(json.dumps(result.as_dict()), flush=True)
    if not args.json:
        sys.stdout.write(results_table(r.as_dict() for r in results))
    return 0
