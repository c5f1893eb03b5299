"""The server's settings, frozen: built once from command-line flags (and GEARTRAIN_* variables) and passed in."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from geartrain.protocol.codec import DEFAULT_MAX_PACKET_SIZE
from geartrain.security.settings import SecurityConfig
from geartrain.server.core.config import EngineConfig
from geartrain.server.gc_policy import GcSettings

DEFAULT_PORT = 4730

if TYPE_CHECKING:
    from geartrain.lifecycle.policy import Policies


@dataclass(frozen=True, slots=True)
class KeepaliveConfig:
    """TCP keepalive on accepted sockets (gearmand's ``--keepalive*``); -1 leaves the system default.

    On by default (gearmand's is off): a peer whose host vanished (a half-open connection) is found within
    ``idle + interval * count`` seconds (two minutes) instead of the kernel's two hours.
    """

    enabled: bool = True
    idle: int = 60
    interval: int = 10
    count: int = 6


MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """What one connection, or all of them together, may cost the server (see docs/reliability.md).

    ``max_connections``: connections beyond it get an ERROR and are closed (0 = no limit). ``output_high_water``:
    above this many unsent bytes the server stops reading from that connection until it drains to a quarter of it.
    ``max_unsent``: a connection with more unsent output than this is cut (one packet larger than the cap still
    goes out when nothing else is waiting). ``idle_timeout``: a connection that sent nothing valid within this many
    seconds is closed (0 = never).
    """

    max_connections: int = 16384
    output_high_water: int = 1 * MIB
    max_unsent: int = 64 * MIB
    idle_timeout: float = 300.0


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything the server process needs to run."""

    hosts: tuple[str, ...] = ("127.0.0.1",)
    port: int = DEFAULT_PORT
    backlog: int = 32
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    keepalive: KeepaliveConfig = field(default_factory=KeepaliveConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    # Graceful drain: how long running jobs get to finish, and whether SIGTERM drains or stops at once.
    drain_timeout: float = 30.0
    sigterm: str = "immediate"
    engine: EngineConfig = field(default_factory=EngineConfig)
    log_file: str = "stderr"
    verbose: str = "ERROR"
    pid_file: str | None = None
    use_uvloop: bool = True
    gc: GcSettings = field(default_factory=GcSettings)
    # The HTTP listener (job submission, JSON API, /metrics, dashboard): off unless a port is given.
    http_port: int | None = None
    http_hosts: tuple[str, ...] = ("127.0.0.1",)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    # This server's name where servers meet: the owner record of its store (later, its cluster). host:port if unset.
    node_id: str | None = None
    # A node of a cluster on its store's table (--cluster), and the lease its jobs are held under.
    cluster: bool = False
    lease: float = 15.0
    # The job life cycle (--policy-file): retries, the dead set, pause (server/core/lifecycle.py); None: off.
    policy_file: str | None = None
    policies: Policies | None = None

    def node_name(self) -> str:
        return self.node_id or f"{socket.gethostname()}:{self.port}"
