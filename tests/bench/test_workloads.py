"""Every workload in a tiny size against real servers (geartrain, and the C gearmand where installed): the counts
must add up, and the server's own view (admin status, the SQLite file) must agree. No speed is asserted."""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from databases import POSTGRES_URL, REDIS_URL, postgres_raw, require_service
from geartrain.bench import replay, workloads
from geartrain.bench.library import client_library
from geartrain.bench.workloads import Target
from servers import HOST, SERVER_COMMANDS, GearmanServer, free_port, parse_status, start_server, wait_until


def target(server: GearmanServer) -> Target:
    return Target(server.host, server.port, server.pid, server.name)


def queued(server: GearmanServer, function: str) -> int:
    row = parse_status(replay.admin_status(server.host, server.port).decode()).get(function)
    return 0 if row is None else row.total


@pytest.mark.parametrize(("connections", "unique"), [(1, False), (3, True)])
def test_bg_submit_every_job_acknowledged_and_queued(
    gearman_server: GearmanServer, connections: int, unique: bool
) -> None:
    result = workloads.bg_submit(
        target(gearman_server), jobs=2_500, connections=connections, unique=unique, processes=2
    )
    assert result.counts == {"submitted": 2_500, "acknowledged": 2_500}
    assert queued(gearman_server, result.params["function"]) == 2_500
    assert result.metrics["jobs_per_s"] > 0
    assert result.server_cpu_s is not None


@pytest.mark.parametrize("unique", [False, True])
def test_timed_bg_submit_counts_what_is_acknowledged_in_its_window(gearman_server: GearmanServer, unique: bool) -> None:
    result = workloads.bg_submit(target(gearman_server), connections=2, unique=unique, duration=0.4, warmup=0.2)
    counts = result.counts
    assert 0 < counts["acknowledged"] <= counts["submitted"]
    # The run stops with up to a pipelining window of submits per connection still unanswered: queued, uncounted.
    assert counts["acknowledged"] <= queued(gearman_server, result.params["function"]) <= counts["submitted"]
    # The window is part of the run: its rate cannot exceed every acknowledgement over the window's length.
    assert 0 < result.metrics["jobs_per_s"] <= counts["acknowledged"] / result.elapsed_s
    assert 0.35 <= result.elapsed_s <= 0.6
    assert result.params["duration"] == 0.4


def test_drain_completes_every_queued_job(gearman_server: GearmanServer) -> None:
    result = workloads.drain(target(gearman_server), jobs=1_500, workers=3, processes=2)
    assert result.counts == {"queued": 1_500, "completed": 1_500}
    assert queued(gearman_server, result.params["function"]) == 0


@pytest.mark.parametrize(("clients", "workers"), [(1, 1), (8, 4)])
def test_round_trip_every_submit_answered(gearman_server: GearmanServer, clients: int, workers: int) -> None:
    result = workloads.round_trip(
        target(gearman_server), clients=clients, workers=workers, duration=0.3, warmup=0.1, processes=2
    )
    counts = result.counts
    assert counts["submitted"] == counts["answered"] == counts["workers_completed"] > 0
    assert 0 < counts["in_window"] <= counts["answered"]
    assert 0 < result.metrics["p50_us"] <= result.metrics["p99_us"]


def test_echo_counts_and_percentiles(gearman_server: GearmanServer) -> None:
    result = workloads.echo(target(gearman_server), count=300, payload_size=10, warmup=0.05)
    assert result.counts == {"echoed": 300}
    assert 0 < result.metrics["p50_us"] <= result.metrics["p99_us"]


def test_echo_runs_for_its_duration_after_the_warmup(gearman_server: GearmanServer) -> None:
    result = workloads.echo(target(gearman_server), duration=0.3, warmup=0.2)
    assert result.params["payload_size"] == 100  # the cross-check harness's payload
    assert result.counts["echoed"] > 10
    assert 0.45 <= result.elapsed_s < 5  # the warm-up is not recorded, but it is spent
    assert result.server_cpu_s is not None and result.server_cpu_s > 0


def test_memory_reads_rss_and_needs_a_pid(gearman_server: GearmanServer) -> None:
    result = workloads.memory(target(gearman_server), jobs=3_000)
    assert result.counts["acknowledged"] == 3_000
    assert result.counts["rss_before"] > 0 and result.counts["rss_after"] > 0
    assert math.isfinite(result.metrics["bytes_per_job"])
    with pytest.raises(ValueError, match="pid"):
        workloads.memory(Target(gearman_server.host, gearman_server.port), jobs=10)


def test_connections_holds_every_idle_connection(gearman_server: GearmanServer) -> None:
    result = workloads.connections(target(gearman_server), idle=150, duration=0.3, warmup=0.1)
    assert result.counts["idle_held"] == 150
    assert result.counts["submitted"] == result.counts["answered"] > 0
    assert result.metrics["p50_us"] > 0 and result.metrics["p50_before_us"] > 0


def test_client_library_answers_every_job(gearman_server: GearmanServer) -> None:
    result = client_library(target(gearman_server), jobs=200, in_flight=20, concurrency=10)
    assert result.counts == {"submitted": 200, "answered": 200}


@pytest.fixture
def sqlite_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[GearmanServer, Path]]:
    db = tmp_path / "queue.db"

    def command(port: int, workdir: Path) -> list[str]:
        server = [sys.executable, "-m", "geartrain", "server", "--listen", HOST, "--port", str(port)]
        return [*server, "--store", f"sqlite://{db}"]

    monkeypatch.setitem(SERVER_COMMANDS, "geartrain-sqlite", command)
    server = start_server("geartrain-sqlite", tmp_path)
    try:
        yield server, db
    finally:
        server.stop()


