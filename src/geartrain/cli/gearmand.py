"""The ``gearmand`` entry point and ``geartrain server``: start the job server from gearmand's flags."""

from __future__ import annotations

import logging
import os
import resource
import sys
from collections.abc import Callable, Sequence

from geartrain.cli.server_args import build_parser, config_from_args, parse_args, print_version
from geartrain.cli.store_args import store_from_args
from geartrain.errors import GearmanError
from geartrain.server.config import ServerConfig
from geartrain.server.node import run_node
from geartrain.store.base import StoreError

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
    """Log to stderr, a file, or nowhere; returns the function that reopens the file (for SIGHUP)."""
    root = logging.getLogger("geartrain")
    root.setLevel(_LOG_LEVELS[config.verbose])
    root.propagate = False
    formatter = logging.Formatter("%(levelname)7s %(asctime)s [%(name)s] %(message)s")
    target = config.log_file

    def install() -> None:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        new_handler: logging.Handler
        if target == "none":
            new_handler = logging.NullHandler()
        elif target == "stderr":
            new_handler = logging.StreamHandler(sys.stderr)
        else:
            new_handler = logging.FileHandler(target)
        new_handler.setFormatter(formatter)
        root.addHandler(new_handler)

    install()
    return install


def daemonize() -> None:
    """Detach: fork twice, new session, stdio to /dev/null (what ``gearmand -d`` does)."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def switch_user(name: str) -> None:
    import pwd

    if os.getuid() != 0:
        return
    entry = pwd.getpwnam(name)
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
    if args.daemon:
        daemonize()
    try:
        config = config_from_args(args, gearmand_defaults=gearmand_defaults)  # after fork: getpid is ours
        store = store_from_args(args, gearmand_defaults=gearmand_defaults)
    except GearmanError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    if args.check_args:
        return 0
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
    try:
        return run_node(config, reopen_log, store, store_on_shutdown=args.store_queue_on_shutdown)
    except StoreError as exc:  # at start: held by another server, unreachable, refused
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """``gearmand``: gearmand's flags and defaults (listens on every address, memory queue)."""
    return run(sys.argv[1:] if argv is None else argv, "gearmand", gearmand_defaults=True)
