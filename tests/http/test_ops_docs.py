"""docs/operations.md and the Grafana dashboard name exactly the metrics the server exports."""

from __future__ import annotations

import json
import re

from geartrain.http.metrics import METRICS
from servers import REPO_ROOT

DOCS = REPO_ROOT / "docs"
METRIC_NAME = re.compile(r"\bgeartrain_[a-z_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def family(name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in METRICS:
            return name.removesuffix(suffix)
    return name


def test_the_metrics_table_lists_every_exported_metric_and_no_other() -> None:
    text = (DOCS / "operations.md").read_text()
    table = {row.split("|")[1].strip().strip("`") for row in text.splitlines() if row.startswith("| `geartrain_")}
    assert table == set(METRICS)
    mentioned = {family(name) for name in METRIC_NAME.findall(text)}
    assert mentioned <= set(METRICS), mentioned - set(METRICS)


def test_the_grafana_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    expressions += [variable["query"] for variable in dashboard["templating"]["list"]]
    used = {family(name) for expr in expressions for name in METRIC_NAME.findall(expr)}
    assert used <= set(METRICS), used - set(METRICS)
    assert len(used) >= 12  # the dashboard covers the metrics, not a token few
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
