"""Tables of results: one run's figures, and medians side by side with ratios (compare.py)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from geartrain.bench.workloads import METRICS


def format_value(metric: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if metric == "jobs_per_s":
        return f"{value / 1000:.1f}k" if value >= 10_000 else f"{value:.0f}"
    if metric == "seconds":
        return f"{value:.2f}"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def results_table(results: Iterable[dict[str, Any]]) -> str:
    """One line per result: every figure, the counts, and the server's and the generator's CPU seconds."""
    lines = [
        "| server | variant | figures | counts | server CPU s | generator CPU s | elapsed s |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        figures = ", ".join(f"{METRICS[m][0]} {format_value(m, v)}" for m, v in result["metrics"].items())
        counts = ", ".join(f"{k} {v}" for k, v in result["counts"].items())
        server_cpu = result.get("server_cpu_s")
        lines.append(
            f"| {result['server']} | {result['variant']} | {figures} | {counts} | "
            f"{'n/a' if server_cpu is None else f'{server_cpu:.2f}'} | {result['generator_cpu_s']:.2f} | "
            f"{result['elapsed_s']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def medians(results: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str], float]:
    """Median of every (variant, metric, server) over the repetitions."""
    samples: dict[tuple[str, str, str], list[float]] = {}
    for result in results:
        for metric, value in result["metrics"].items():
            if value is not None and not math.isnan(value):
                samples.setdefault((result["variant"], metric, result["server"]), []).append(value)
        jobs = result.get("cpu_jobs") or 0
        server_cpu = result.get("server_cpu_s")
        if jobs and server_cpu is not None:
            # CPU per job on both sides shows which one was the limit (a saturated generator is visible).
            samples.setdefault((result["variant"], "server_us", result["server"]), []).append(server_cpu * 1e6 / jobs)
        if jobs:
            generator_us = result["generator_cpu_s"] * 1e6 / jobs
            samples.setdefault((result["variant"], "generator_us", result["server"]), []).append(generator_us)
    return {key: statistics.median(values) for key, values in samples.items()}


def ratio(metric: str, ours: float | None, theirs: float | None) -> float | None:
    """``ours`` against ``theirs`` oriented so that > 1 always means ours is better."""
    if ours is None or theirs is None or ours <= 0 or theirs <= 0:
        return None
    higher_is_better = METRICS[metric][1]
    return ours / theirs if higher_is_better else theirs / ours


def paired_ratios(results: Iterable[dict[str, Any]], ours: str, theirs: str) -> dict[tuple[str, str], float]:
    """Per (variant, metric): the median over repetitions of the ratio within each repetition (as the cross-check
    harness's compare.sh computes it). Both servers of a repetition ran minutes apart at most, so on a machine whose
    speed drifts this is steadier than the ratio of the two medians. Results without a repetition number are left
    out (the caller falls back to the medians)."""
    by_rep: dict[tuple[str, str, int], dict[str, float]] = {}
    for result in results:
        rep = result.get("rep")
        if rep is None or result["server"] not in (ours, theirs):
            continue
        for metric, value in result["metrics"].items():
            if value is not None and not math.isnan(value):
                by_rep.setdefault((result["variant"], metric, rep), {})[result["server"]] = value
    samples: dict[tuple[str, str], list[float]] = {}
    for (variant, metric, _), values in by_rep.items():
        factor = ratio(metric, values.get(ours), values.get(theirs))
        if factor is not None:
            samples.setdefault((variant, metric), []).append(factor)
    return {key: statistics.median(values) for key, values in samples.items()}


def comparison_table(results: Sequence[dict[str, Any]], ours: str, theirs: str | None) -> str:
    """Markdown: each variant's median figures for both servers, the ratio (the median of the per-repetition
    ratios where the results say their repetition, else the ratio of the medians), and each side's CPU load."""
    table = medians(results)
    paired = paired_ratios(results, ours, theirs) if theirs is not None else {}
    variants = list(dict.fromkeys(r["variant"] for r in results))
    reps = max((sum(1 for r in results if r["variant"] == v and r["server"] == ours) for v in variants), default=0)
    if theirs is None:
        header = [
            f"| workload (median of {reps}) | figure | {ours} | {ours} CPU µs/job: server, generator |",
            "|---|---|---|---|",
        ]
    else:
        header = [
            f"| workload (median of {reps}) | figure | {ours} | {theirs} | ratio {ours}/{theirs}, median of the "
            f"repetitions' (>1: {ours} better, also for latency, memory and time) | CPU µs/job server, generator: "
            f"{ours}; {theirs} |",
            "|---|---|---|---|---|---|",
        ]
    lines = list(header)
    for variant in variants:
        metrics = [m for m in METRICS if (variant, m, ours) in table or (variant, m, theirs or "") in table]
        for metric in metrics:
            mine = table.get((variant, metric, ours))
            loads = _loads(table, variant, ours)
            row = f"| {variant} | {METRICS[metric][0]} | {format_value(metric, mine)} |"
            if theirs is not None:
                other = table.get((variant, metric, theirs))
                factor = paired.get((variant, metric), ratio(metric, mine, other))
                row += f" {format_value(metric, other)} | {'n/a' if factor is None else f'{factor:.2f}x'} |"
                loads += "; " + _loads(table, variant, theirs)
            lines.append(row + f" {loads} |")
    return "\n".join(lines) + "\n"


def _loads(table: dict[tuple[str, str, str], float], variant: str, server: str) -> str:
    server_us = table.get((variant, "server_us", server))
    generator_us = table.get((variant, "generator_us", server))
    parts = ["n/a" if x is None else f"{x:.1f}" for x in (server_us, generator_us)]
    return ", ".join(parts)
