"""What a node tells its operator when it has started and when it has stopped: a few lines, whatever ``--verbose``.

The rest of the server logs at the level ``--verbose`` sets, ERROR by default, so a server started without flags
would say nothing at all: not which port it took (port 0), nor which store it replayed. The command line shows
this module's logger down to that default (``cli/gearmand.py``, :data:`ANNOUNCE_LOGGER`); ``--verbose CRITICAL``
or ``--log-file none`` silences it. These are the lines gearmand logs at NOTICE.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING

from geartrain import __version__
from geartrain._pure import build_name
from geartrain.listening import show_address

if TYPE_CHECKING:
    from geartrain.server.config import ServerConfig
    from geartrain.server.node import Node

ANNOUNCE_LOGGER = __name__
log = logging.getLogger(ANNOUNCE_LOGGER)


def event_loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop 0.21.0`` or ``asyncio``: the benchmark figures are uvloop's, so it matters which one runs."""
    if type(loop).__module__.startswith("uvloop"):
        return f"uvloop {getattr(sys.modules.get('uvloop'), '__version__', '?')}"
    return "asyncio"


def log_started(node: Node, config: ServerConfig) -> None:
    """Version, event loop, addresses, store and replay, cluster, policies: once every part has started."""
    gearman = node.gearman
    log.info(
        "geartrain %s started: pid %d, event loop %s, %s",
        __version__,
        config.engine.pid,
        event_loop_name(asyncio.get_running_loop()),
        build_name(),
    )
    tls = gearman.tls_context is not None
    listening = [f"{show_address(host, port)} (Gearman{' TLS' if tls else ''})" for host, port in gearman.addresses]
    if node.http is not None:
        listening += [f"{show_address(host, port)} (HTTP{'S' if tls else ''})" for host, port in node.http.addresses]
    log.info("listening on %s", ", ".join(listening))
    persistence = gearman.persistence
    if persistence is None:
        log.info("queue: memory only (queued jobs are lost at a stop; --store keeps background jobs)")
    elif config.cluster:
        log.info(
            "store: %s, the queue of a cluster; this node is %s (lease %g s)",
            persistence.store.description,
            config.node_name(),
            config.lease,
        )
    else:
        written = ", written at the stop only" if gearman.store_on_shutdown else ""
        log.info("store: %s, %s replayed%s", persistence.store.description, _jobs(gearman.replayed), written)
    extras = [f"access control {config.security.acl_file}"] if config.security.acl_file else []
    if config.policy_file:
        extras.append(f"job life cycle {config.policy_file}")
    if extras:
        log.info("policies: %s", ", ".join(extras))


def log_stopped(node: Node) -> None:
    """Why it stopped and what it left queued (lost with the memory queue, kept by a store)."""
    gearman = node.gearman
    reason = gearman.stop_reason or "stopped"
    jobs = gearman.engine.jobs.values()
    left = f"{_jobs(len(jobs)) if jobs else 'no jobs'} left queued"
    if not jobs:
        log.info("stopped (%s): %s", reason, left)
    elif gearman.persistence is None:
        log.info("stopped (%s): %s, lost with the memory queue", reason, left)
    else:
        kept = _jobs(sum(1 for job in jobs if job.background), "background ")
        log.info("stopped (%s): %s; %s stay in %s", reason, left, kept, gearman.persistence.store.description)


def _jobs(count: int, kind: str = "") -> str:
    return f"{count} {kind}job{'' if count == 1 else 's'}"
