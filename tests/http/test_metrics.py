"""`/metrics`: parsed strictly as Prometheus' text format, and checked for real values after real jobs."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

from http_harness import HttpServer

from servers import GearmanSocket, PacketType, admin, parse_status, wait_until

P = PacketType
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_exposition(text: str) -> tuple[dict[str, str], Series]:
    """Metric types and every sample; fails on anything the text format does not allow."""
    types: dict[str, str] = {}
    helps: set[str] = set()
    series: Series = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in helps, f"HELP twice for {name}"
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram") and name not in types, line
            types[name] = kind
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, label_text, value = match.groups()
        labels = LABEL.findall(label_text or "")
        assert ",".join(f'{k}="{v}"' for k, v in labels) == (label_text or ""), f"bad labels: {line!r}"
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, f"sample before its TYPE line: {line!r}"
        if types[family] == "counter":
            assert name.endswith("_total")
        key = (name, frozenset(labels))
        assert key not in series, f"duplicate series {line!r}"
        series[key] = float(value)
    for family, kind in types.items():
        if kind == "histogram":
            check_histograms(family, series)
    return types, series


def check_histograms(family: str, series: Series) -> None:
    """Buckets are cumulative (never decrease with le) and the +Inf bucket equals _count."""
    groups: dict[frozenset[tuple[str, str]], list[tuple[float, float]]] = {}
    for (name, labels), value in series.items():
        if name == f"{family}_bucket":
            le = dict(labels)["le"]
            rest = frozenset(pair for pair in labels if pair[0] != "le")
            groups.setdefault(rest, []).append((float("inf") if le == "+Inf" else float(le), value))
    assert groups, f"histogram {family} has no buckets"
    for labels, buckets in groups.items():
        counts = [count for _, count in sorted(buckets)]
        assert counts == sorted(counts), f"{family}{dict(labels)} buckets not cumulative: {counts}"
        assert counts[-1] == series[(f"{family}_count", labels)]


def value(series: Series, name: str, **labels: str) -> float:
    return series[(name, frozenset(labels.items()))]


def scrape(server: HttpServer) -> tuple[dict[str, str], Series]:
    status, headers, body = server.request("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse_exposition(body.decode())


def run_one(worker: GearmanSocket, result: int, *args: bytes) -> None:
    handle = worker.grab().args[0]
    worker.send(result, handle, *args)


def test_metrics_count_real_jobs(http_server_factory: Callable[..., HttpServer], tmp_path: Path) -> None:
    server = http_server_factory("--store", f"sqlite:///{tmp_path / 'q.db'}", "--job-retries", "2")
    bg = {"X-Gearman-Background": "true"}
    with GearmanSocket(server.address) as client:
        client.submit("resize", b"done", ptype=P.SUBMIT_JOB_HIGH)
        client.submit("resize", b"fail", ptype=P.SUBMIT_JOB)
        client.submit("resize", b"raise", ptype=P.SUBMIT_JOB_LOW)
        for body, unique in ((b"a", "same"), (b"b", "same"), (b"c", "other")):
            server.request("POST", "/resize", body, {**bg, "X-Gearman-Unique": unique})
        with GearmanSocket(server.address) as worker:
            worker.send(P.CAN_DO, b"resize")
            run_one(worker, P.WORK_COMPLETE, b"ok")  # high first
            run_one(worker, P.WORK_FAIL)  # then normal: the foreground "fail"
            run_one(worker, P.WORK_EXCEPTION, b"boom")  # then the first background one ("a"; "b" coalesced)
        # A worker leaves holding "c": requeued; a second one does the same: dropped (--job-retries 2).
        for _ in range(2):
            with GearmanSocket(server.address) as worker:
                worker.send(P.CAN_DO, b"resize")
                assert worker.grab().args[2] == b"c"
            wait_until(lambda: parse_status(admin(server.address, "status"))["resize"].running == 0, message="requeue")
        with GearmanSocket(server.address) as sleeper:
            sleeper.send(P.CAN_DO, b"mail")  # nothing queued for mail: it stays asleep
            sleeper.send(P.PRE_SLEEP)
            sleeper.sync()
            types, series = scrape(server)
            # Short-lived admin connections may still be closing at a scrape: wait for exactly the two left.
            wait_until(lambda: value(scrape(server)[1], "geartrain_connections") == 2, message="2 connections")
    assert types["geartrain_jobs_submitted_total"] == "counter" and types["geartrain_run_seconds"] == "histogram"

    def submitted(priority: str, kind: str) -> float:
        return value(series, "geartrain_jobs_submitted_total", function="resize", priority=priority, kind=kind)

    assert (submitted("high", "foreground"), submitted("normal", "foreground"), submitted("low", "foreground")) == (
        1,
        1,
        1,
    )
    assert submitted("normal", "background") == 2 and submitted("high", "background") == 0
    assert value(series, "geartrain_jobs_coalesced_total", function="resize") == 1
    assert value(series, "geartrain_jobs_completed_total", function="resize") == 1
    assert value(series, "geartrain_jobs_failed_total", function="resize") == 1
    assert value(series, "geartrain_jobs_exceptions_total", function="resize") == 1
    assert value(series, "geartrain_jobs_requeued_total", function="resize") == 1
    assert value(series, "geartrain_jobs_dropped_total", function="resize") == 1
    assert value(series, "geartrain_run_seconds_count", function="resize") == 3
    assert value(series, "geartrain_queue_wait_seconds_count", function="resize") == 5  # 3 ran, 2 grabs of one
    assert value(series, "geartrain_run_seconds_sum", function="resize") >= 0
    # Only the low-priority foreground job is left.
    queued = {
        p: value(series, "geartrain_jobs_queued", function="resize", priority=p) for p in ("high", "normal", "low")
    }
    assert queued == {"high": 0, "normal": 0, "low": 1}
    assert value(series, "geartrain_jobs_running", function="resize") == 0
    assert value(series, "geartrain_workers", function="resize") == 0
    assert value(series, "geartrain_workers", function="mail") == 1
    assert value(series, "geartrain_workers_sleeping", function="mail") == 1
    assert value(series, "geartrain_connections") >= 2  # the client and the sleeper (+ admin ones closing)
    assert value(series, "geartrain_jobs") == 1
    assert value(series, "geartrain_store_up") == 1
    assert value(series, "geartrain_store_commits_total") >= 2
    assert value(series, "geartrain_store_commit_seconds_count") == value(series, "geartrain_store_commits_total")


def test_counters_only_grow_across_scrapes(http_server: HttpServer) -> None:
    _, before = scrape(http_server)
    assert not [key for key in before if key[0] == "geartrain_jobs_submitted_total"]
    http_server.request("POST", "/count", b"1", {"X-Gearman-Background": "true"})
    _, after = wait_until(
        lambda: (
            s
            if (s := scrape(http_server))[1].get(
                (
                    "geartrain_jobs_submitted_total",
                    frozenset({"function": "count", "priority": "normal", "kind": "background"}.items()),
                )
            )
            == 1
            else None
        ),
        message="the submit to be counted",
    )
    assert value(after, "geartrain_uptime_seconds") > 0
    assert value(after, "geartrain_http_connections") >= 1


def test_limit_counters(http_server_factory: Callable[..., HttpServer]) -> None:
    """Queued bytes, and connections refused at --max-connections and closed by --idle-timeout."""
    server = http_server_factory("--store", "memory", "--max-connections", "2", "--idle-timeout", "0.2")
    with GearmanSocket(server.address) as client:
        client.submit("limits", b"12345", ptype=P.SUBMIT_JOB_BG)
        with socket.create_connection(("127.0.0.1", server.port)) as silent:
            silent.settimeout(10)
            assert silent.recv(100) == b""  # closed: it never said anything
        with socket.create_connection(("127.0.0.1", server.port)) as second:
            second.sendall(b"version\n")
            assert second.recv(100).startswith(b"OK")
            with socket.create_connection(("127.0.0.1", server.port)) as third:
                third.settimeout(10)
                assert b"Too many connections" in third.recv(1000)
        series = scrape(server)[1]
    assert value(series, "geartrain_queued_bytes") == 5
    assert value(series, "geartrain_connections_refused_total") == 1
    assert value(series, "geartrain_connections_idle_closed_total") == 1
    assert value(series, "geartrain_connections_cut_total") == 0


def test_replayed_jobs_are_counted_apart_after_a_restart(
    http_server_factory: Callable[..., HttpServer], tmp_path: Path
) -> None:
    """Issue 16: after a replay `completed` passed `submitted`; replayed jobs have a counter of their own."""
    store = ("--store", f"sqlite:///{tmp_path / 'q.db'}")
    first = http_server_factory(*store)
    for n in range(2):
        first.request("POST", "/kept", b"%d" % n, {"X-Gearman-Background": "true", "X-Gearman-Unique": f"k{n}"})
    first.stop()
    server = http_server_factory(*store)
    with GearmanSocket(server.address) as worker:
        worker.send(P.CAN_DO, b"kept")
        run_one(worker, P.WORK_COMPLETE, b"ok")
        worker.sync()
        _, series = scrape(server)
    assert value(series, "geartrain_jobs_replayed_total", function="kept") == 2
    assert sum(value(series, "geartrain_jobs_submitted_total", function="kept", priority=p, kind=k)
               for p in ("high", "normal", "low") for k in ("foreground", "background")) == 0  # fmt: skip
    assert value(series, "geartrain_jobs_completed_total", function="kept") == 1
    assert value(series, "geartrain_jobs_pending", function="kept") == 0
    assert value(series, "geartrain_oldest_queued_seconds", function="kept") >= 0  # the one still queued
    totals = server.get_json("/api/server")["totals"]  # type: ignore[index]
    assert (totals["submitted"], totals["replayed"], totals["completed"], totals["queued"]) == (0, 2, 1, 1)


def test_life_cycle_counters_per_function(http_server_factory: Callable[..., HttpServer], tmp_path: Path) -> None:
    """Issue 15: retries, dead jobs (counted and in the set) and dead jobs queued again, per function."""
    policy = tmp_path / "policy.toml"
    policy.write_text('[functions.flaky]\nretries = 1\nbackoff = "fixed"\nbackoff_base = "0.2s"\n')
    server = http_server_factory("--store", "memory", "--policy-file", str(policy))
    with GearmanSocket(server.address) as client, GearmanSocket(server.address, timeout=15) as worker:
        worker.send(P.CAN_DO, b"flaky")
        for unique in (b"a", b"b"):
            client.send(P.SUBMIT_JOB_BG, b"flaky", unique, b"x")
            client.expect(P.JOB_CREATED)
        for _ in range(4):  # two jobs, each failed twice: one retry each, then dead
            run_one(worker, P.WORK_FAIL)
        worker.sync()
        wait_until(lambda: admin(server.address, "dead list").count("\n") == 3, 10, "two dead jobs")
        series = scrape(server)[1]
        assert value(series, "geartrain_jobs_retried_total", function="flaky") == 2
        assert value(series, "geartrain_jobs_dead_total", function="flaky") == 2
        assert value(series, "geartrain_dead_jobs", function="flaky") == 2
        assert value(series, "geartrain_jobs_revived_total", function="flaky") == 0
        assert admin(server.address, "dead retry all") == "OK 2\n"
        run_one(worker, P.WORK_COMPLETE, b"")
        run_one(worker, P.WORK_COMPLETE, b"")
        worker.sync()
    series = scrape(server)[1]
    assert value(series, "geartrain_jobs_revived_total", function="flaky") == 2
    assert value(series, "geartrain_dead_jobs", function="flaky") == 0
    assert value(series, "geartrain_jobs_dead_total", function="flaky") == 2  # a counter: it only grows
