"""Command-line flags of the server, as gearmand 1.1.20 names them, and the ServerConfig they build.

Every long flag can also be set with an environment variable ``GEARTRAIN_<FLAG>`` (``--job-retries`` ->
``GEARTRAIN_JOB_RETRIES``; switches take 1/true/yes); a flag on the command line wins.
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import sys
from collections.abc import Sequence

from geartrain import __version__
from geartrain.cli.limit_args import add_limit_arguments, limits_from_args
from geartrain.cli.security_args import add_server_security_arguments, security_from_args
from geartrain.cli.store_args import add_store_arguments
from geartrain.cli.usage import ArgumentParser, port_number
from geartrain.errors import GearmanError
from geartrain.lifecycle.policy import load_policies
from geartrain.protocol.codec import DEFAULT_MAX_PACKET_SIZE
from geartrain.server.config import DEFAULT_PORT, KeepaliveConfig, ServerConfig
from geartrain.server.core.config import VERBOSE_LEVELS, EngineConfig

COMPATIBLE_VERSION = "1.1.20"
ENV_PREFIX = "GEARTRAIN_"


def _byte_size(text: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    text = text.strip().lower().rstrip("ib")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def _verbose_level(text: str) -> str:
    level = text.upper()
    if level not in VERBOSE_LEVELS:
        raise argparse.ArgumentTypeError(f"invalid verbose level {text!r} (choose from {', '.join(VERBOSE_LEVELS)})")
    return level


def build_parser(prog: str, *, gearmand_defaults: bool) -> argparse.ArgumentParser:
    """The flag set; ``gearmand_defaults`` keeps gearmand's defaults (listen on all addresses)."""
    parser = ArgumentParser(
        prog=prog,
        description="geartrain job server: a drop-in replacement for gearmand (binary and text protocols on one port).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    net = parser.add_argument_group("network")
    net.add_argument(
        "-p",
        "--port",
        type=port_number,
        default=os.environ.get("GEARMAND_PORT") or DEFAULT_PORT,  # a string: argparse checks it like a flag
        help="TCP port to listen on (0 picks a free one); GEARMAND_PORT also sets it",
    )
    net.add_argument(
        "-L",
        "--listen",
        action="append",
        default=None,
        metavar="ADDRESS",
        help="address to listen on; repeat for several "
        f"(default: {'all addresses' if gearmand_defaults else '127.0.0.1'})",
    )
    net.add_argument("-b", "--backlog", type=int, default=32, help="listen backlog")
    net.add_argument(
        "--cluster",
        action="store_true",
        help="be a node of a cluster: every server started with --cluster on the same PostgreSQL store (URL and "
        "table) or Redis store (URL and prefix) shares its queue (docs/cluster.md)",
    )
    net.add_argument(
        "--policy-file",
        default=None,
        metavar="PATH",
        help="the job life cycle: retries with backoff, dead jobs, timeouts, pause, per function (a TOML file, "
        "read again on SIGHUP; docs/lifecycle.md)",
    )
    net.add_argument(
        "--lease",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="--cluster: a node's jobs go to the others when it has not renewed its lease for this long",
    )
    net.add_argument(
        "--node-id",
        default=None,
        metavar="NAME",
        help="this server's name in its store's owner record (default: hostname:port)",
    )
    keepalive = KeepaliveConfig()
    net.add_argument(
        "--keepalive",
        action=argparse.BooleanOptionalAction,
        default=keepalive.enabled,
        help="TCP keepalive on accepted connections, so half-open ones are found and closed",
    )
    net.add_argument("--keepalive-idle", type=int, default=keepalive.idle, help="seconds idle before keepalive probes")
    net.add_argument(
        "--keepalive-interval", type=int, default=keepalive.interval, help="seconds between keepalive probes"
    )
    net.add_argument(
        "--keepalive-count", type=int, default=keepalive.count, help="failed probes before the connection drops"
    )
    net.add_argument(
        "--max-packet-size",
        type=_byte_size,
        default=DEFAULT_MAX_PACKET_SIZE,
        help="largest packet accepted (bytes; k/m/g suffixes); a larger one gets an ERROR and the connection is closed",
    )
    net.add_argument(
        "-f",
        "--file-descriptors",
        type=int,
        default=0,
        help="raise the open-file limit to this many (0 leaves it)",
    )
    web = parser.add_argument_group("HTTP (job submission, JSON API, /metrics, dashboard; docs/operations.md)")
    web.add_argument(
        "--http-port",
        type=port_number,
        default=None,
        help="serve HTTP on this port (0 picks a free one); off unless given",
    )
    web.add_argument(
        "--http-listen",
        action="append",
        default=None,
        metavar="ADDRESS",
        help="address for the HTTP listener; repeat for several (default: 127.0.0.1)",
    )

    jobs = parser.add_argument_group("jobs")
    jobs.add_argument(
        "-j",
        "--job-retries",
        type=int,
        default=0,
        help="drop a job (WORK_FAIL to its clients) after it was handed out this many times without "
        "a result; 0 = unlimited",
    )
    jobs.add_argument(
        "-R",
        "--round-robin",
        action="store_true",
        help="a worker's function that just supplied a job goes to the back of its list",
    )
    jobs.add_argument(
        "--global-priority",
        action="store_true",
        help="serve a worker's highest-priority job across all its functions (gearmand 2.0), "
        "instead of per function in registration order (1.1.20)",
    )
    jobs.add_argument("-w", "--worker-wakeup", type=int, default=0, help="sleeping workers woken per new job (0 = all)")
    jobs.add_argument(
        "--job-handle-prefix",
        default=None,
        help="job handle prefix (default H:<hostname>); handles are <prefix>:<n>",
    )
    jobs.add_argument(
        "--exceptions",
        action="store_true",
        help="forward WORK_EXCEPTION to every client, not only to those that asked for it",
    )
    jobs.add_argument(
        "--hashtable-buckets",
        type=int,
        default=991,
        help="bucket count of gearmand's hash tables; only changes the row order of admin listings",
    )

    add_store_arguments(parser, gearmand_defaults=gearmand_defaults)
    add_limit_arguments(parser, _byte_size)
    add_server_security_arguments(parser)

    proc = parser.add_argument_group("process")
    proc.add_argument("-l", "--log-file", default="stderr", help="log destination: a file path, 'stderr', or 'none'")
    proc.add_argument("--verbose", type=_verbose_level, default="ERROR", help="log level: " + ", ".join(VERBOSE_LEVELS))
    proc.add_argument("-P", "--pid-file", default=None, help="write the process id here; removed on exit")
    proc.add_argument("-d", "--daemon", action="store_true", help="detach and run in the background")
    proc.add_argument(
        "-u", "--user", default=None, help="switch to this user before the ports and the store are opened (as gearmand)"
    )
    proc.add_argument(
        "-t",
        "--threads",
        type=int,
        default=4,
        help="accepted for gearmand compatibility and ignored: geartrain serves every connection "
        "from one event loop, like gearmand's single processing thread",
    )
    proc.add_argument("--syslog", action="store_true", help="accepted for compatibility; use --log-file")
    proc.add_argument("--coredump", action="store_true", help="accepted for compatibility (no effect)")
    proc.add_argument(
        "--no-uvloop", action="store_true", help="use asyncio's own event loop even if uvloop is installed"
    )
    proc.add_argument(
        "--config-file",
        default=None,
        help="file of further long options (whitespace separated), read before the command line",
    )
    proc.add_argument("--check-args", action="store_true", help="check the arguments and exit")
    proc.add_argument("-V", "--version", action="store_true", help="print the version and exit")
    parser.add_argument("-v", action="count", default=0, help=argparse.SUPPRESS)
    return parser


def env_defaults(parser: argparse.ArgumentParser) -> None:
    """Take GEARTRAIN_<FLAG> environment variables as defaults for the matching long flags."""
    for action in parser._actions:  # argparse has no public iterator over its actions
        longs = [option for option in action.option_strings if option.startswith("--")]
        if not longs or action.dest == "help":
            continue
        name = ENV_PREFIX + longs[0][2:].upper().replace("-", "_")
        value = os.environ.get(name)
        if value is None:
            continue
        if isinstance(action, argparse._StoreTrueAction | argparse.BooleanOptionalAction):
            parser.set_defaults(**{action.dest: value.lower() in ("1", "true", "yes", "on")})
        elif isinstance(action, argparse._AppendAction):
            parser.set_defaults(**{action.dest: value.split(",")})
        else:
            convert = action.type if callable(action.type) else str
            try:
                parser.set_defaults(**{action.dest: convert(value)})
            except (ValueError, argparse.ArgumentTypeError) as exc:
                parser.error(f"{name}={value!r}: {exc}")


def read_config_file(path: str) -> list[str]:
    """A gearmand --config-file: long options separated by whitespace (``#`` starts a comment)."""
    with open(path) as handle:
        words: list[str] = []
        for line in handle:
            words.extend(shlex.split(line, comments=True))
    return words


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    env_defaults(parser)
    argv = list(argv)
    first = parser.parse_args(argv)
    if first.config_file:
        try:
            argv = read_config_file(first.config_file) + argv
        except OSError as exc:
            parser.error(f"cannot read --config-file {first.config_file}: {exc.strerror}")
        return parser.parse_args(argv)
    return first


def config_from_args(args: argparse.Namespace, *, gearmand_defaults: bool) -> ServerConfig:
    """Validate the flags and build the frozen configuration (:class:`GearmanError` for bad security flags)."""
    hosts = tuple(args.listen) if args.listen else (("",) if gearmand_defaults else ("127.0.0.1",))
    if args.lease <= 0:
        raise GearmanError(f"--lease must be more than 0 seconds, not {args.lease:g}")
    prefix = args.job_handle_prefix
    if prefix:
        handle_prefix = prefix.encode()
    elif args.cluster:  # handles travel with their jobs across the cluster: each node's own prefix keeps them apart
        handle_prefix = b"H:" + (args.node_id or f"{socket.gethostname()}:{args.port}").encode()
    else:
        handle_prefix = b"H:" + socket.gethostname().encode()
    engine = EngineConfig(
        handle_prefix=handle_prefix,
        job_retries=max(args.job_retries, 0),
        worker_wakeup=max(args.worker_wakeup, 0),
        round_robin=args.round_robin,
        global_priority=args.global_priority,
        exceptions=args.exceptions,
        version=f"{COMPATIBLE_VERSION}+geartrain-{__version__}",
        verbose=args.verbose,
        pid=os.getpid(),
        hashtable_buckets=max(args.hashtable_buckets, 1),
        max_queued_bytes=max(args.max_queued_bytes, 0),
        hold_after_result=args.store_ack == "all",
        cluster=args.cluster,
    )
    return ServerConfig(
        hosts=hosts,
        port=args.port,
        backlog=args.backlog,
        max_packet_size=args.max_packet_size,
        keepalive=KeepaliveConfig(args.keepalive, args.keepalive_idle, args.keepalive_interval, args.keepalive_count),
        limits=limits_from_args(args),
        drain_timeout=max(args.drain_timeout, 0.0),
        sigterm=args.sigterm,
        engine=engine,
        log_file=args.log_file,
        verbose=args.verbose,
        pid_file=args.pid_file,
        use_uvloop=not args.no_uvloop,
        http_port=args.http_port,
        http_hosts=tuple(args.http_listen) if args.http_listen else ("127.0.0.1",),
        security=security_from_args(args),
        node_id=args.node_id,
        cluster=args.cluster,
        lease=args.lease,
        policy_file=args.policy_file,
        policies=load_policies(args.policy_file) if args.policy_file else None,
    )


def print_version() -> None:
    sys.stdout.write(f"\ngeartrain {__version__} (gearmand {COMPATIBLE_VERSION} compatible)\n")
