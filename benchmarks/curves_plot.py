"""Tables and plots of a curves.py results file (benchmarks/results/curves-<time>.json).

    .venv/bin/python benchmarks/curves_plot.py [RESULTS.json] [--output docs/]   # default: the newest file

Medians over the repetitions; the ratio is the median of the repetitions' paired ratios (compare.py's way),
oriented so that > 1 means geartrain did better, also for latency, memory and time. Plots need matplotlib (the
`bench` extra).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OURS, THEIRS = "geartrain", "gearmand"

# metric -> (label, higher is better)
METRICS: dict[str, tuple[str, bool]] = {
    "submit_jobs_per_s": ("submit jobs/s", True),
    "drain_jobs_per_s": ("drain jobs/s", True),
    "bytes_per_job": ("bytes/job", False),
    "hwm_mib": ("VmHWM MiB", False),
    "db_mib": ("file MiB", False),
    "replay_s": ("replay s", False),
    "replay_rss_mib": ("VmRSS after replay MiB", False),
    "jobs_per_s": ("jobs/s", True),
    "mib_per_s": ("MiB/s each way", True),
    "p50_us": ("p50 µs", False),
    "p99_us": ("p99 µs", False),
    "rss_mib": ("VmRSS MiB", False),
    "seconds": ("seconds", False),
    "rss_before_mib": ("VmRSS before MiB", False),
    "server_us": ("server CPU µs/job", False),
    "drain_server_us": ("drain: server CPU µs/job", False),
}
COLUMNS = {
    "queue memory": [
        "submit_jobs_per_s",
        "drain_jobs_per_s",
        "bytes_per_job",
        "hwm_mib",
        "server_us",
        "drain_server_us",
    ],
    "queue sqlite": [
        "submit_jobs_per_s",
        "drain_jobs_per_s",
        "bytes_per_job",
        "db_mib",
        "replay_s",
        "replay_rss_mib",
        "server_us",
    ],
    "idle": ["p50_us", "p99_us", "jobs_per_s", "rss_mib", "server_us"],
    "payload": ["jobs_per_s", "mib_per_s", "p50_us", "p99_us", "server_us"],
    "functions": ["jobs_per_s", "p50_us", "p99_us", "server_us"],
    "big-job": ["seconds", "hwm_mib", "rss_before_mib", "server_us"],
    "big-job, result ok": ["seconds", "hwm_mib", "rss_before_mib", "server_us"],
}
X_LABEL = {
    "queue memory": "queued jobs",
    "queue sqlite": "queued jobs",
    "idle": "idle connections",
    "payload": "payload bytes",
    "functions": "functions",
    "big-job": "job bytes",
    "big-job, result ok": "job bytes",
}


def merge(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs as one: the first one's machine and settings, every note, the repetitions numbered on."""
    merged = documents[0] | {"results": [], "notes": []}
    for document in documents:
        offset = max((r["rep"] for r in merged["results"]), default=-1) + 1
        merged["results"] += [r | {"rep": r["rep"] + offset} for r in document["results"]]
        merged["notes"] += [n for n in document.get("notes", []) if n not in merged["notes"]]
    return merged


def group(row: dict[str, Any]) -> str:
    return f"queue {row['store']}" if row["curve"] == "queue" else str(row["curve"])


def figures(row: dict[str, Any]) -> dict[str, float]:
    out = {k: v for k, v in row["metrics"].items() if v is not None and not math.isnan(v)}
    if row.get("server_cpu_s") is not None and row.get("cpu_jobs"):
        out["server_us"] = row["server_cpu_s"] * 1e6 / row["cpu_jobs"]
    return out


