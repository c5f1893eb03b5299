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


# Abandoned jobs at the head of a queue that the oldest-job look skips at most (a worker frees them when it comes).
OLDEST_LOOKS = 64


def oldest_queued(function: Function, now: float) -> float | None:
    """Seconds the job that has waited longest in the function's queues has waited; ``None`` when none waits.

    Each priority queue is in the order jobs entered it (a requeued job enters again, at the tail), so only its
    head is looked at, past abandoned jobs a worker has not reached yet.
    """
    entered: float | None = None
    for queue in function.queues:
        for job in islice(queue, OLDEST_LOOKS):
            if not job.ignore:
                if entered is None or job.since < entered:
                    entered = job.since
                break
    return None if entered is None else round(max(0.0, now - entered), 3)


def function_view(function: Function, now: float | None = None) -> JSON:
    """One function: queue depth per priority, running, workers, limits, and its counters.

    ``total`` = the three ``queued`` + ``pending`` + ``running``: ``pending`` jobs are counted (as the admin
    ``status`` counts them) but in no priority queue yet: waiting for the store to hold them, or out a retry's
    backoff. Jobs come in as ``submitted`` (here), ``replayed`` (from the store at start-up), ``claimed`` (from a
    cluster's table) or ``revived`` (from the dead set): ``completed`` is compared with their sum.
    """
    stats = function.stats
    sleeping = sum(1 for peer in function.sleepers if peer.sleeping and not peer.woken and not peer.closed)
    return {
        "name": text(function.name),
        "total": function.total,
        "queued": dict(zip(PRIORITY_NAMES, function.queued, strict=True)),
        "pending": function.total - function.running - sum(function.queued),
        "running": function.running,
        "oldest_queued": None if now is None else oldest_queued(function, now),
        "workers": function.worker_count,
        "sleeping_workers": sleeping,
        "max_queue": dict(zip(PRIORITY_NAMES, function.max_queue, strict=True)),
        "submitted": stats.submitted_total,
        "replayed": stats.replayed,
        "claimed": stats.claimed,
        "revived": stats.revived,
        "completed": stats.completed,
        "failed": stats.failed,
        "exceptions": stats.exceptions,
        "requeued": stats.requeued,
        "dropped": stats.dropped,
        "abandoned": stats.abandoned,
        "retried": stats.retried,
        "dead": stats.dead,
        "paused": function.paused,
        "coalesced": stats.coalesced,
        "rejected": stats.rejected,
    }


def functions_view(engine: Engine, now: float | None = None) -> list[JSON]:
    return [function_view(f, now) for f in sorted(engine.functions.values(), key=lambda f: f.name)]


def is_worker(peer: Peer) -> bool:
    return bool(peer.abilities or peer.assigned)


def worker_view(peer: Peer) -> JSON:
    """``address`` is the host alone (as the admin ``workers`` shows it), ``port`` its port (0: none);
    ``jobs_done``: results it sent; ``connected``: when it connected (epoch seconds)."""
    return {
        "id": peer.id,
        "fd": peer.fd,
        "address": peer.address,
        "port": peer.port,
        "client_id": text(peer.client_id),
        "functions": [text(f.name) for f in dict.fromkeys(peer.abilities)],
        "running": [text(handle) for handle in peer.assigned],
        "sleeping": peer.sleeping and not peer.woken,
        "jobs_done": peer.jobs_done,
        "connected": round(peer.connected, 3) if peer.connected else None,
    }


def workers_view(engine: Engine) -> list[JSON]:
    """Connections that registered a function (or still hold a job), oldest first."""
    return [worker_view(p) for p in sorted(engine.peers.values(), key=lambda p: p.id) if is_worker(p)]


def job_state(job: Job, now: float, retry_at: float | None = None) -> str:
    if job.worker is not None:
        return "running"
    if job.acks is not None and job.store_key is not None:
        return "storing"  # waiting for the store's transaction before it is queued
    if job.ignore:
        return "cancelled"
    if job.when > now:
        return "scheduled"
    if retry_at is not None and retry_at > now:
        return "retrying"  # waiting out the backoff after a failed attempt (--policy-file)
    return "queued"


def job_view(job: Job, now: float, failed: int = 0, retry_at: float | None = None) -> JSON:
    """``failed``: attempts the job life cycle counted as failed (a job waiting out a backoff, or retried);
    ``retry_at``: when its backoff ends, if it failed."""
    return {
        "handle": text(job.handle),
        "function": text(job.function.name),
        "unique": text(job.unique),
        "priority": PRIORITY_NAMES[job.priority],
        "background": job.background,
        "state": job_state(job, now, retry_at),
        "age": round(max(0.0, now - job.created), 3),
        "attempts": job.retries + failed + (1 if job.worker is not None else 0),
        "size": len(job.data),
        "worker": job.worker.id if job.worker is not None else None,
        "clients": len(job.clients),
        "when": job.when or None,
        "meta": parse_meta(job.meta),  # the geartrain-meta option's fields (a trace context): {} for most jobs
    }


