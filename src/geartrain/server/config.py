"""The server's settings, frozen: built once from command-line flags (and GEARTRAIN_* variables) and passed in."""

from __future__ import annotations

from dataclasses import dataclass, field

from geartrain.protocol.codec import DEFAULT_MAX_PACKET_SIZE
from geartrain.security.settings import SecurityConfig
from geartrain.server.core.config import EngineConfig
from geartrain.server.gc_policy import GcSettings

DEFAULT_PORT = 4730


@dataclass(frozen=True, slots=True)
class KeepaliveConfig:
    """TCP keepalive on accepted sockets (gearmand's ``--keepalive*``); -1 leaves the system default."""

    enabled: bool = False
    idle: int = -1
    interval: int = -1
    count: int = -1


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything the server process needs to run."""

    hosts: tuple[str, ...] = ("127.0.0.1",)
    port: int = DEFAULT_PORT
    backlog: int = 32
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    keepalive: KeepaliveConfig = field(default_factory=KeepaliveConfig)
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
