"""Long runs of the reliability scenarios whose short forms are in tests/reliability; figures for docs/reliability.md.

    .venv/bin/python benchmarks/reliability.py fuzz --inputs 200000
    .venv/bin/python benchmarks/reliability.py faults --clients 8 --jobs 500 --background 200
    .venv/bin/python benchmarks/reliability.py connections --count 15000
    .venv/bin/python benchmarks/reliability.py slowreader --jobs 2000
    .venv/bin/python benchmarks/reliability.py all

Each scenario starts its own ``geartrain server`` on a free port (SQLite store in a temporary directory where
jobs must survive), prints one line of figures, and fails (exit status 1) if a guarantee is broken.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "reliability"))

from faults import run_faults  # noqa: E402
from livefuzz import fuzz, queue_kept_jobs, take_kept_jobs  # noqa: E402
from manyconns import echo_on_every_connection, open_connections  # noqa: E402
from serverproc import ServerProcess, raise_open_files  # noqa: E402

from proxy import FaultyProxy  # noqa: E402
from servers import GearmanSocket, Packet, PacketType, admin, encode_req, parse_status, wait_until  # noqa: E402

P = PacketType
MIB = 1024 * 1024


def run_fuzz(args: argparse.Namespace, workdir: Path) -> None:
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    server = ServerProcess(workdir / "fuzz.log", "--store", f"sqlite://{workdir}/fuzz.db", "--log-file", "none")
    try:
        kept = queue_kept_jobs(server.address, 100)
        started = time.monotonic()
        report = fuzz(server.address, args.inputs, seed, connections=8)
        elapsed = time.monotonic() - started
        assert server.alive(), "the server died"
        assert take_kept_jobs(server.address, len(kept)) == kept, "queued jobs were disturbed"
        print(
            f"fuzz: seed {seed}: {report.inputs} inputs ({report.bytes_sent / MIB:.1f} MiB) in {elapsed:.0f}s on 8 "
            f"connections; {report.closed_by_server} closed by the server; {report.good_round_trips} checks of a good "
            f"client, slowest {report.slowest_round_trip * 1000:.1f} ms; 100 queued jobs intact; "
            f"server RSS {server.rss_kib() // 1024} MiB"
        )
    finally:
        assert server.stop() == 0, "the server did not exit cleanly"


def run_faults_scenario(args: argparse.Namespace, workdir: Path) -> None:
    logging.getLogger("geartrain").setLevel(logging.ERROR)  # the libraries warn at every cut: hundreds of lines
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    server = ServerProcess(workdir / "faults.log", "--store", f"sqlite://{workdir}/faults.db", "--log-file", "none")
    proxy = FaultyProxy("127.0.0.1", server.port, seed=seed, cut_probability=args.cut_probability)
    try:
        started = time.monotonic()
        report = asyncio.run(
            run_faults(
                f"127.0.0.1:{proxy.port}", args.clients, args.jobs, args.background, server_address=server.address
            )
        )
        elapsed = time.monotonic() - started
        print(
            f"faults: seed {seed}: {proxy.cuts} cuts in {proxy.chunks} forwarded chunks, {elapsed:.0f}s; foreground "
            f"{report.foreground_ok} ok, errors {dict(report.foreground_errors)}, wrong {report.wrong_results}, "
            f"hangs {report.hangs}; background acknowledged {report.background_acknowledged}, lost "
            f"{report.background_lost}; {report.executions} executions; {report.resent} resent after "
            f"NoServersAvailable"
        )
        assert report.wrong_results == 0 and report.hangs == 0 and report.background_lost == 0
    finally:
        proxy.close()
        server.stop()


def run_connections(args: argparse.Namespace, workdir: Path) -> None:
    have = raise_open_files(args.count + 200)
    assert have >= args.count + 200, f"open-file limit {have} is too low (ulimit -Hn)"
    server = ServerProcess(
        workdir / "conns.log",
        "--store",
        "memory",
        "--max-connections",
        str(args.count + 10),
        "-b",
        "4096",
        "--log-file",
        "none",
    )
    try:
        idle_rss = server.rss_kib()
        held = open_connections("127.0.0.1", server.port, args.count)
        try:
            answered = echo_on_every_connection(held)
            rss = server.rss_kib()
        finally:
            held.close()
        print(
            f"connections: {args.count} opened in {held.open_seconds:.1f}s, {answered} answered an ECHO "
            f"({held.echo_seconds:.1f}s); server RSS {idle_rss // 1024} MiB idle, {rss // 1024} MiB holding them "
            f"({(rss - idle_rss) / args.count:.1f} KiB each)"
        )
        assert answered == args.count
    finally:
        server.stop()


def run_slow_reader(args: argparse.Namespace, workdir: Path) -> None:
    """A client submits --jobs foreground jobs whose 1 MiB results it never reads; one worker answers them all."""
    result = b"r" * MIB
    server = ServerProcess(
        workdir / "slow.log", "--store", "memory", "--max-unsent", "64m", "--output-high-water", "1m"
    )
    try:
        before = peak = server.rss_kib()
        with socket.create_connection(("127.0.0.1", server.port)) as slow, GearmanSocket(server.address) as worker:
            slow.sendall(b"".join(encode_req(P.SUBMIT_JOB, b"big", b"", b"%d" % i) for i in range(args.jobs)))
            wait_until(
                lambda: (row := parse_status(admin(server.address, "status")).get("big")) and row.total == args.jobs
            )
            worker.send(P.CAN_DO, b"big")
            produced = 0
            while (reply := _grab(worker)).type == P.JOB_ASSIGN:  # all were queued first: NO_JOB means done
                worker.send(P.WORK_COMPLETE, reply.args[0], result)
                produced += 1
                peak = max(peak, server.rss_kib())
        cut = "exceed --max-unsent" in server.log()
        print(
            f"slowreader: {args.jobs} jobs x 1 MiB for a client that never reads: {produced} results produced before "
            f"it was {'cut' if cut else 'NOT cut'}; server RSS {before // 1024} MiB before, peak {peak // 1024} MiB "
            f"(--max-unsent 64 MiB)"
        )
        assert cut
    finally:
        server.stop()


def _grab(worker: GearmanSocket) -> Packet:
    worker.send(P.GRAB_JOB)
    return worker.recv(timeout=60)


def _queued(server: ServerProcess) -> int:
    """Jobs of ``big`` waiting for a worker (an abandoned job counts until a worker reaches it)."""
    row = parse_status(admin(server.address, "status")).get("big")
    return row.total - row.running if row is not None else 0


SCENARIOS: dict[str, Callable[[argparse.Namespace, Path], None]] = {
    "fuzz": run_fuzz,
    "faults": run_faults_scenario,
    "connections": run_connections,
    "slowreader": run_slow_reader,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"])
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--inputs", type=int, default=200_000, help="fuzz: hostile inputs to send")
    parser.add_argument("--clients", type=int, default=8, help="faults: client count")
    parser.add_argument("--jobs", type=int, default=500, help="faults: foreground jobs per client; slowreader: jobs")
    parser.add_argument("--background", type=int, default=200, help="faults: background jobs per client")
    parser.add_argument("--cut-probability", type=float, default=0.01, help="faults: chance of a cut per chunk")
    parser.add_argument("--count", type=int, default=15_000, help="connections: how many to hold")
    args = parser.parse_args()
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    with tempfile.TemporaryDirectory(prefix="geartrain-reliability-") as tmp:
        for name in names:
            try:
                SCENARIOS[name](args, Path(tmp))
            except AssertionError as error:
                print(f"{name}: FAILED: {error}")
                return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
