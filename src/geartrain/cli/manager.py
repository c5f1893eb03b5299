"""``geartrain manager CONFIG``: keep the worker processes a TOML file describes running (see docs/manager.md).

Signals: TERM/INT drain (every process finishes its running job, then the manager exits 0; a second one kills what
is left), HUP reloads the file (an invalid file is reported and the running configuration kept), USR1 logs the
state of every process.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from geartrain.cli.common import write_pid_file
from geartrain.cli.usage import ArgumentParser
from geartrain.client.loopthread import new_event_loop
from geartrain.manager.check import check_config
from geartrain.manager.config import ConfigError, ManagerConfig, load_config
from geartrain.manager.supervisor import Manager

PROG = "geartrain manager"
log = logging.getLogger("geartrain.manager")

EPILOG = """\
signals:  TERM, INT  drain: running jobs finish, then exit (a second signal kills the processes)
          HUP        reload CONFIG: start, stop or resize the groups that changed; others keep running
          USR1       log the state of every process (pid, uptime, starts, crashes; FAILING when it keeps failing)

Exit status: 0 after a drain, 2 when CONFIG is invalid (the message names the key); with --check, also 2 when a
callable does not import or a command's program is not found (one line for each problem).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Run and supervise Gearman worker processes described by a TOML file.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", metavar="CONFIG", help="the TOML file")
    parser.add_argument(
        "--check",
        action="store_true",
        help="check CONFIG (import every callable, find every command's program), print the groups, and exit",
    )
    parser.add_argument("-l", "--log-file", metavar="FILE", help="log here instead of stderr")
    parser.add_argument("-P", "--pid-file", metavar="FILE", help="write the manager's process id here")
    parser.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")
    return parser


def summary(config: ManagerConfig) -> str:
    lines = []
    for group in config.groups.values():
        what = f"{group.callable} -> {' '.join(group.functions)}" if group.is_python else " ".join(group.command)
        recycle = [f"{group.recycle_jobs} jobs"] if group.recycle_jobs else []
        recycle += [f"{group.recycle_seconds:g}s"] if group.recycle_seconds else []
        extra = f", recycle after {' or '.join(recycle)}" if recycle else ""
        lines.append(f"{group.name}: {group.processes} x {what} (servers {','.join(group.servers)}{extra})\n")
    return "".join(lines)


class _Signals:
    """TERM/INT drain (the second one kills), HUP reloads."""

    def __init__(self, manager: Manager, path: str) -> None:
        self.manager = manager
        self.path = path
        self.stops = 0

    def stop(self, signum: int) -> None:
        self.stops += 1
        name = signal.Signals(signum).name
        if self.stops == 1:
            log.info("%s received", name)
            self.manager.request_stop()
        else:
            log.warning("%s received again: killing the remaining processes", name)
            self.manager.kill_all()

    def report(self) -> None:
        for line in self.manager.report():
            log.info("status: %s", line)

    def reload(self) -> None:
        log.info("SIGHUP received: reloading %s", self.path)
        try:
            config = load_config(self.path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            return
        self.manager.apply(config)


async def _run(config: ManagerConfig, path: str) -> None:
    loop = asyncio.get_running_loop()
    manager = Manager(config)
    handlers = _Signals(manager, path)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, handlers.stop, signum)
    loop.add_signal_handler(signal.SIGHUP, handlers.reload)
    loop.add_signal_handler(signal.SIGUSR1, handlers.report)
    try:
        await manager.run()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            loop.remove_signal_handler(signum)


def _setup_logging(log_file: str | None, quiet: bool) -> None:
    handler: logging.Handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s geartrain-manager: %(levelname)s %(message)s"))
    logger = logging.getLogger("geartrain")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False


def _check(config: ManagerConfig, path: str) -> int:
    """``--check``: every problem on its own line (all of them, not just the first), else the groups."""
    problems = check_config(config, path)
    for line in problems:
        sys.stderr.write(f"{PROG}: {line}\n")
    if problems:
        return 2
    sys.stdout.write(summary(config))
    return 0


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        return 2
    if args.check:
        return _check(config, args.config)
    if args.pid_file:
        problem = write_pid_file(args.pid_file)
        if problem:
            sys.stderr.write(f"{PROG}: {problem}\n")
            return 2
    try:
        _setup_logging(args.log_file, args.quiet)
    except OSError as exc:
        sys.stderr.write(f"{PROG}: cannot open the log file: {exc}\n")
        return 2
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(_run(config, args.config))
    return 0
