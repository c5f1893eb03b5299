"""The ``gearman`` command: libgearman's command line client and worker, flag for flag.

``gearman -f FUNC [data ...]`` submits jobs, ``gearman -w -f FUNC [-- command args]`` serves them. Flags are parsed
as glibc's getopt parses ``bc:f:h:HILnNp:Pst:u:vwi:dS`` (options and operands may be mixed; ``--`` ends the
options), and the output is the C tool's byte for byte, except where the C tool is wrong: see :data:`DIFFERENCES`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from geartrain.cli.client_run import ClientOptions, TextOutput, run_client
from geartrain.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    daemonize,
    invalid_servers,
    log_to_stderr,
    servers_from,
    write_pid_file,
)
from geartrain.cli.worker_run import WorkerOptions, run_worker
from geartrain.client.loopthread import new_event_loop
from geartrain.errors import GearmanError
from geartrain.protocol.packets import Priority
from geartrain.security.environment import libgearman_tls_from_environment, secret_from_environment

PROG = "gearman"
WITH_ARGUMENT = frozenset("cfhpitu")
FLAGS = frozenset("bHILnNPsvwdS")
LONG_OPTIONS = {"help": False, "retry-for": True}  # ours; the C tool has no long options

DIFFERENCES = """\
Differences from libgearman's gearman (deliberate):
  * Exit status: 0 success; 1 a job failed (WORK_FAIL or WORK_EXCEPTION) or a usage error (as the C tool);
    2 no job server could be reached, a connection was lost before a job ended, or the server refused a job;
    3 -t expired. The C client prints an error and exits 0 in every one of these cases but a failed job.
  * Worker mode gives up when no server has been reachable for --retry-for seconds (default 60; the C worker
    prints an error in a tight loop forever) and exits 2. With -t it exits 3 once no job has come for that
    many milliseconds (the C worker prints an error every -t and counts each timeout against -c).
  * A WORK_STATUS with a zero denominator prints "0% Complete" (the C client dies of SIGFPE); the percentage is
    computed without 32-bit overflow. Status lines and "Task created" are written in the order things
    happen (the C tool buffers them, so on a pipe they come after the data).
  * A WORK_EXCEPTION (this client asks for them) prints its text on stderr, then "Job failed", and the exit
    status is 1; the C client never asks, and hangs on what gearmand sends instead.
  * Worker -n/-N: one WORK_DATA per output line, sent as the line is printed; the C worker sends the whole
    output so far with every line. A command killed by a signal, or that cannot be started, fails the job
    (the C worker reports a killed command as a success, and a failed exec runs a second worker loop).
  * -N strips only a newline (the C tool also drops the last byte of a final line without one); lines of any
    length are one job each (the C tool splits lines at 8191 bytes); NUL bytes are kept.
  * -S connects with TLS, configured like libgearman's tools by GEARMAND_CA_CERTIFICATE, GEARMAN_CLIENT_PEM and
    GEARMAN_CLIENT_KEY; the server's name is checked too (Debian's C build ignores -S and talks in clear).
    GEARTRAIN_SECRET, when set, is presented to the server's access control.
  * -p, -c and -t must be numbers (the C tool reads "abc" as 0). --help and --retry-for are added.
    An empty GEARMAN_SERVER is ignored (the C tool then uses localhost:4730 whatever -h and -p say).
"""


@dataclass
class Arguments:
    """The parsed command line, with the C tool's defaults."""

    functions: list[str] = field(default_factory=list)
    operands: list[str] = field(default_factory=list)
    host: str | None = None
    port: int | None = None
    count: int = 0
    unique: str | None = None
    pid_file: str | None = None
    timeout_ms: int = -1
    priority: Priority = Priority.NORMAL
    background: bool = False
    per_line: bool = False
    strip_newline: bool = False
    worker: bool = False
    suppress_input: bool = False
    verbose: bool = False
    prefix: bool = False
    daemon: bool = False
    usage: bool = False
    ssl: bool = False
    help: bool = False
    retry_for: float = 60.0
    errors: list[str] = field(default_factory=list)

    @property
    def arg_error(self) -> str:
        """The reason the usage text shows, as the C tool works it out (a missing -f wins)."""
        if not self.functions:
            return "No Functions were provided"
        return self.errors[-1] if self.errors else "(null)"

    @property
    def is_error(self) -> bool:
        return not self.functions or bool(self.errors)


def _number(option: str, value: str, errors: list[str]) -> int:
    try:
        return int(value)
    except ValueError:
        errors.append(f"-{option} {value}: not a number")
        return 0


