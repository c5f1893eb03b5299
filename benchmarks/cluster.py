"""A geartrain cluster of two nodes on PostgreSQL (or Redis) against gearmand on its own queue there, in one run.

Two figures each (issue 14): background submits from ``--connections`` connections spread over the servers, and the
burn-down of the queue they filled by ``--workers`` workers spread over them (for gearmand, one server takes them
all). Then, for the cluster: the time from kill -9 of a node holding jobs to the first of its jobs running on the
other. Repetitions alternate (gearmand, geartrain, gearmand, ...); the ratio of each pair is reported.

    python benchmarks/cluster.py --jobs 200000 --reps 3 [--store redis]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geartrain.bench.packets as packets
from geartrain.bench.measure import process_cpu_seconds
from geartrain.bench.stores import POSTGRES_URL, REDIS_URL, StoreKind

FUNCTION = b"burn"
PAYLOAD = b"x" * 100
WINDOW = 500  # submits in flight per connection


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on {port} did not start")


# ---------------------------------------------------------------------- load (child processes)


def submitter(port: int, start: int, count: int, prefix: bytes, ready: Any, go: Any, done: Any) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = packets.FrameReader()
    ready.wait()
    go.wait()
    sent = acked = 0
    while acked < count:
        if sent < count and sent - acked < WINDOW:
            batch = min(WINDOW - (sent - acked), count - sent)
            sock.sendall(packets.bg_submits(FUNCTION, PAYLOAD, batch, prefix, start + sent))
            sent += batch
        for packet_type, body in reader.feed(sock.recv(1 << 16)):
            if packet_type != packets.JOB_CREATED:
                raise SystemExit(f"submit answered {packet_type}: {body!r}")
            acked += 1
    with done.get_lock():
        done.value += acked


def worker(port: int, total: int, completed: Any, go: Any) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = packets.FrameReader()
    sock.sendall(packets.request(packets.CAN_DO, FUNCTION))
    go.wait()
    sock.sendall(packets.request(packets.GRAB_JOB))
    sock.settimeout(0.2)
    mine = 0
    while completed.value < total:
        try:
            data = sock.recv(1 << 16)
        except TimeoutError:
            continue
        out = []
        for packet_type, body in reader.feed(data):
            if packet_type == packets.JOB_ASSIGN:
                out.append(packets.request(packets.WORK_COMPLETE, body.partition(b"\0")[0], b""))
                out.append(packets.request(packets.GRAB_JOB))
                mine += 1
            elif packet_type == packets.NO_JOB:
                out.append(packets.request(packets.PRE_SLEEP))
            elif packet_type == packets.NOOP:
                out.append(packets.request(packets.GRAB_JOB))
        if mine:
            with completed.get_lock():
                completed.value += mine
            mine = 0
        if out:
            sock.sendall(b"".join(out))


def timed(targets: list[tuple[Callable[..., None], tuple[Any, ...]]], go: Any, until: Callable[[], bool]) -> float:
    processes = [multiprocessing.Process(target=target, args=args) for target, args in targets]
    for process in processes:
        process.start()
    time.sleep(0.5)  # connected and waiting at the gate
    started = time.perf_counter()
    go.set()
    while not until():
        time.sleep(0.002)
    elapsed = time.perf_counter() - started
    for process in processes:
        process.join(30)
        if process.is_alive():
            process.kill()
    return elapsed


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time of these processes so far (0 for one that is gone)."""
    return sum(process_cpu_seconds(pid) or 0.0 for pid in pids)


def database_pids(store: StoreKind) -> list[int]:
    """The local database server's processes (PostgreSQL's backends, or Redis), by name."""
    name = "postgres" if store.name == "postgres" else "redis-server"
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == name:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def submit_and_burn(
    ports: list[int], jobs: int, connections: int, workers: int, servers: list[int], store: StoreKind
) -> tuple[float, float, float, float]:
    """Jobs per second of the submits, then of the burn-down of what they queued; and the CPU time per job the
    servers (``servers``: their pids) and the database spent during the burn-down, in microseconds."""
    done = multiprocessing.Value("q", 0)
    ready, go = multiprocessing.Event(), multiprocessing.Event()
    ready.set()
    share = jobs // connections
    prefix = uuid.uuid4().hex[:8].encode() + b"-"
    targets = [
        (submitter, (ports[i % len(ports)], i * share, share, prefix, ready, go, done)) for i in range(connections)
    ]
    submit_time = timed(targets, go, lambda: done.value >= share * connections)
    total = share * connections
    completed = multiprocessing.Value("q", 0)
    go = multiprocessing.Event()
    targets = [(worker, (ports[i % len(ports)], total, completed, go)) for i in range(workers)]
    database = {pid: cpu_seconds([pid]) for pid in database_pids(store)}
    before = cpu_seconds(servers)
    burn_time = timed(targets, go, lambda: completed.value >= total)
    server_cpu = cpu_seconds(servers) - before
    # Backends opened during the burn-down (a node's deletion pool grows to one connection per worker in flight)
    # count whole; one that has exited by now is missed (none does in this benchmark: nodes keep their pools).
    database_cpu = sum(cpu_seconds([pid]) - database.get(pid, 0.0) for pid in database_pids(store))
    return total / submit_time, total / burn_time, server_cpu / total * 1e6, database_cpu / total * 1e6


