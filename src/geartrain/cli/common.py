"""What the command line tools share: exit statuses, raw output, server lists, pid files, logging."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import ssl
import sys
from collections.abc import Callable
from typing import NamedTuple

from geartrain.cli.security_args import client_secret_from_args, client_tls_from_args
from geartrain.errors import GearmanError

# Exit statuses of `gearman`, `geartrain submit` and `geartrain work`. 1 is what the C `gearman` uses for a failed
# job and for a usage error; the C tool exits 0 on every other problem, which scripts cannot tell from success.
EXIT_OK = 0
EXIT_FAILED = 1  # a job failed (WORK_FAIL or WORK_EXCEPTION), or the command line was wrong
EXIT_SERVER = 2  # no server could be reached, a connection was lost, or the server refused a job
EXIT_TIMEOUT = 3  # -t: nothing came from the server (client) or no job arrived (worker) in time

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 4730


class RawOutput:
    """Unbuffered writes of raw bytes to a file descriptor, in the order they are made (as the C tool's write(2)).

    A reader that went away (EPIPE) is reported once and later writes are dropped: the jobs still run to their end.
    """

    def __init__(self, fd: int, prog: str) -> None:
        self.fd = fd
        self.prog = prog
        self.broken = False

    def write(self, data: bytes) -> None:
        if self.broken or not data:
            return
        view = memoryview(data)
        try:
            while view:
                written = os.write(self.fd, view)
                view = view[written:]
        except OSError as exc:
            self.broken = True
            with contextlib.suppress(OSError):
                os.write(2, f"{self.prog}: write ({exc.strerror})\n".encode())


def servers_from(host: str | None, port: int | None, environ: dict[str, str] | None = None) -> list[str]:
    """The servers to use: ``GEARMAN_SERVER`` (``host[:port],...``) when set and not empty, as libgearman's tools
    do (it wins over ``-h``/``-p``), else ``host:port`` with localhost:4730 as defaults."""
    env = os.environ if environ is None else environ
    listed = [part.strip() for part in env.get("GEARMAN_SERVER", "").split(",") if part.strip()]
    if listed:
        return listed
    return [join_address(host or DEFAULT_HOST, port or DEFAULT_PORT)]


def invalid_servers(servers: list[str]) -> str | None:
    """Why a server list cannot be used (a port that is not a number, ...), or None."""
    from geartrain.client.transport import parse_servers

    try:
        parse_servers(tuple(servers))
    except ValueError as exc:
        return f"invalid job server address in {','.join(servers)!r}: {exc}"
    return None


def add_server_argument(parser: argparse.ArgumentParser) -> None:
    """``-s/--server``, as every ``geartrain`` client tool spells it (read back by :func:`client_settings_from_args`
    or by the tool itself)."""
    parser.add_argument(
        "-s",
        "--server",
        action="append",
        metavar="HOST[:PORT]",
        help="a job server (repeatable, or comma-separated; default $GEARMAN_SERVER, else localhost:4730)",
    )


class ClientSettings(NamedTuple):
    """Where and how a client tool connects: the server list, the TLS context (``None``: plain) and the secret."""

    servers: list[str]
    tls: ssl.SSLContext | None
    secret: str | None


def client_settings_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ClientSettings:
    """The servers (``-s``, else ``GEARMAN_SERVER``, else localhost:4730), TLS and secret ``args`` ask for.

    One place for ``geartrain submit`` and ``geartrain work``, so both tools refuse the same things the same way: a
    bad server address, then an unusable TLS or secret option, is a usage error (``parser.error``: exit 2).
    """
    servers = [part for spec in args.server for part in spec.split(",") if part.strip()] if args.server else []
    servers = servers or servers_from(None, None)
    problem = invalid_servers(servers)
    if problem:
        parser.error(problem)
    try:
        return ClientSettings(servers, client_tls_from_args(args), client_secret_from_args(args))
    except GearmanError as exc:
        parser.error(str(exc))


def join_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def write_pid_file(path: str) -> str | None:
    """Write ``<pid>\\n`` to ``path`` (replacing a stale file) and remove it at exit; return an error text or None."""
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        with open(path, "w") as stream:
            stream.write(f"{os.getpid()}\n")
    except OSError as exc:
        return f"cannot write the pid file {path}: {exc.strerror}"
    pid = os.getpid()

    def remove() -> None:
        if os.getpid() == pid:  # not in a child that inherited the handler
            with contextlib.suppress(OSError):
                os.unlink(path)

    atexit.register(remove)
    return None


def daemonize() -> None:
    """``-d``: fork, the parent exits 0, the child starts a new session with stdio on /dev/null."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def log_to_stderr(prog: str, level: int) -> Callable[[], None]:
    """Show the library's log records at ``level`` and above on stderr as ``prog: message``; returns an undo."""
    logger = logging.getLogger("geartrain")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{prog}: %(message)s"))
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False

    def undo() -> None:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]

    return undo