_FLAG_ATTRIBUTES = {
    "b": "background",
    "w": "worker",
    "s": "suppress_input",
    "v": "verbose",
    "P": "prefix",
    "d": "daemon",
    "H": "usage",
    "S": "ssl",
}
_TEXT_ATTRIBUTES = {"h": "host", "u": "unique", "i": "pid_file"}


def _set(args: Arguments, option: str, value: str) -> None:
    """Apply one option (``value`` is ``""`` for flags)."""
    if option == "f":
        args.functions.append(value)
    elif option in _TEXT_ATTRIBUTES:
        setattr(args, _TEXT_ATTRIBUTES[option], value)
    elif option == "p":
        args.port = _number(option, value, args.errors)
    elif option == "c":
        args.count = max(0, _number(option, value, args.errors))
    elif option == "t":
        args.timeout_ms = _number(option, value, args.errors)
    elif option in _FLAG_ATTRIBUTES:
        setattr(args, _FLAG_ATTRIBUTES[option], True)
    elif option in "IL":
        args.priority = Priority.HIGH if option == "I" else Priority.LOW
    elif option in "nN":
        args.per_line = True
        args.strip_newline = args.strip_newline or option == "N"


def parse_arguments(argv: Sequence[str], environ: dict[str, str] | None = None) -> Arguments:
    """Parse like glibc's getopt: operands may come between options (unless POSIXLY_CORRECT is set), ``--`` ends
    the options, an unknown option or a missing argument is an error (``-?``) but parsing goes on."""
    env = os.environ if environ is None else environ
    args = Arguments()
    items = list(argv)
    index = 0
    while index < len(items):
        item = items[index]
        index += 1
        if item == "--":
            args.operands.extend(items[index:])
            break
        if item.startswith("--"):
            name, equals, value = item[2:].partition("=")
            takes_value = LONG_OPTIONS.get(name)
            if takes_value is None or (equals and not takes_value):
                args.errors.append("-?")
                continue
            if takes_value and not equals:
                if index >= len(items):
                    args.errors.append("-?")
                    continue
                value = items[index]
                index += 1
            if name == "help":
                args.help = True
            else:
                try:
                    args.retry_for = max(0.0, float(value))
                except ValueError:
                    args.errors.append(f"--{name} {value}: not a number")
            continue
        if not item.startswith("-") or item == "-":
            if "POSIXLY_CORRECT" in env:
                args.operands.extend(items[index - 1 :])
                break
            args.operands.append(item)
            continue
        position = 1
        while position < len(item):
            option = item[position]
            position += 1
            if option in WITH_ARGUMENT:
                if position < len(item):
                    value = item[position:]
                elif index < len(items):
                    value = items[index]
                    index += 1
                else:
                    args.errors.append("-?")
                    break
                _set(args, option, value)
                break
            if option in FLAGS:
                _set(args, option, "")
            else:
                args.errors.append("-?")
    return args


def usage_text(args: Arguments, name: str) -> str:
    """The C tool's usage text, byte for byte (it shows the current value of its boolean flags)."""

    def flag(value: bool) -> str:
        return "true" if value else "false"

    return (
        f"\n{name}\tError in usage({args.arg_error}).\n\n"
        f"Client mode: {name} [options] [<data>]\n"
        f"Worker mode: {name} -w [options] [<command> [<args> ...]]\n"
        "\nCommon options to both client and worker modes.\n"
        "\t-f <function> - Function name to use for jobs (can give many)\n"
        "\t-h <host>     - Job server host\n"
        "\t-H            - Print this help menu\n"
        f"\t-v            - Print diagnostic information to stdout({flag(args.verbose)})\n"
        "\t-p <port>     - Job server port\n"
        "\t-t <timeout>  - Timeout in milliseconds\n"
        "\t-i <pidfile>  - Create a pidfile for the process\n"
        "\t-S            - Enable SSL connections\n"
        "\nClient options:\n"
        f"\t-b            - Run jobs in the background({flag(args.background)})\n"
        "\t-I            - Run jobs as high priority\n"
        "\t-L            - Run jobs as low priority\n"
        f"\t-n            - Run one job per line({flag(args.per_line)})\n"
        f"\t-N            - Same as -n, but strip off the newline({flag(args.strip_newline)})\n"
        "\t-P            - Prefix all output lines with functions names\n"
        "\t-s            - Send job without reading from standard input\n"
        "\t-u <unique>   - Unique key to use for job\n"
        "\nWorker options:\n"
        "\t-c <count>    - Number of jobs for worker to run before exiting\n"
        f"\t-n            - Send data packet for each line({flag(args.per_line)})\n"
        f"\t-N            - Same as -n, but strip off the newline({flag(args.strip_newline)})\n"
        f"\t-w            - Run in worker mode({flag(args.worker)})\n"
    )


