"""Read-only views of the engine as plain JSON-ready data, shared by the HTTP API and the ``... json`` admin commands.

Names and uniques are bytes on the wire; here they become text (UTF-8, undecodable bytes as ``\\xNN`` escapes).
Ages are computed from the ``now`` the caller passes in.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from geartrain.protocol.meta import parse_meta
from geartrain.server.core.engine import Engine
from geartrain.server.core.jobs import Job
from geartrain.server.core.peers import Peer
from geartrain.server.core.queues import Function
from geartrain.server.core.stats import PRIORITY_NAMES

JSON = dict[str, Any]


def text(value: bytes) -> str:
    return value.decode("utf-8", "backslashreplace")


def function_view(function: Function) -> JSON:
    """One function: queue depth per priority, running, workers, limits, and its counters."""
    stats = function.stats
    sleeping = sum(1 for peer in function.sleepers if peer.sleeping and not peer.woken and not peer.closed)
    return {
        "name": text(function.name),
        "total": function.total,
        "queued": dict(zip(PRIORITY_NAMES, function.queued, strict=True)),
        "running": function.running,
        "workers": function.worker_count,
        "sleeping_workers": sleeping,
        "max_queue": dict(zip(PRIORITY_NAMES, function.max_queue, strict=True)),
        "submitted": stats.submitted_total,
        "completed": stats.completed,
        "failed": stats.failed,
        "exceptions": stats.exceptions,
        "requeued": stats.requeued,
        "dropped": stats.dropped,
        "retried": stats.retried,
        "dead": stats.dead,
        "paused": function.paused,
        "coalesced": stats.coalesced,
        "rejected": stats.rejected,
    }


def functions_view(engine: Engine) -> list[JSON]:
    return [function_view(f) for f in sorted(engine.functions.values(), key=lambda f: f.name)]


def is_worker(peer: Peer) -> bool:
    return bool(peer.abilities or peer.assigned)


def worker_view(peer: Peer) -> JSON:
    return {
        "id": peer.id,
        "fd": peer.fd,
        "address": peer.address,
        "client_id": text(peer.client_id),
        "functions": [text(f.name) for f in dict.fromkeys(peer.abilities)],
        "running": [text(handle) for handle in peer.assigned],
        "sleeping": peer.sleeping and not peer.woken,
    }


def workers_view(engine: Engine) -> list[JSON]:
    """Connections that registered a function (or still hold a job), oldest first."""
    return [worker_view(p) for p in sorted(engine.peers.values(), key=lambda p: p.id) if is_worker(p)]


def job_state(job: Job, now: float) -> str:
    if job.worker is not None:
        return "running"
    if job.acks is not None and job.store_key is not None:
        return "storing"  # waiting for the store's transaction before it is queued
    if job.ignore:
        return "cancelled"
    if job.when > now:
        return "scheduled"
    return "queued"


def job_view(job: Job, now: float, failed: int = 0) -> JSON:
    """``failed``: attempts the job life cycle counted as failed (a job waiting out a backoff, or retried)."""
    return {
        "handle": text(job.handle),
        "function": text(job.function.name),
        "unique": text(job.unique),
        "priority": PRIORITY_NAMES[job.priority],
        "background": job.background,
        "state": job_state(job, now),
        "age": round(max(0.0, now - job.created), 3),
        "attempts": job.retries + failed + (1 if job.worker is not None else 0),
        "size": len(job.data),
        "worker": job.worker.id if job.worker is not None else None,
        "clients": len(job.clients),
        "when": job.when or None,
        "meta": parse_meta(job.meta),  # the geartrain-meta option's fields (a trace context): {} for most jobs
    }


# A search looks at this many jobs at most, so a huge queue cannot stall the server for one listing.
MAX_JOBS_SCANNED = 100_000


def jobs_view(engine: Engine, now: float, search: str = "", function: str = "", limit: int = 500) -> JSON:
    """Jobs, oldest first, filtered by function name and by a search string in the handle, unique or function.

    ``total`` counts every match; ``jobs`` holds at most ``limit`` of them. Without a filter only ``limit`` jobs
    are looked at; with one, at most :data:`MAX_JOBS_SCANNED` (then ``complete`` is false and ``total`` counts
    the matches among those).
    """
    if not search and not function:
        return {
            "total": len(engine.jobs),
            "complete": True,
            "jobs": [job_view(job, now, engine.failed_attempts(job)) for job in islice(engine.jobs.values(), limit)],
        }
    needle = search.lower()
    matches: list[JSON] = []
    total = 0
    for scanned, job in enumerate(engine.jobs.values()):
        if scanned == MAX_JOBS_SCANNED:
            return {"total": total, "complete": False, "jobs": matches}
        name = text(job.function.name)
        if function and name != function:
            continue
        if needle and not any(needle in field.lower() for field in (text(job.handle), text(job.unique), name)):
            continue
        total += 1
        if len(matches) < limit:
            matches.append(job_view(job, now, engine.failed_attempts(job)))
    return {"total": total, "complete": True, "jobs": matches}


def totals_view(engine: Engine) -> JSON:
    """Server-wide sums of the per-function counters and gauges."""
    functions = engine.functions.values()
    stats = list(engine.stats.functions.values())
    return {
        "jobs": len(engine.jobs),
        "queued": sum(sum(f.queued) for f in functions),
        "running": sum(f.running for f in functions),
        "functions": len(engine.functions),
        "submitted": sum(s.submitted_total for s in stats),
        "completed": sum(s.completed for s in stats),
        "failed": sum(s.failed + s.exceptions for s in stats),
        "coalesced": sum(s.coalesced for s in stats),
    }
