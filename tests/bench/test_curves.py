"""benchmarks/curves.py at tiny sizes against geartrain alone: every curve is measured and lands in the JSON, with
its tables. Nothing about speed is asserted; this only notices when the benchmark breaks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from servers import REPO_ROOT

CURVES = REPO_ROOT / "benchmarks" / "curves.py"


def test_every_curve_reaches_the_results(tmp_path: Path) -> None:
    output = tmp_path / "curves.json"
    finished = subprocess.run(
        [sys.executable, str(CURVES), "--smoke", "--geartrain-only", "--no-plot", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-4000:]
    document = json.loads(output.read_text())
    rows = document["results"]
    assert {row["server"] for row in rows} == {"geartrain"}
    points = {(row["curve"], row["store"], row["x"]) for row in rows}
    settings = document["settings"]
    expected = {("queue", store, n) for store in ("memory", "sqlite") for n in settings["queued"]}
    expected |= {("idle", "memory", n) for n in settings["idle"]}
    expected |= {("payload", "memory", n) for n in settings["payloads"]}
    expected |= {("functions", "memory", n) for n in settings["functions"]}
    expected |= {("big-job", "memory", settings["big"]), ("big-job, result ok", "memory", settings["big"])}
    assert points == expected
    by_curve = {(row["curve"], row["store"]): set(row["metrics"]) for row in rows}
    assert {"submit_jobs_per_s", "drain_jobs_per_s", "bytes_per_job", "hwm_mib"} <= by_curve["queue", "memory"]
    assert {"replay_s", "db_mib"} <= by_curve["queue", "sqlite"]
    assert {"p50_us", "p99_us", "jobs_per_s"} <= by_curve["idle", "memory"]
    assert {"seconds", "hwm_mib"} <= by_curve["big-job", "memory"] & by_curve["big-job, result ok", "memory"]
    assert document["limits"]["nofile_soft"] == document["limits"]["nofile_hard"]
    tables = output.with_suffix(".md").read_text()
    for heading in ("queue memory", "queue sqlite", "idle", "payload", "functions", "big-job", "big-job, result ok"):
        assert f"**{heading}**" in tables


def test_a_bad_flag_is_one_line_and_a_failure() -> None:
    finished = subprocess.run(
        [sys.executable, str(CURVES), "--only", "queue,nonsense"], capture_output=True, text=True, check=False
    )
    assert finished.returncode == 2
    assert finished.stderr.strip().splitlines() == [
        "curves.py: unknown curve nonsense (choose from queue, idle, payload, functions, big-job)"
    ]