HELP = """\
usage: {name} [options] -f FUNCTION [<data> ...]             client mode
       {name} -w [options] -f FUNCTION [-- <command> [<args> ...]]   worker mode

The libgearman command line tool, as a geartrain program: same flags, same output.

Common options:
  -f <function>   function name to use for jobs (repeatable: each job goes to every function)
  -h <host>       job server host (localhost); -p <port> job server port (4730)
                  GEARMAN_SERVER=host[:port],... in the environment wins over -h and -p
  -t <timeout>    milliseconds to wait for the server (client) or for a job (worker)
  -i <pidfile>    write the process id to this file while running
  -v              print "Task created: <handle>" for every job (client)
  -d              run in the background (fork, new session, stdio on /dev/null)
  -H              the C tool's usage text; --help this text

Client options:
  -b              background jobs        -I / -L   high / low priority
  -u <unique>     unique key for the jobs (default: a new UUID per job)
  -n              one job per line of stdin, newline included; -N the same, newline removed
  -s              one job with an empty workload, stdin not read
  -P              prefix every output with "<function>: "
  Each <data> argument is one job; without any, all of stdin is one job.

Worker options:
  -w              worker mode; the workload goes to <command>'s stdin, its stdout is the result
                  (no command: the workload is printed and the job completes empty)
  -c <count>      exit after this many jobs
  -n / -N         send each line of the command's output as its own WORK_DATA (-N without the newline)
  --retry-for <seconds>   give up (exit 2) when no job server has been reachable this long (60)

{differences}"""


def _stdin_lines(strip: bool) -> Iterator[bytes]:
    stream = sys.stdin.buffer
    while line := stream.readline():
        yield line[:-1] if strip and line.endswith(b"\n") else line


def _workloads(args: Arguments) -> Iterator[bytes]:
    if args.operands:
        return iter([os.fsencode(operand) for operand in args.operands])
    if args.suppress_input:
        return iter([b""])
    if args.per_line:
        return _stdin_lines(args.strip_newline)
    return iter([sys.stdin.buffer.read()])


def _run(args: Arguments) -> int:
    servers = servers_from(args.host, args.port)
    problem = invalid_servers(servers)
    if problem:
        sys.stderr.write(f"{PROG}: {problem}\n")
        return EXIT_FAILED
    try:
        tls = libgearman_tls_from_environment() if args.ssl else None
    except GearmanError as exc:
        sys.stderr.write(f"{PROG}: -S: {exc}\n")
        return EXIT_FAILED
    secret = secret_from_environment()
    timeout = args.timeout_ms / 1000 if args.timeout_ms >= 0 else None
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        if args.worker:
            undo = log_to_stderr(PROG, logging.WARNING)  # connection trouble is worth seeing
            try:
                return runner.run(
                    run_worker(
                        WorkerOptions(
                            servers=servers,
                            functions=args.functions,
                            command=args.operands,
                            count=args.count,
                            per_line=args.per_line,
                            strip_newline=args.strip_newline,
                            idle_timeout=timeout,
                            retry_for=args.retry_for,
                            # A worker the manager runs is named GROUP-N in the server's workers list.
                            client_id=os.environ.get("GEARTRAIN_CLIENT_ID") or None,
                            prog=PROG,
                            tls=tls,
                            secret=secret,
                        )
                    )
                )
            finally:
                undo()
        undo = log_to_stderr(PROG, logging.CRITICAL)  # the client reports its own errors
        try:
            options = ClientOptions(
                servers=servers,
                functions=args.functions,
                background=args.background,
                priority=args.priority,
                unique=args.unique,
                timeout=timeout,
                connect_timeout=timeout if timeout else 10.0,
                prog=PROG,
                tls=tls,
                secret=secret,
            )
            output = TextOutput(PROG, prefix=args.prefix, verbose=args.verbose)
            return runner.run(run_client(options, _workloads(args), output))
        finally:
            undo()


def main(argv: Sequence[str] | None = None) -> int:
    """The ``gearman`` entry point."""
    name = sys.argv[0] if sys.argv and sys.argv[0] else PROG
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    if args.help:
        sys.stdout.write(HELP.format(name=name, differences=DIFFERENCES))
        return EXIT_OK
    if args.usage or args.is_error:
        # -H: to stdout if the command line was otherwise fine, else to stderr; exit 0 either way (as the C tool).
        stream = sys.stderr if args.is_error else sys.stdout
        stream.write(usage_text(args, name))
        stream.flush()
        return EXIT_OK if args.usage else EXIT_FAILED
    if args.daemon:
        daemonize()
    if args.pid_file:
        problem = write_pid_file(args.pid_file)
        if problem:
            sys.stderr.write(f"{PROG}: {problem}\n")
            return EXIT_FAILED
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
