"""The dashboard of a cluster node, in headless Chromium: the cluster's nodes, this one marked, the leader named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import Node, Queue
from test_cluster import start_nodes

from servers import wait_until


def node_rows(driver: Any) -> list[tuple[str, str, str]]:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        rows = driver.find_elements("css selector", "#cluster tr[data-node]")
        return [
            (str(row.get_attribute("data-node")), str(row.get_attribute("class")), row.text.split()[-1]) for row in rows
        ]
    except StaleElementReferenceException:
        return []


def test_the_dashboard_lists_the_clusters_nodes(
    table: Queue,
    nodes: list[Node],
    tmp_path: Path,
    browser: Any,
) -> None:
    start_nodes(nodes, table.url, tmp_path, 2)
    browser.get(f"http://127.0.0.1:{nodes[1].http_port}/dashboard/")
    found = wait_until(lambda: (rows := node_rows(browser)) and len(rows) == 2 and rows, 20, "two nodes listed")
    assert [row[0] for row in found] == ["n0", "n1"]
    assert [row[1] for row in found] == ["", "this"]  # the node whose dashboard this is
    assert "this node n1" in browser.find_element("css selector", "#cluster-summary").text
