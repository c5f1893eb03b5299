"""``geartrain``: the umbrella command. ``geartrain server`` runs the job server."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from geartrain import __version__

USAGE = f"""usage: geartrain COMMAND [ARGS...]

geartrain {__version__}: a Gearman-compatible job server and tools.

commands:
  server     run the job server (gearmand's flags; --help for them)
  submit     submit jobs and print their results
  work       serve functions with a shell command
  admin      query and manage servers (status, workers, jobs, ...; --json)
  dead       the dead set: dead [list] [FUNCTION] | show H | retry|delete H|FUNCTION|all (admin's options)
  result     result HANDLE: how a background job ended, while kept (--policy-file's result_ttl)
  top        a live view of servers: functions, rates, workers (--once: one frame)
  manager    run and supervise worker processes from a TOML file
  bench      measure a server: throughput, latency, memory (the workloads of make bench)
  version    print the version

Run 'geartrain COMMAND --help' for a command's options.
"""


def _server(argv: list[str]) -> int:
    from geartrain.cli.gearmand import run

    return run(argv, "geartrain server", gearmand_defaults=False)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "server":
        return _server(rest)
    if command == "submit":
        from geartrain.cli.submit import main as submit

        return submit(rest)
    if command == "work":
        from geartrain.cli.work import main as work

        return work(rest)
    if command == "admin":
        from geartrain.cli.admin import main as admin

        return admin(rest)
    if command in ("dead", "result"):
        from geartrain.cli.shortcuts import main as shortcut

        return shortcut(command, rest)
    if command == "top":
        from geartrain.cli.top import main as top

        return top(rest)
    if command == "manager":
        from geartrain.cli.manager import main as manager

        return manager(rest)
    if command == "bench":
        from geartrain.cli.bench import main as bench

        return bench(rest)
    if command in ("version", "--version", "-V"):
        print(f"geartrain {__version__}")
        return 0
    sys.stderr.write(f"geartrain: unknown command {command!r} (see geartrain --help)\n")
    return 2
