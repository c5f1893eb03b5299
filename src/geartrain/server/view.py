"""The narrow faces of a running :class:`~geartrain.server.server.GearmanServer` that other parts are given.

:class:`ServerView` is read-only (what the HTTP API, the dashboard and /metrics show); :class:`ServerActions` is
what they may do (cancel, purge, maxqueue, the job life cycle's actions, an HTTP submission's engine peer). Both
satisfy the protocols of :mod:`geartrain.http.node` by shape; this module does not import the HTTP package.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from geartrain.lifecycle.policy import cron_ident
from geartrain.server.core import operations, overrides
from geartrain.server.core.peers import PacketSink

if TYPE_CHECKING:
    from geartrain.cluster.node import ClusterNode
    from geartrain.security.guard import AccessGuard
    from geartrain.server.core.engine import Engine
    from geartrain.server.core.peers import Peer
    from geartrain.server.limits import ConnectionGuard
    from geartrain.server.persistence import Persistence
    from geartrain.server.server import GearmanServer


class ServerView:
    """Read-only view of one server."""

    def __init__(self, server: GearmanServer, cluster: ClusterNode | None = None) -> None:
        self._server = server
        self._cluster = cluster

    @property
    def cluster(self) -> ClusterNode | None:
        return self._cluster

    @property
    def engine(self) -> Engine:
        return self._server.engine

    @property
    def gearman_addresses(self) -> Sequence[tuple[str, int]]:
        return self._server.addresses

    @property
    def draining(self) -> bool:
        return self._server.draining

    @property
    def store(self) -> Persistence | None:
        return self._server.persistence

    @property
    def access(self) -> AccessGuard:
        return self._server.access

    @property
    def connection_counters(self) -> ConnectionGuard:
        return self._server.guard

    @property
    def max_packet_size(self) -> int:
        return self._server.config.max_packet_size

    @property
    def tls_context(self) -> ssl.SSLContext | None:
        return self._server.tls_context

    @property
    def tls_handshake_timeout(self) -> float | None:
        tls = self._server.config.security.tls
        return tls.handshake_timeout if tls is not None and self._server.tls_context is not None else None

    def gearman_connection_count(self) -> int:
        """Gearman protocol connections only (HTTP submissions are in-process peers, kept apart and not counted)."""
        return len(self._server.connections)


class ServerActions:
    """What other parts may do to one server; the server's flush follows each action."""

    def __init__(self, server: GearmanServer) -> None:
        self._server = server

    def cancel(self, handle: bytes) -> bool:
        cancelled = self._server.engine.cancel(handle)
        if cancelled:
            self._server.flush()
        return cancelled

    def purge(self, function: bytes) -> int | None:
        removed = operations.purge(self._server.engine, function)
        if removed is not None:
            self._server.flush()
        return removed

    def set_max_queue(self, function: bytes, limits: list[int]) -> bool:
        return operations.set_max_queue(self._server.engine, function, limits)

    def retry_dead(self, selector: bytes) -> int | None:
        lifecycle = self._server.engine.lifecycle
        if lifecycle is None:
            return None
        count = lifecycle.retry_dead(selector, time.time())
        self._server.flush()
        return count

    def delete_dead(self, selector: bytes) -> int | None:
        lifecycle = self._server.engine.lifecycle
        if lifecycle is None:
            return None
        count = lifecycle.delete_dead(selector, time.time())
        self._server.flush()
        return count

    def pause(self, function: bytes, paused: bool) -> bool | None:
        """Pause or resume; ``True`` when that changed anything."""
        lifecycle = self._server.engine.lifecycle
        if lifecycle is None:
            return None
        changed = lifecycle.pause(function, time.time()) if paused else lifecycle.resume(function, time.time())
        self._server.flush()
        return changed

    def set_policy(self, function: bytes, settings: dict[str, Any]) -> dict[str, object] | None:
        """Set keys of a function's policy (PolicyError for a bad one); the function's policy view after."""
        lifecycle = self._server.engine.lifecycle
        if lifecycle is None:
            return None
        overrides.set_policy(lifecycle, function, settings, time.time())
        self._server.flush()  # the store record, and workers a higher concurrency or rate lets run
        return overrides.policy_view(lifecycle, function)

    def unset_policy(self, function: bytes, keys: tuple[str, ...]) -> dict[str, object] | None:
        """Back to the file's settings (for ``keys``, or all); the function's policy view after."""
        lifecycle = self._server.engine.lifecycle
        if lifecycle is None:
            return None
        overrides.unset_policy(lifecycle, function, keys, time.time())
        self._server.flush()
        return overrides.policy_view(lifecycle, function)

    def add_cron(self, raw: dict[str, Any]) -> dict[str, object] | None:
        """Add a cron entry (a [[cron]] table; PolicyError for a bad one); the entry with its next firing."""
        lifecycle = self._server.engine.lifecycle
        if lifecycle is None:
            return None
        entry = overrides.add_cron(lifecycle, raw, time.time())
        self._server.flush()  # the store record, and the timer for the first firing
        ident = cron_ident(entry)
        firing = lifecycle.crons.get(ident)
        view = firing.view() if firing is not None else {"function": entry.function.decode(), "next": None}
        return {**view, "source": overrides.cron_source(lifecycle, ident)}

    def remove_cron(self, function: bytes, schedule: str | None) -> int | None:
        """Remove cron entries added at run time (of ``function``, at ``schedule`` or all); how many."""
        lifecycle = self._server.engine.lifecycle
        if lifecycle is None:
            return None
        count = overrides.remove_cron(lifecycle, function, schedule, time.time())
        self._server.flush()
        return count

    def open_peer(self, address: str, sink: PacketSink) -> Peer:
        """An in-process engine peer: the server's flush hands what the engine queues for it to ``sink`` as
        packets (a client's replies: JOB_CREATED, the job's WORK_* packets, ERROR), never encoded to bytes."""
        peer = self._server.engine.connect(-1, address, now=time.time())
        peer.in_process = True
        self._server.sinks[peer.id] = sink
        return peer

    def submit(self, peer: Peer, ptype: int, args: tuple[bytes, ...]) -> None:
        self._server.engine.handle(peer, ptype, args, time.time())
        self._server.flush()

    def close_peer(self, peer: Peer) -> None:
        self._server.sinks.pop(peer.id, None)
        # The HTTP client hung up (or was answered): a queued job only it waited for goes, it has no one to run for.
        self._server.engine.disconnect(peer, time.time(), drop_abandoned=True)
        self._server.flush()
