"""Connection limits: how many connections, how much unsent output each, and how long one may say nothing valid.

The :class:`ConnectionGuard` holds the policy and its counters; the transport (``connection.py``) calls it at the
few points where a limit applies, so the hot path only pays for an attribute test.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Protocol, cast

from geartrain.errors import ErrorCode
from geartrain.server.config import LimitsConfig
from geartrain.server.core.replies import error_packet

log = logging.getLogger("geartrain.limits")

TOO_MANY_CONNECTIONS = error_packet(ErrorCode.SERVER_ERROR, "Too many connections (--max-connections); try again later")
# File descriptors kept free beyond --max-connections: listening sockets, the store, logs, the event loop.
SPARE_FILE_DESCRIPTORS = 256


class Closable(Protocol):
    """What the guard needs of a connection: a way to close it."""

    def close(self) -> None: ...


class ConnectionGuard:
    """Admission (``max_connections``), the write-buffer caps, and the idle timeout of silent connections.

    Counters (``refused``, ``cut_for_output``, ``closed_idle``, ``paused``) only grow; each event is logged too.
    """

    def __init__(self, limits: LimitsConfig) -> None:
        self.limits = limits
        self.refused = 0
        self.cut_for_output = 0
        self.closed_idle = 0
        self.paused = 0
        # Connections that have not sent one valid item yet, with the time they opened (insertion order = age).
        self._silent: dict[Closable, float] = {}

    # ------------------------------------------------------------------ admission

    def admit(self, open_connections: int, transport: asyncio.BaseTransport) -> bool:
        """``False`` (after answering with an ERROR and closing) when the server already holds the maximum."""
        if self._has_room(open_connections, "", "open"):
            return True
        cast(asyncio.WriteTransport, transport).write(TOO_MANY_CONNECTIONS)  # uvloop's are not subclasses
        transport.close()
        return False

    def admit_tls(self, open_connections: int) -> bool:
        """``admit`` for a socket accepted on a TLS port, before its handshake (``open_connections`` counts those
        in their handshakes too). On ``False`` the caller closes it: a TLS client cannot read a clear-text ERROR."""
        return self._has_room(open_connections, " before its TLS handshake", "open or in their handshakes")

    def _has_room(self, open_connections: int, when: str, counted: str) -> bool:
        """Whether one more connection fits under ``max_connections``; a refusal is counted, and logged (the first,
        then every 1000th)."""
        limit = self.limits.max_connections
        if limit <= 0 or open_connections < limit:
            return True
        self.refused += 1
        if self.refused == 1 or self.refused % 1000 == 0:
            message = "refused a connection%s: %d %s (--max-connections); %d refused so far"
            log.warning(message, when, limit, counted, self.refused)
        return False

    def set_buffer_limits(self, transport: asyncio.WriteTransport) -> None:
        """Above ``output_high_water`` unsent bytes the transport calls ``pause_writing`` on the connection."""
        high = self.limits.output_high_water
        if high > 0:
            transport.set_write_buffer_limits(high=high, low=high // 4)

    # ------------------------------------------------------------------ unsent output

    def may_write(self, transport: asyncio.WriteTransport, size: int, address: str) -> bool:
        """Whether ``size`` more bytes may be queued; ``False`` means the connection must be cut.

        The first packet after an empty buffer always goes (a result larger than the cap is still deliverable);
        anything queued behind unsent output counts against ``max_unsent``.
        """
        cap = self.limits.max_unsent
        if cap <= 0:
            return True
        unsent = transport.get_write_buffer_size()
        if unsent == 0 or unsent + size <= cap:
            return True
        self.cut_for_output += 1
        log.warning(
            "cut %s: %d unsent bytes plus %d more exceed --max-unsent %d (it stopped reading)",
            address,
            unsent,
            size,
            cap,
        )
        return False

    # ------------------------------------------------------------------ silent connections

    def opened(self, connection: Closable, now: float) -> None:
        if self.limits.idle_timeout > 0:
            self._silent[connection] = now

    def spoke(self, connection: Closable) -> None:
        """The connection sent a valid packet or admin line: the idle timeout no longer applies to it."""
        self._silent.pop(connection, None)

    def forget(self, connection: Closable) -> None:
        self._silent.pop(connection, None)

    @property
    def silent_count(self) -> int:
        return len(self._silent)

    def sweep(self, now: float) -> int:
        """Close every connection silent for longer than ``idle_timeout``; returns how many."""
        timeout = self.limits.idle_timeout
        expired = []
        for connection, opened in self._silent.items():
            if now - opened < timeout:
                break  # the rest are younger
            expired.append(connection)
        for connection in expired:
            del self._silent[connection]
            connection.close()
        if expired:
            self.closed_idle += len(expired)
            log.info("closed %d connection(s) that sent nothing valid in %.0f s", len(expired), timeout)
        return len(expired)


def raise_open_file_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (never past the hard limit); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def file_descriptors_for(limits: LimitsConfig) -> int:
    """Open files the server needs to hold ``max_connections`` connections."""
    return limits.max_connections + SPARE_FILE_DESCRIPTORS if limits.max_connections > 0 else 0