# ---------------------------------------------------------------------- servers


def start_geartrain_cluster(
    store: StoreKind, table: str, workdir: Path, flags: tuple[str, ...] = ()
) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    ports, procs = [free_port(), free_port()], []
    for index, port in enumerate(ports):
        command = [sys.executable, "-m", "geartrain", "server", "--port", str(port), "--cluster", "--node-id"]
        command += [f"bench{index}", *store.geartrain_args(table), "--verbose", "ERROR", *flags]
        log = (workdir / f"node{index}.log").open("ab")
        procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log))
    for port, proc in zip(ports, procs, strict=True):
        wait_port(port, proc)
    return procs, ports


def start_gearmand(
    store: StoreKind, gearmand: str, table: str, workdir: Path
) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    port = free_port()
    command = [gearmand, "-p", str(port), "-L", "127.0.0.1", "-t", "1", "--log-file", str(workdir / "gearmand.log")]
    command += ["--config-file", "/dev/null", *store.gearmand_args(table)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return [proc], [port]


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def drop(store: StoreKind, table: str) -> None:
    """The queue and the cluster's records of it."""
    store.drop(table)
    if store.name == "postgres":
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            for side in ("geartrain_nodes", "geartrain_leader", "geartrain_events"):
                if conn.execute("SELECT to_regclass(%s)", (side,)).fetchone()[0] is not None:  # type: ignore[index]
                    conn.execute(f"DELETE FROM {side} WHERE queue = %s", (table,))


def held_by(store: StoreKind, table: str, node: str) -> int:
    """Jobs the node ``node`` holds."""
    if store.name == "postgres":
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            query = f'SELECT count(*) FROM "{table}" WHERE owner = %s'
            return int(conn.execute(query, (node,)).fetchone()[0])  # type: ignore[index]
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        return int(client.scard(f"gt:{table}:owned:{node}"))
    finally:
        client.close()


def takeover_seconds(store: StoreKind, workdir: Path, jobs: int = 2000) -> float:
    """kill -9 of the node holding jobs; seconds until a worker on the other node gets one of them."""
    table = f"gt_bench_{uuid.uuid4().hex[:10]}"
    procs, ports = start_geartrain_cluster(store, table, workdir)
    try:
        done = multiprocessing.Value("q", 0)
        ready, go = multiprocessing.Event(), multiprocessing.Event()
        ready.set()
        prefix = b"takeover-"
        timed([(submitter, (ports[0], 0, jobs, prefix, ready, go, done))], go, lambda: done.value >= jobs)
        victim = socket.create_connection(("127.0.0.1", ports[0]))  # a worker that claims and never finishes
        victim.sendall(packets.request(packets.CAN_DO, FUNCTION) + packets.request(packets.PRE_SLEEP))
        time.sleep(2)  # woken, claimed its prefetch: the node holds jobs under its lease
        victim.sendall(packets.request(packets.GRAB_JOB))
        time.sleep(0.5)
        procs[0].send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        survivor = socket.create_connection(("127.0.0.1", ports[1]))
        survivor.sendall(packets.request(packets.CAN_DO, FUNCTION))
        # Drain what was never claimed, then wait for the first of the dead node's jobs.
        while held_by(store, table, "bench0"):
            time.sleep(0.05)
        return time.perf_counter() - killed
    finally:
        stop(procs)
        drop(store, table)


def echo_worker(port: int, go: Any) -> None:
    """A worker that completes each job with its payload, until its connection is closed."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = packets.FrameReader()
    sock.sendall(packets.request(packets.CAN_DO, FUNCTION) + packets.request(packets.PRE_SLEEP))
    go.set()
    while data := sock.recv(1 << 16):
        out = []
        for packet_type, body in reader.feed(data):
            if packet_type == packets.JOB_ASSIGN:
                handle, _, rest = body.partition(b"\0")
                out.append(packets.request(packets.WORK_COMPLETE, handle, rest.partition(b"\0")[2]))
                out.append(packets.request(packets.GRAB_JOB))
            elif packet_type == packets.NO_JOB:
                out.append(packets.request(packets.PRE_SLEEP))
            elif packet_type == packets.NOOP:
                out.append(packets.request(packets.GRAB_JOB))
        if out:
            sock.sendall(b"".join(out))


def round_trips(client_port: int, worker_port: int, count: int) -> list[float]:
    """Seconds per foreground round trip (submit to WORK_COMPLETE), one at a time."""
    go = multiprocessing.Event()
    worker_process = multiprocessing.Process(target=echo_worker, args=(worker_port, go), daemon=True)
    worker_process.start()
    go.wait(10)
    time.sleep(0.5)  # registered and asleep
    sock = socket.create_connection(("127.0.0.1", client_port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = packets.FrameReader()
    times = []
    try:
        for n in range(count):
            started = time.perf_counter()
            sock.sendall(packets.request(packets.SUBMIT_JOB, FUNCTION, b"rt-%d" % n, PAYLOAD))
            done = False
            while not done:
                for packet_type, _ in reader.feed(sock.recv(1 << 16)):
                    done = done or packet_type == packets.WORK_COMPLETE
            times.append(time.perf_counter() - started)
    finally:
        sock.close()
        worker_process.kill()
    return times


def cross_node_round_trips(store: StoreKind, workdir: Path, count: int = 2000) -> None:
    """Client and worker on one node, then client on one node and worker on the other: p50 and p99."""
    table = f"gt_bench_{uuid.uuid4().hex[:10]}"
    procs, ports = start_geartrain_cluster(store, table, workdir)
    try:
        for label, worker_port in (("same node", ports[0]), ("across nodes", ports[1])):
            times = sorted(round_trips(ports[0], worker_port, count))
            p50, p99 = times[len(times) // 2], times[int(len(times) * 0.99)]
            print(f"foreground round trip, {label:12}: p50 {p50 * 1000:6.2f} ms  p99 {p99 * 1000:6.2f} ms", flush=True)
    finally:
        stop(procs)
        drop(store, table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--gearmand", default=shutil.which("gearmand") or "/usr/sbin/gearmand")
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/results/cluster"))
    parser.add_argument("--store", choices=("postgres", "redis"), default="postgres", help="the shared store")
    parser.add_argument("--flag", action="append", default=[], help="a flag for the geartrain nodes (repeat)")
    args = parser.parse_args()
    store = StoreKind(args.store)
    args.workdir.mkdir(parents=True, exist_ok=True)
    figures: dict[str, list[tuple[float, float]]] = {"gearmand": [], "geartrain": []}
    cpu: dict[str, list[tuple[float, float]]] = {"gearmand": [], "geartrain": []}
    for rep in range(args.reps):
        for name in ("gearmand", "geartrain"):
            table = f"gt_bench_{uuid.uuid4().hex[:10]}"
            procs, ports = (
                start_gearmand(store, args.gearmand, table, args.workdir)
                if name == "gearmand"
                else start_geartrain_cluster(store, table, args.workdir, tuple(args.flag))
            )
            try:
                pids = [proc.pid for proc in procs]
                submits, burn, server_cpu, database_cpu = submit_and_burn(
                    ports, args.jobs, args.connections, args.workers, pids, store
                )
            finally:
                stop(procs)
                drop(store, table)
            figures[name].append((submits, burn))
            cpu[name].append((server_cpu, database_cpu))
            print(
                f"rep {rep + 1} {name:9}: submits {submits:9,.0f}/s  burn-down {burn:9,.0f}/s  (CPU per job in the "
                f"burn-down: {'nodes' if name == 'geartrain' else 'server'} {server_cpu:.0f} µs, {store.name} "
                f"{database_cpu:.0f} µs)",
                flush=True,
            )
    for index, label in ((0, "submits"), (1, "burn-down")):
        ratios = [t[index] / g[index] for g, t in zip(figures["gearmand"], figures["geartrain"], strict=True)]
        ours = statistics.median(t[index] for t in figures["geartrain"])
        theirs = statistics.median(g[index] for g in figures["gearmand"])
        print(
            f"{label:10}: geartrain 2 nodes {ours:9,.0f}/s, gearmand {theirs:9,.0f}/s, paired ratio median "
            f"{statistics.median(ratios):.2f}x ({', '.join(f'{r:.2f}' for r in ratios)})"
        )
    for name in ("gearmand", "geartrain"):
        print(
            f"burn-down CPU per job, {name}: {'nodes' if name == 'geartrain' else 'server'} "
            f"{statistics.median(c[0] for c in cpu[name]):.0f} µs, {store.name} "
            f"{statistics.median(c[1] for c in cpu[name]):.0f} µs (medians)"
        )
    cross_node_round_trips(store, args.workdir)
    print(f"takeover after kill -9 (default lease 15 s): {takeover_seconds(store, args.workdir):.1f} s")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
