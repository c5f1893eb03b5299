"""``geartrain work``: serve functions with a shell command (long options, several servers, concurrency).

The same engine as ``gearman -w`` (:mod:`geartrain.cli.worker_run`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Sequence

from geartrain.cli.common import add_server_argument, client_settings_from_args, log_to_stderr
from geartrain.cli.security_args import add_client_security_arguments
from geartrain.cli.usage import ArgumentParser
from geartrain.cli.worker_run import WorkerOptions, run_worker
from geartrain.client.loopthread import new_event_loop

PROG = "geartrain work"

EPILOG = """\
Each job runs COMMAND with the workload on its stdin; what it prints on stdout is the result. Exit status 0
completes the job; any other status (or death by a signal) sends the output as WORK_DATA, then fails the job.
Without a COMMAND the workload is printed on stdout and the job completes with an empty result.

Exit status: 0 after --count jobs (or on SIGTERM/SIGINT: 128+signal; with --drain, once the running jobs have
ended), 2 when no server has been reachable for --retry-for seconds, 3 after --idle-timeout.

example:  geartrain work wc -- wc -l
"""


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        usage=f"{PROG} [options] FUNCTION [FUNCTION ...] [-- COMMAND [ARGS ...]]",
        description="Serve Gearman functions by running a command for each job.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("functions", nargs="+", metavar="FUNCTION", help="functions to serve")
    add_server_argument(parser)
    parser.add_argument("-c", "--count", type=int, default=0, metavar="N", help="exit after N jobs")
    parser.add_argument("-j", "--concurrency", type=int, default=1, metavar="N", help="jobs to run at once (1)")
    parser.add_argument(
        "--lines", action="store_true", help="send each line of output as its own WORK_DATA, without its newline"
    )
    parser.add_argument("--keep-newline", action="store_true", help="with --lines: keep each line's newline")
    parser.add_argument("--idle-timeout", type=float, metavar="SECONDS", help="exit when no job came for this long")
    parser.add_argument(
        "--retry-for",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="exit when no server has been reachable for this long (60)",
    )
    parser.add_argument(
        "--client-id",
        metavar="ID",
        help="the id the server shows in its workers list (default $GEARTRAIN_CLIENT_ID, which geartrain manager "
        "sets to GROUP-N)",
    )
    parser.add_argument(
        "--drain",
        action="store_true",
        help="on SIGTERM/SIGINT, finish the running jobs before exiting (a second signal exits at once); "
        "for process managers such as geartrain manager",
    )
    add_client_security_arguments(parser)
    return parser


def main(argv: Sequence[str]) -> int:
    items = list(argv)
    command: list[str] = []
    if "--" in items:
        cut = items.index("--")
        items, command = items[:cut], items[cut + 1 :]
    parser = build_parser()
    args = parser.parse_args(items)
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    servers, tls, secret = client_settings_from_args(parser, args)
    options = WorkerOptions(
        servers=servers,
        functions=args.functions,
        command=command,
        count=max(0, args.count),
        per_line=args.lines,
        strip_newline=args.lines and not args.keep_newline,
        idle_timeout=args.idle_timeout,
        retry_for=max(0.0, args.retry_for),
        concurrency=args.concurrency,
        # The manager (docs/manager.md) names each process of a command group GROUP-N this way.
        client_id=args.client_id or os.environ.get("GEARTRAIN_CLIENT_ID") or None,
        prog=PROG,
        drain_on_signal=args.drain,
        tls=tls,
        secret=secret,
    )
    undo = log_to_stderr(PROG, logging.WARNING)
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            return runner.run(run_worker(options))
    except KeyboardInterrupt:
        return 130
    finally:
        undo()