def summarise(results: list[dict[str, Any]]) -> dict[tuple[str, int, str, str], float]:
    """(group, x, metric, server or "ratio") -> median over the repetitions (ratio: of the paired ratios)."""
    samples: dict[tuple[str, int, str, str], list[float]] = {}
    by_rep: dict[tuple[str, int, str, int], dict[str, float]] = {}
    for row in results:
        for metric, value in figures(row).items():
            samples.setdefault((group(row), row["x"], metric, row["server"]), []).append(value)
            by_rep.setdefault((group(row), row["x"], metric, row["rep"]), {})[row["server"]] = value
    for (name, x, metric, _), values in by_rep.items():
        ours, theirs = values.get(OURS), values.get(THEIRS)
        if ours and theirs and ours > 0 and theirs > 0:
            factor = ours / theirs if METRICS.get(metric, ("", True))[1] else theirs / ours
            samples.setdefault((name, x, metric, "ratio"), []).append(factor)
    return {key: statistics.median(values) for key, values in samples.items()}


def fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric.endswith("jobs_per_s") or metric == "jobs_per_s":
        if value >= 1e6:
            return f"{value / 1e6:.2f}M"
        return f"{value / 1000:.1f}k" if value >= 10_000 else f"{value:.0f}"
    if metric in ("seconds", "replay_s"):
        return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 100 else f"{value:.0f}"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def tables(document: dict[str, Any]) -> str:
    """Markdown: one table per curve, a row per size, each figure as ``geartrain / gearmand (ratio)``."""
    results = document["results"]
    table = summarise(results)
    reps = max((r["rep"] for r in results), default=0) + 1
    servers = document.get("servers", [OURS])
    out = [
        f"Medians of up to {reps} repetitions; cells: {' / '.join(servers)}"
        + (" (paired ratio, > 1: geartrain better)" if THEIRS in servers else "")
        + ".\n"
    ]
    for note in document.get("notes", []):
        out.append(f"* {note}")
    limits = document.get("limits")
    if limits:
        out.append(f"* RLIMIT_NOFILE soft {limits['nofile_soft']:,}, hard {limits['nofile_hard']:,}.")
    for name, columns in COLUMNS.items():
        xs = sorted({x for (g, x, _, _) in table if g == name})
        if not xs:
            continue
        shown = [m for m in columns if any((name, x, m, OURS) in table for x in xs)]
        out.append(f"\n**{name}**\n")
        labels = [("submit: " if m == "server_us" and name.startswith("queue") else "") + METRICS[m][0] for m in shown]
        out.append(f"| {X_LABEL[name]} | " + " | ".join(labels) + " |")
        out.append("|---" * (len(shown) + 1) + "|")
        for x in xs:
            cells = []
            for metric in shown:
                cell = fmt(metric, table.get((name, x, metric, OURS)))
                if THEIRS in servers:
                    cell += f" / {fmt(metric, table.get((name, x, metric, THEIRS)))}"
                    factor = table.get((name, x, metric, "ratio"))
                    cell += f" ({factor:.2f}x)" if factor is not None else ""
                cells.append(cell)
            out.append(f"| {x:,} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def _series(
    table: dict[tuple[str, int, str, str], float], name: str, metric: str, server: str
) -> list[tuple[int, float]]:
    return sorted((x, v) for (g, x, m, s), v in table.items() if g == name and m == metric and s == server)


def _short(x: int) -> str:
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if x >= size and x % size == 0:
            return f"{x // size}{suffix}"
    return str(x)


# per figure: (groups, metric, title, logarithmic y axis)
PANELS: dict[str, list[tuple[list[str], str, str, bool]]] = {
    "queue": [
        (["queue memory", "queue sqlite"], "bytes_per_job", "bytes of VmRSS per queued job", False),
        (["queue memory", "queue sqlite"], "submit_jobs_per_s", "submit jobs/s", True),
        (["queue memory", "queue sqlite"], "drain_jobs_per_s", "drain jobs/s (4 workers, a sample)", True),
        (["queue sqlite"], "replay_s", "SQLite: replay after a restart, s", True),
    ],
    "idle": [
        (["idle"], "p50_us", "round trip p50 µs (1 client, 1 worker)", False),
        (["idle"], "p99_us", "round trip p99 µs", False),
        (["idle"], "jobs_per_s", "jobs/s", False),
        (["idle"], "rss_mib", "server VmRSS MiB with the idle connections", False),
    ],
    "round-trips": [
        (["payload"], "jobs_per_s", "jobs/s against payload bytes (4 clients, 4 workers)", True),
        (["payload"], "mib_per_s", "payload MiB/s each way", True),
        (["functions"], "jobs_per_s", "jobs/s against functions (4 clients, 4 workers)", True),
        (["functions"], "server_us", "server CPU µs per job against functions", True),
    ],
}


