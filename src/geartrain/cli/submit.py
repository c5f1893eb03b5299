"""``geartrain submit``: run jobs from the command line (long options, several servers, JSON output).

The same engine as ``gearman`` in client mode (:mod:`geartrain.cli.client_run`) with friendlier options.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from geartrain.cli.client_run import ClientOptions, TextOutput, run_client
from geartrain.cli.common import add_server_argument, client_settings_from_args, log_to_stderr
from geartrain.cli.security_args import add_client_security_arguments
from geartrain.cli.usage import ArgumentParser
from geartrain.client import Job
from geartrain.client.events import (
    JobEvent,
    WorkComplete,
    WorkData,
    WorkException,
    WorkFail,
    WorkStatus,
    WorkWarning,
)
from geartrain.client.loopthread import new_event_loop
from geartrain.errors import GearmanError
from geartrain.lifecycle.when import run_at
from geartrain.protocol.packets import Priority

PROG = "geartrain submit"

EPILOG = """\
Each DATA argument is one job; without any, all of stdin is one job (or one job per line with --lines).
Without --json, the output is the gearman tool's: WORK_DATA and the result raw on stdout, warnings on stderr,
"N% Complete" for status updates, "Job failed" on stderr. With --json, one JSON object per job on stdout.

Exit status: 0 success, 1 a job failed, 2 no server reachable / connection lost / job refused, 3 --timeout.
"""


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


class JsonOutput:
    """One JSON object per job, written when the job ends (payloads as UTF-8 text, invalid bytes replaced)."""

    def __init__(self) -> None:
        self._events: dict[int, list[JobEvent]] = {}

    def created(self, job: Job) -> None:
        self._events.setdefault(id(job), [])

    def event(self, job: Job, event: JobEvent) -> None:
        self._events.setdefault(id(job), []).append(event)

    def ended(self, job: Job) -> None:
        events = self._events.pop(id(job), [])
        final = events[-1] if events and isinstance(events[-1], WorkComplete | WorkFail | WorkException) else None
        status = {WorkComplete: "complete", WorkFail: "failed", WorkException: "exception"}.get(type(final), "lost")
        progress = [(e.numerator, e.denominator) for e in events if isinstance(e, WorkStatus)]
        record: dict[str, Any] = {
            "function": job.function,
            "handle": job.handle,
            "server": job.server,
            "unique": job.unique,
            "background": job.background,
            "status": "queued" if job.background else status,
            "result": _text(final.data) if isinstance(final, WorkComplete) else None,
            "data": [_text(e.data) for e in events if isinstance(e, WorkData)],
            "warnings": [_text(e.data) for e in events if isinstance(e, WorkWarning)],
            "progress": list(progress[-1]) if progress else None,
            "exception": _text(final.data) if isinstance(final, WorkException) else None,
        }
        self._emit(record)

    def refused(self, function: str, workload: bytes, error: GearmanError) -> None:
        self._emit({"function": function, "status": "refused", "error": str(error)})

    def error(self, message: str) -> None:
        sys.stderr.write(f"{PROG}: {message}\n")

    @staticmethod
    def _emit(record: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Submit jobs to Gearman job servers and print what the workers send back.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("function", help="the function to run")
    parser.add_argument("data", nargs="*", help="workloads, one job each")
    add_server_argument(parser)
    parser.add_argument("-b", "--background", action="store_true", help="submit background jobs, do not wait")
    parser.add_argument(
        "-p", "--priority", choices=("high", "normal", "low"), default="normal", help="job priority (normal)"
    )
    later = parser.add_mutually_exclusive_group()
    later.add_argument(
        "--in",
        dest="delay",
        metavar="DURATION",
        help="run the job this long from now (30s, 5m, 1h30m): a background job",
    )
    later.add_argument(
        "--at",
        metavar="TIME",
        help="run the job from this time on (RFC 3339, 2026-12-24T18:00:00+01:00): a background job",
    )
    parser.add_argument("-u", "--unique", metavar="KEY", help="unique key (equal keys coalesce); default a UUID")
    parser.add_argument("--lines", action="store_true", help="one job per line of stdin, without its newline")
    parser.add_argument("--keep-newline", action="store_true", help="with --lines: keep each line's newline")
    parser.add_argument("--empty", action="store_true", help="one job with an empty workload; stdin is not read")
    parser.add_argument(
        "-t", "--timeout", type=float, metavar="SECONDS", help="give up when the server sends nothing for this long"
    )
    parser.add_argument("--prefix", action="store_true", help='prefix every output with "FUNCTION: "')
    parser.add_argument("-v", "--verbose", action="store_true", help='print "Task created: HANDLE" for each job')
    parser.add_argument("--json", action="store_true", help="print one JSON object per job")
    add_client_security_arguments(parser)
    return parser


def _stdin_lines(keep_newline: bool) -> Iterator[bytes]:
    stream = sys.stdin.buffer
    while line := stream.readline():
        yield line if keep_newline or not line.endswith(b"\n") else line[:-1]


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv))
    servers, tls, secret = client_settings_from_args(parser, args)
    if args.timeout is not None and args.timeout <= 0:
        parser.error(f"--timeout must be more than 0 seconds, not {args.timeout:g}")
    try:
        when = run_at(args.delay, args.at, time.time())
    except GearmanError as error:
        parser.error(str(error))
    workloads: Iterator[bytes]
    if args.data:
        workloads = iter([arg.encode("utf-8", "surrogateescape") for arg in args.data])
    elif args.empty:
        workloads = iter([b""])
    elif args.lines:
        workloads = _stdin_lines(args.keep_newline)
    else:
        workloads = iter([sys.stdin.buffer.read()])
    options = ClientOptions(
        servers=servers,
        functions=[args.function],
        background=args.background,
        priority=Priority[args.priority.upper()],
        unique=args.unique,
        timeout=args.timeout,
        connect_timeout=args.timeout if args.timeout else 10.0,
        prog=PROG,
        tls=tls,
        secret=secret,
        when=when,
    )
    output = JsonOutput() if args.json else TextOutput(PROG, prefix=args.prefix, verbose=args.verbose)
    undo = log_to_stderr(PROG, logging.CRITICAL)
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            return runner.run(run_client(options, workloads, output))
    except KeyboardInterrupt:
        return 130
    finally:
        undo()