def listed_job(engine: Engine, job: Job, now: float) -> JSON:
    """A job as the job lists show it (the engine's life cycle adds its failed attempts and backoff)."""
    lifecycle = engine.lifecycle
    if lifecycle is None or not lifecycle.failures:
        return job_view(job, now)
    failure = lifecycle.last_failure.get(job.handle)
    return job_view(job, now, lifecycle.attempts(job), failure[2] if failure is not None else None)


# How much of a job's workload its detail view shows.
PREVIEW_BYTES = 1024


def job_detail(engine: Engine, job: Job, now: float) -> JSON:
    """Everything the server holds about one job: its list entry, a preview of its workload, its worker, its last
    failure and a history of what is known to have happened to it, oldest first (times in epoch seconds).

    The server keeps no log of a job's past: the history is rebuilt from what it holds now (when the job was
    created, entered its queue or was handed out, failed first and last, is due again).
    """
    view = listed_job(engine, job, now)
    preview = job.data[:PREVIEW_BYTES]
    readable = _printable(preview)
    history: list[JSON] = [{"at": round(job.created, 3), "event": "created"}]
    detail: JSON = {
        **view,
        "created": round(job.created, 3),
        "requeued": job.retries,  # taken back from a worker (gone, CANT_DO, timed out) and queued again
        "payload": {
            # Text as it is; anything else with its bytes outside printable ASCII as \xNN escapes.
            "preview": text(preview) if readable else "".join(_ESCAPED[byte] for byte in preview),
            "truncated": len(job.data) > len(preview),
            "binary": not readable,
        },
        "worker_detail": None,
        "progress": [job.numerator, job.denominator] if job.denominator else None,
        "error": None,
        "history": history,
    }
    lifecycle = engine.lifecycle
    failures = lifecycle.failures.get(job.handle) if lifecycle is not None else None
    if lifecycle is not None and failures is not None:
        attempts, first = failures
        history.append({"at": round(first, 3), "event": "first failed attempt"})
        error, failed_at, retry_at = lifecycle.last_failure.get(job.handle, (b"", 0.0, 0.0))
        if failed_at:
            history.append({"at": round(failed_at, 3), "event": f"attempt {attempts} failed: {text(error)}"})
            detail["error"] = text(error)
        if retry_at > now:
            history.append({"at": round(retry_at, 3), "event": "retry due"})
    if job.when:
        history.append({"at": float(job.when), "event": "scheduled to run"})
    worker = job.worker
    if worker is not None:
        history.append({"at": round(job.since, 3), "event": f"handed to worker {worker.id}"})
        detail["worker_detail"] = {
            "id": worker.id,
            "address": worker.address,
            "port": worker.port,
            "client_id": text(worker.client_id),
        }
    elif job.since != job.created and view["state"] == "queued":
        history.append({"at": round(job.since, 3), "event": "queued again" if failures or job.retries else "queued"})
    history.sort(key=lambda event: event["at"])
    return detail


_ESCAPED = [chr(byte) if 32 <= byte < 127 and byte != 92 else f"\\x{byte:02x}" for byte in range(256)]


def _printable(data: bytes) -> bool:
    """Whether a workload reads as text (UTF-8, no control characters but white space)."""
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.reason != "unexpected end of data":
            return False
        decoded = data[: error.start].decode("utf-8")  # a preview cut in the middle of a character
    return all(char.isprintable() or char in "\t\r\n" for char in decoded)


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
            "jobs": [listed_job(engine, job, now) for job in islice(engine.jobs.values(), limit)],
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
            matches.append(listed_job(engine, job, now))
    return {"total": total, "complete": True, "jobs": matches}


def totals_view(engine: Engine) -> JSON:
    """Server-wide sums of the per-function counters and gauges."""
    functions = engine.functions.values()
    stats = list(engine.stats.functions.values())
    return {
        "jobs": len(engine.jobs),
        "queued": sum(sum(f.queued) for f in functions),
        "pending": sum(f.total - f.running - sum(f.queued) for f in functions),
        "running": sum(f.running for f in functions),
        "functions": len(engine.functions),
        "submitted": sum(s.submitted_total for s in stats),
        "replayed": sum(s.replayed for s in stats),
        "claimed": sum(s.claimed for s in stats),
        "revived": sum(s.revived for s in stats),
        "completed": sum(s.completed for s in stats),
        "failed": sum(s.failed + s.exceptions for s in stats),
        "coalesced": sum(s.coalesced for s in stats),
    }
