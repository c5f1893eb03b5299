"""Server flags for limits, back-pressure and graceful drain (see docs/reliability.md)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from geartrain.server.config import LimitsConfig

DEFAULT_MAX_QUEUED_BYTES = 1024**3
DEFAULTS = LimitsConfig()
SIGTERM_MODES = ("immediate", "graceful")


def add_limit_arguments(parser: argparse.ArgumentParser, byte_size: Callable[[str], int]) -> None:
    """The ``limits`` and ``shutdown`` groups; ``byte_size`` parses sizes with k/m/g suffixes."""
    limits = parser.add_argument_group("limits and back-pressure")
    limits.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULTS.max_connections,
        help="connections beyond this get an ERROR and are closed (counted and logged); 0 = no limit. "
        "The open-file limit is raised to fit when the hard limit allows",
    )
    limits.add_argument(
        "--output-high-water",
        type=byte_size,
        default=DEFAULTS.output_high_water,
        help="stop reading from a connection while more than this many bytes wait to be sent to it",
    )
    limits.add_argument(
        "--max-unsent",
        type=byte_size,
        default=DEFAULTS.max_unsent,
        help="cut a connection whose unsent output would grow past this (a client that stops reading); "
        "one larger packet still goes out when nothing else waits; 0 = no cap",
    )
    limits.add_argument(
        "--max-queued-bytes",
        type=byte_size,
        default=DEFAULT_MAX_QUEUED_BYTES,
        help="total workload bytes of all jobs held; a submit past it gets ERROR QUEUE_ERROR; 0 = no cap",
    )
    limits.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULTS.idle_timeout,
        help="close a connection that sent nothing valid within this many seconds; 0 = never",
    )

    shutdown = parser.add_argument_group("shutdown")
    shutdown.add_argument(
        "--sigterm",
        choices=SIGTERM_MODES,
        default="immediate",
        help="what SIGTERM does: stop at once (gearmand's way), or drain like SIGUSR1 (a second TERM stops)",
    )
    shutdown.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="seconds a graceful drain (SIGUSR1, `shutdown graceful`) waits for running jobs; 0 = no limit",
    )


def limits_from_args(args: argparse.Namespace) -> LimitsConfig:
    return LimitsConfig(
        max_connections=max(args.max_connections, 0),
        output_high_water=max(args.output_high_water, 0),
        max_unsent=max(args.max_unsent, 0),
        idle_timeout=max(args.idle_timeout, 0.0),
    )