def plot_all(document: dict[str, Any], directory: Path) -> list[Path]:
    """Write docs/performance-curves-{queue,idle,round-trips}.png: medians as lines, every repetition as a faint
    dot (the machine is noisy, and at times runs at half speed for both servers alike); returns the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = document["results"]
    table = summarise(results)
    machine = document.get("machine", {})
    where = f"{machine.get('nproc', '?')} cores, {machine.get('cpu', '?')}"
    colours = {OURS: "tab:blue", THEIRS: "tab:orange"}
    written = []
    directory.mkdir(parents=True, exist_ok=True)
    for stem, specs in PANELS.items():
        specs = [s for s in specs if any(_series(table, g, s[1], OURS) for g in s[0])]
        if not specs:
            continue
        columns = 2 if len(specs) > 1 else 1
        rows = -(-len(specs) // columns)
        figure, axes_grid = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.6 * rows), dpi=110, squeeze=False)
        for axes, (names, metric, title, log_y) in zip(axes_grid.flat, specs, strict=False):
            xs: set[int] = set()
            for name in names:
                sqlite = name == "queue sqlite"
                for server in (OURS, THEIRS):
                    points = _series(table, name, metric, server)
                    if not points:
                        continue
                    xs.update(x for x, _ in points)
                    label = f"{server}, {name.split()[-1]}" if name.startswith("queue") else server
                    style = {"color": colours[server], "marker": "s" if sqlite else "o"}
                    axes.plot(*zip(*points, strict=True), "--" if sqlite else "-", label=label, **style)
                    raw = [(r["x"], figures(r)[metric]) for r in results if group(r) == name and r["server"] == server]
                    raw = [(x, v) for x, v in raw if v is not None]
                    axes.scatter(*zip(*raw, strict=True), s=12, alpha=0.35, **style)
            if stem == "idle":
                axes.set_xscale("symlog", linthresh=1000)
            else:
                axes.set_xscale("log")
            axes.set_xticks(sorted(xs), [_short(x) for x in sorted(xs)])
            axes.minorticks_off()
            if log_y:
                axes.set_yscale("log")
            else:
                axes.set_ylim(bottom=0)
            axes.set_title(title, fontsize=9)
            axes.set_xlabel(X_LABEL[names[0]], fontsize=8)
            axes.grid(True, alpha=0.3)
            axes.legend(fontsize=7)
        for axes in list(axes_grid.flat)[len(specs) :]:
            axes.axis("off")
        figure.suptitle(
            f"How the cost grows ({stem}), loopback, {where}; lines: medians, dots: repetitions", fontsize=9
        )
        figure.tight_layout()
        path = directory / f"performance-curves-{stem}.png"
        figure.savefig(path)
        plt.close(figure)
        written.append(path)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="?", type=Path, help="a curves.py JSON file (default: the newest)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs", help="directory of the PNGs (default docs/)")
    args = parser.parse_args()
    found = sorted((ROOT / "benchmarks" / "results").glob("curves-*.json"), key=lambda p: p.stat().st_mtime)
    path = args.results or (found[-1] if found else None)
    if path is None or not path.is_file():
        sys.exit(f"curves_plot.py: no results file {path or ''}: run benchmarks/curves.py first".replace("  ", " "))
    document = json.loads(path.read_text())
    print(tables(document))
    try:
        for png in plot_all(document, args.output):
            print(f"wrote {png}")
    except ImportError:
        sys.exit("curves_plot.py needs matplotlib: .venv/bin/pip install -e '.[bench]'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