def test_persist_jobs_are_in_the_store(sqlite_server: tuple[GearmanServer, Path]) -> None:
    server, db = sqlite_server
    result = workloads.persist(target(server), jobs=400, connections=4, processes=2)
    assert result.counts == {"submitted": 400, "acknowledged": 400}
    with sqlite3.connect(db) as conn:
        (rows,) = conn.execute(
            "SELECT COUNT(*) FROM gearman_queue WHERE function_name = ?", (result.params["function"],)
        ).fetchone()
    assert rows == 400


def test_replay_times_a_server_loading_a_built_queue(tmp_path: Path) -> None:
    db = tmp_path / "replay.db"
    replay.build_queue(db, 500)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(DISTINCT unique_key) FROM gearman_queue").fetchone() == (500,)
    from servers import free_port

    port = free_port()
    command = [sys.executable, "-m", "geartrain", "server", "--listen", HOST, "--port", str(port)]
    seconds, process = replay.time_until_ready([*command, "--store", f"sqlite://{db}"], HOST, port, 500)
    try:
        assert seconds > 0
        assert replay.queued_jobs(replay.admin_status(HOST, port)) == 500
    finally:
        process.terminate()
        process.wait(10)


def test_cli_prints_json_results(gearman_server: GearmanServer) -> None:
    bench = [
        sys.executable,
        "-m",
        "geartrain",
        "bench",
        "echo",
        "--address",
        gearman_server.address,
        "--count",
        "50",
        "--warmup",
        "0.05",
    ]
    out = subprocess.run(
        [*bench, "--json", "--server-pid", str(gearman_server.pid), "--server-name", gearman_server.name],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(out.stdout)
    assert result["workload"] == "echo"
    assert result["server"] == gearman_server.name
    assert result["counts"] == {"echoed": 50}


def test_cli_table_and_errors(gearman_server: GearmanServer) -> None:
    command = [sys.executable, "-m", "geartrain", "bench"]
    out = subprocess.run(
        [*command, "bg-submit", "-a", gearman_server.address, "--jobs", "100", "--unique", "per-job"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "| bg-submit c1 unique=per-job |" in out.stdout
    assert "acknowledged 100" in out.stdout
    failed = subprocess.run(
        [*command, "memory", "-a", gearman_server.address, "--jobs", "10"], capture_output=True, text=True, timeout=60
    )
    assert failed.returncode == 1
    assert "pid" in failed.stderr


def _ceiling(port: int, *args: str) -> subprocess.Popen[bytes]:
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "ceiling.py"
    process = subprocess.Popen([sys.executable, str(script), "--port", str(port), *args], stderr=subprocess.PIPE)
    wait_until(lambda: _accepts(port) or process.poll() is not None, timeout=15)
    assert process.poll() is None, process.stderr.read() if process.stderr else ""
    return process


def test_the_ceiling_serves_the_round_trip_and_echo_workloads() -> None:
    """benchmarks/ceiling.py, the comparison point in docs/performance.md, runs the workloads it is quoted for."""
    port = free_port()
    process = _ceiling(port)
    try:
        result = workloads.round_trip(Target(HOST, port), clients=4, workers=2, duration=0.3, warmup=0.1)
        counts = result.counts
        assert counts["submitted"] == counts["answered"] == counts["workers_completed"] > 0
        echo = workloads.echo(Target(HOST, port), duration=0.2)
        assert echo.metrics["p50_us"] > 0
    finally:
        process.terminate()
        process.wait(10)


def test_the_postgres_floor_drains_its_queue_both_ways() -> None:
    """benchmarks/postgres_floor.py, quoted in docs/performance.md: every job claimed and deleted (the script fails
    on a job left), with a commit per job and per batch, and its table dropped afterwards."""
    require_service("postgres")
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "postgres_floor.py"
    env = {**os.environ, "GEARTRAIN_BENCH_POSTGRES": POSTGRES_URL}
    done = subprocess.run(
        [sys.executable, str(script), "--jobs", "300", "--reps", "1", "--clients", "2", "--claim", "7"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    summary = [line for line in done.stdout.splitlines() if "(medians)" in line]
    assert [line.split(":")[0].strip() for line in summary] == ["commit per job", "commit per batch"]
    assert all("µs/job" in line for line in summary)
    conn = postgres_raw()
    try:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'gt_floor_%'").fetchone()
    finally:
        conn.close()
    assert tables == (0,)


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_the_ceiling_drains_its_queue_and_deletes_each_job_from_redis(store: str) -> None:
    """With --redis each of the ceiling's jobs is a key, gone once a worker completed the job."""
    args = ["--jobs", "300"]
    prefix = f"ceiling-test-{uuid.uuid4().hex[:8]}-"
    if store == "redis":
        require_service("redis")
        args += ["--redis", REDIS_URL, "--prefix", prefix]
    port = free_port()
    process = _ceiling(port, *args)
    try:
        if store == "redis":
            assert len(_redis_keys(prefix)) == 300
        result = workloads.drain_queued(Target(HOST, port), "f", workers=2)
        assert result.counts["completed"] == 300
        if store == "redis":
            assert _redis_keys(prefix) == []
    finally:
        process.terminate()
        process.wait(10)


def _redis_keys(prefix: str) -> list[bytes]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        return list(client.scan_iter(match=prefix + "*", count=1000))
    finally:
        client.close()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize("workload", ["round-trip", "echo", "bg-submit"])
def test_the_in_process_benchmark_runs(workload: str) -> None:
    """benchmarks/inprocess.py, whose figures docs/performance.md quotes, still drives the server's own classes."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "inprocess.py"
    out = subprocess.run(
        [sys.executable, str(script), workload, "--rounds", "640", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.startswith(f"{workload}: ") and out.stdout.rstrip().endswith(" ns per operation")
