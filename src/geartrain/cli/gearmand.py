"""The ``gearmand`` entry point and ``geartrain server``: start the job server from gearmand's flags."""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import traceback
from collections.abc import Callable, Sequence

from geartrain.cli.daemon import StartReport, detach
from geartrain.cli.server_args import build_parser, config_from_args, parse_args, print_version
from geartrain.cli.store_args import store_from_args
from geartrain.errors import GearmanError, StartupError
from geartrain.server.announce import ANNOUNCE_LOGGER
from geartrain.server.config import ServerConfig
from geartrain.server.node import run_node
from geartrain.server.startup import file_error
from geartrain.store.base import QueueStore

# gearmand's levels onto Python's (NOTICE, between WARNING and INFO in syslog terms, logs like INFO here).
_LOG_LEVELS = {
    "FATAL": logging.CRITICAL,
    "ALERT": logging.CRITICAL,
    "CRITICAL": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "NOTICE": logging.INFO,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
}


def setup_logging(config: ServerConfig) -> Callable[[], None]:
    """Log to stderr, a file, or nowhere; returns the function that reopens the file (for SIGHUP).

    The start and stop lines (:mod:`geartrain.server.announce`) show down to the default level, ERROR, so a
    server started without flags still says where it listens; only a level above ERROR silences them.
    """
    root = logging.getLogger("geartrain")
    level = _LOG_LEVELS[config.verbose]
    root.setLevel(level)
    root.propagate = False
    logging.getLogger(ANNOUNCE_LOGGER).setLevel(logging.INFO if level <= logging.ERROR else level)
    formatter = logging.Formatter("%(levelname)7s %(asctime)s [%(name)s] %(message)s")
    target = config.log_file

    def install() -> None:
        new_handler: logging.Handler
        if target == "none":
            new_handler = logging.NullHandler()
        elif target == "stderr":
            new_handler = logging.StreamHandler(sys.stderr)
        else:
            try:
                new_handler = logging.FileHandler(target)
            except OSError as error:  # at start: the line and exit; at SIGHUP: the old file stays in use
                raise file_error("open the log file", target, error) from error
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        new_handler.setFormatter(formatter)
        root.addHandler(new_handler)

    install()
    return install


def switch_user(name: str) -> None:
    """Become ``name``; a server not started as root stays who it is (as gearmand), but the name must exist."""
    import pwd

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise StartupError(f"cannot switch to user {name!r}: no such user") from None
    if os.getuid() != 0:
        return
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)


def run(argv: Sequence[str], prog: str, *, gearmand_defaults: bool) -> int:
    parser = build_parser(prog, gearmand_defaults=gearmand_defaults)
    args = parse_args(parser, argv)
    if args.version:
        print_version()
        return 0
    if args.v:
        print("Option -v has been deprecated, please use --verbose", file=sys.stderr)
    report = detach(prog) if args.daemon else StartReport()
    try:
        config = config_from_args(args, gearmand_defaults=gearmand_defaults)  # after fork: getpid is ours
        store = store_from_args(args, gearmand_defaults=gearmand_defaults)
    except GearmanError as exc:  # flags that do not go together, files that do not parse: a usage error
        return failed(prog, exc, 2, args.verbose, report)
    if args.check_args:
        report.started()
        return 0
    try:
        return serve(args, config, store, report)
    except GearmanError as exc:  # a port, a file, the store: what could not start
        return failed(prog, exc, 1, args.verbose, report)
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers are in (during a long replay, say)
        return 130


def serve(args: argparse.Namespace, config: ServerConfig, store: QueueStore | None, report: StartReport) -> int:
    """Set the process up (open files, log, user), then run the node until it stops."""
    if args.file_descriptors > 0:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = args.file_descriptors if hard == resource.RLIM_INFINITY else min(args.file_descriptors, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    reopen_log = setup_logging(config)
    if args.user:
        switch_user(args.user)
    if store is not None:
        store_log = logging.getLogger("geartrain.store")
        store_log.info("queue store: %s", store.description)
        if store.description.endswith("/queue.db") and not args.store and args.queue_type == "builtin":
            store_log.warning(
                "queue store: %s is the file of earlier versions, kept for the server on port %d; servers on other "
                "ports use queue-PORT.db",
                store.description,
                args.port,
            )
    return run_node(
        config, reopen_log, store, store_on_shutdown=args.store_queue_on_shutdown, on_started=report.started
    )


def failed(prog: str, error: GearmanError, status: int, verbose: str, report: StartReport) -> int:
    """Report a start that failed: one line, ``prog: what: why``; the traceback too at ``--verbose DEBUG``."""
    if verbose == "DEBUG":
        traceback.print_exception(error)
    # A driver's text may run over several lines (libpq puts its hint on a line of its own).
    reason = "; ".join(part.strip() for part in str(error).splitlines() if part.strip())
    report.failed(status, f"{prog}: {reason}")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """``gearmand``: gearmand's flags and defaults (listens on every address, memory queue)."""
    return run(sys.argv[1:] if argv is None else argv, "gearmand", gearmand_defaults=True)
