"""``/metrics`` in Prometheus' text exposition format (version 0.0.4).

Counters and histograms come from the engine's per-function stats (``server/core/stats.py``); gauges are read
from the engine's state at scrape time, so a scrape costs nothing between scrapes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geartrain.server.core.snapshot import oldest_queued
from geartrain.server.core.stats import PRIORITY_NAMES, Histogram

if TYPE_CHECKING:
    from geartrain.http.listener import HttpListener

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# name -> (type, help). Every metric is listed here once, in exposition order.
METRICS: dict[str, tuple[str, str]] = {
    "geartrain_jobs_submitted_total": (
        "counter",
        "Jobs created by submits to this server, by priority and kind (foreground/background); jobs that came in "
        "otherwise are counted by geartrain_jobs_replayed_total, _claimed_total and _revived_total",
    ),
    "geartrain_jobs_replayed_total": ("counter", "Jobs replayed from the persistent store at start-up"),
    "geartrain_jobs_claimed_total": ("counter", "Jobs claimed from the cluster's table (submitted on any node)"),
    "geartrain_jobs_revived_total": ("counter", "Dead jobs queued again (dead retry)"),
    "geartrain_jobs_coalesced_total": ("counter", "Submits attached to an existing job with the same unique"),
    "geartrain_jobs_rejected_total": (
        "counter",
        "Submits refused because the function's queue was full (maxqueue) or --max-queued-bytes was reached",
    ),
    "geartrain_jobs_completed_total": ("counter", "Jobs a worker completed (WORK_COMPLETE)"),
    "geartrain_jobs_failed_total": ("counter", "Jobs a worker failed (WORK_FAIL)"),
    "geartrain_jobs_exceptions_total": ("counter", "Jobs that ended with WORK_EXCEPTION"),
    "geartrain_jobs_requeued_total": ("counter", "Jobs taken back from a worker (disconnect, CANT_DO, timeout)"),
    "geartrain_jobs_dropped_total": ("counter", "Jobs given up after --job-retries attempts"),
    "geartrain_jobs_abandoned_total": (
        "counter",
        "Queued jobs dropped because every client waiting for them left (an HTTP request that hung up)",
    ),
    "geartrain_jobs_retried_total": ("counter", "Failed background jobs queued again after a backoff (--policy-file)"),
    "geartrain_jobs_dead_total": ("counter", "Background jobs out of retries, moved to the dead set (--policy-file)"),
    "geartrain_dead_jobs": ("gauge", "Jobs in the dead set (--policy-file)"),
    "geartrain_jobs_queued": ("gauge", "Jobs waiting for a worker, by priority (scheduled epoch jobs included)"),
    "geartrain_jobs_pending": (
        "gauge",
        "Jobs held in no priority queue yet: waiting for the store to hold them, or out a retry's backoff",
    ),
    "geartrain_oldest_queued_seconds": ("gauge", "How long the job that has waited longest in the queue has waited"),
    "geartrain_jobs_running": ("gauge", "Jobs a worker is working on"),
    "geartrain_workers": ("gauge", "Worker registrations (CAN_DO) per function"),
    "geartrain_workers_sleeping": ("gauge", "Workers of the function asleep (PRE_SLEEP) and not yet woken"),
    "geartrain_queue_wait_seconds": ("histogram", "Time from entering the queue to being handed to a worker"),
    "geartrain_run_seconds": ("histogram", "Time from being handed to a worker to its result"),
    "geartrain_connections": ("gauge", "Open Gearman protocol connections (clients, workers, admin)"),
    "geartrain_http_connections": ("gauge", "Open HTTP connections"),
    "geartrain_jobs": ("gauge", "Jobs the server holds (queued, running, or waiting for the store)"),
    "geartrain_queued_bytes": ("gauge", "Workload bytes of the jobs held (capped by --max-queued-bytes)"),
    "geartrain_connections_refused_total": ("counter", "Connections refused at --max-connections"),
    "geartrain_connections_cut_total": ("counter", "Connections cut for unsent output past --max-unsent"),
    "geartrain_connections_idle_closed_total": ("counter", "Connections closed for sending nothing valid in time"),
    "geartrain_uptime_seconds": ("gauge", "Seconds since the server started"),
    "geartrain_store_up": ("gauge", "1 while the persistent store accepts writes, 0 during an outage"),
    "geartrain_store_commits_total": ("counter", "Store transactions committed"),
    "geartrain_store_commit_seconds": ("histogram", "Time from starting a store transaction to its result"),
    "geartrain_access_denied_total": ("counter", "Requests the access policy refused, by action"),
    "geartrain_cluster_nodes": ("gauge", "Nodes of this node's cluster, as of its last heartbeat"),
    "geartrain_cluster_leader": ("gauge", "1 while this node does the cluster's housekeeping"),
    "geartrain_cluster_ready": ("gauge", "1 while this node holds its lease, 0 while it cannot renew it"),
    "geartrain_cluster_jobs_held": ("gauge", "Jobs of the cluster's table this node holds under its lease"),
    "geartrain_cluster_claimed_total": ("counter", "Jobs this node claimed from the cluster"),
    "geartrain_cluster_rescued_total": ("counter", "Jobs of lapsed leases this node, as leader, sent back"),
}


def label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels(**pairs: str) -> str:
    return "{" + ",".join(f'{key}="{label_value(value)}"' for key, value in pairs.items()) + "}"


class Exposition:
    """Collects samples per metric name, then renders them with their HELP and TYPE lines."""

    def __init__(self) -> None:
        self.samples: dict[str, list[str]] = {name: [] for name in METRICS}

    def add(self, name: str, value: float, label_text: str = "") -> None:
        self.samples[name].append(f"{name}{label_text} {_number(value)}")

    def histogram(self, name: str, histogram: Histogram, **pairs: str) -> None:
        rows = self.samples[name]
        for bound, count in histogram.cumulative():
            rows.append(f"{name}_bucket{labels(**pairs, le=bound)} {count}")
        rows.append(f"{name}_sum{labels(**pairs)} {_number(histogram.sum)}")
        rows.append(f"{name}_count{labels(**pairs)} {histogram.count}")

    def render(self) -> bytes:
        lines = []
        for name, (kind, help_text) in METRICS.items():
            rows = self.samples[name]
            if not rows:
                continue
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *rows]
        return ("\n".join(lines) + "\n").encode()


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def render_metrics(listener: HttpListener, now: float) -> bytes:
    """The whole exposition for one scrape."""
    node = listener.view
    engine = node.engine
    out = Exposition()
    cluster = node.cluster
    for name, stats in sorted(engine.stats.functions.items()):
        fn = name.decode("utf-8", "backslashreplace")
        for index, count in enumerate(stats.submitted):
            priority, kind = PRIORITY_NAMES[index // 2], ("background" if index % 2 else "foreground")
            out.add("geartrain_jobs_submitted_total", count, labels(function=fn, priority=priority, kind=kind))
        out.add("geartrain_jobs_replayed_total", stats.replayed, labels(function=fn))
        if cluster is not None:
            out.add("geartrain_jobs_claimed_total", stats.claimed, labels(function=fn))
        if engine.lifecycle is not None:
            out.add("geartrain_jobs_revived_total", stats.revived, labels(function=fn))
        out.add("geartrain_jobs_coalesced_total", stats.coalesced, labels(function=fn))
        out.add("geartrain_jobs_rejected_total", stats.rejected, labels(function=fn))
        out.add("geartrain_jobs_completed_total", stats.completed, labels(function=fn))
        out.add("geartrain_jobs_failed_total", stats.failed, labels(function=fn))
        out.add("geartrain_jobs_exceptions_total", stats.exceptions, labels(function=fn))
        out.add("geartrain_jobs_requeued_total", stats.requeued, labels(function=fn))
        out.add("geartrain_jobs_dropped_total", stats.dropped, labels(function=fn))
        out.add("geartrain_jobs_abandoned_total", stats.abandoned, labels(function=fn))
        if engine.lifecycle is not None:
            out.add("geartrain_jobs_retried_total", stats.retried, labels(function=fn))
            out.add("geartrain_jobs_dead_total", stats.dead, labels(function=fn))
            dead = sum(1 for job in engine.lifecycle.dead.values() if job.function == name)
            out.add("geartrain_dead_jobs", dead, labels(function=fn))
        out.histogram("geartrain_queue_wait_seconds", stats.queue_wait, function=fn)
        out.histogram("geartrain_run_seconds", stats.run_time, function=fn)
        function = engine.functions.get(name)
        if function is None:  # dropped: its counters stay, its gauges go
            continue
        for priority, count in zip(PRIORITY_NAMES, function.queued, strict=True):
            out.add("geartrain_jobs_queued", count, labels(function=fn, priority=priority))
        out.add("geartrain_jobs_pending", function.total - function.running - sum(function.queued), labels(function=fn))
        oldest = oldest_queued(function, now)
        if oldest is not None:
            out.add("geartrain_oldest_queued_seconds", oldest, labels(function=fn))
        out.add("geartrain_jobs_running", function.running, labels(function=fn))
        out.add("geartrain_workers", function.worker_count, labels(function=fn))
        sleeping = sum(1 for p in function.sleepers if p.sleeping and not p.woken and not p.closed)
        out.add("geartrain_workers_sleeping", sleeping, labels(function=fn))
    out.add("geartrain_connections", node.gearman_connection_count())
    out.add("geartrain_http_connections", len(listener.connections))
    out.add("geartrain_jobs", len(engine.jobs))
    out.add("geartrain_queued_bytes", engine.queued_bytes)
    guard = node.connection_counters
    out.add("geartrain_connections_refused_total", guard.refused)
    out.add("geartrain_connections_cut_total", guard.cut_for_output)
    out.add("geartrain_connections_idle_closed_total", guard.closed_idle)
    out.add("geartrain_uptime_seconds", round(now - listener.started, 3))
    store = node.store
    if store is not None:
        out.add("geartrain_store_up", 1 if store.up else 0)
        out.add("geartrain_store_commits_total", store.commits)
        out.histogram("geartrain_store_commit_seconds", store.commit_latency)
    if cluster is not None:  # docs/cluster.md
        out.add("geartrain_cluster_nodes", len(cluster.known_nodes))
        out.add("geartrain_cluster_leader", int(cluster.leader))
        out.add("geartrain_cluster_ready", int(cluster.ready[0]))
        out.add("geartrain_cluster_jobs_held", cluster.jobs_held)
        out.add("geartrain_cluster_claimed_total", cluster.claimed)
        out.add("geartrain_cluster_rescued_total", cluster.rescued)
    access = node.access
    if access.active:  # docs/security.md
        for action in ("submit", "work", "admin_read", "admin_write", "auth"):
            out.add("geartrain_access_denied_total", access.denials[action], labels(action=action))
    return out.render()
