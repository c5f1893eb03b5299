"""Plot round-trip jobs/s against jobs in flight (4 echo workers) for each server in a compare.py results file.

    .venv/bin/python benchmarks/plot.py                          # newest benchmarks/results/*.jsonl
    .venv/bin/python benchmarks/plot.py RESULTS.jsonl --output docs/performance-roundtrip.png

Needs matplotlib (the `bench` extra: pip install -e '.[bench]'; `make bench` installs it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
WORKERS = 4


def load(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    machine: dict[str, Any] = {}
    rows = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if "machine" in record:
            machine = record["machine"]
        elif record.get("workload") == "round-trip" and record["params"].get("workers") == WORKERS:
            rows.append(record)
    return machine, rows


def series(rows: list[dict[str, Any]]) -> dict[str, list[tuple[int, float, float]]]:
    """server -> [(jobs in flight, median jobs/s, median p99 µs)], by jobs in flight."""
    samples: dict[tuple[str, int], list[dict[str, float]]] = {}
    for row in rows:
        samples.setdefault((row["server"], row["params"]["in_flight"]), []).append(row["metrics"])
    out: dict[str, list[tuple[int, float, float]]] = {}
    for (server, in_flight), metrics in sorted(samples.items()):
        rate = statistics.median(m["jobs_per_s"] for m in metrics)
        p99 = statistics.median(m["p99_us"] for m in metrics)
        out.setdefault(server, []).append((in_flight, rate, p99))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="?", type=Path, help="a compare.py .jsonl file (default: the newest)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "performance-roundtrip.png")
    args = parser.parse_args()
    path = args.results or max(RESULTS.glob("*.jsonl"), key=lambda p: p.stat().st_mtime, default=None)
    if path is None:
        sys.exit("no results file: run benchmarks/compare.py first")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot.py needs matplotlib: .venv/bin/pip install -e '.[bench]'")
    machine, rows = load(path)
    lines = series(rows)
    if not lines:
        sys.exit(f"{path}: no round-trip results with {WORKERS} workers")
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for index, (server, points) in enumerate(lines.items()):
        in_flight = [p[0] for p in points]
        rates = [p[1] for p in points]
        (line,) = axes.plot(in_flight, rates, marker="o", label=server)
        for x, y, p99 in points:
            # Labels of the two servers on opposite sides of their points, in their line's colour, so that close
            # or crossing points stay readable.
            offset = (4, 6) if index % 2 == 0 else (4, -12)
            axes.annotate(
                f"p99 {p99 / 1000:.1f} ms",
                (x, y),
                textcoords="offset points",
                xytext=offset,
                fontsize=7,
                color=line.get_color(),
            )
    axes.set_xscale("log", base=2)
    axes.set_xticks(sorted({p[0] for points in lines.values() for p in points}))
    axes.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes.set_xlabel("foreground jobs in flight (one per client connection)")
    axes.set_ylabel("jobs/s (median)")
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    axes.legend()
    where = f"{machine.get('nproc', '?')} cores, {machine.get('cpu', '?')}" if machine else ""
    axes.set_title(f"Round trips with {WORKERS} echo workers, loopback\n{where}", fontsize=10)
    figure.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output)
    print(f"wrote {args.output} from {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
