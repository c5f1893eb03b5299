"""``geartrain admin``: the admin protocol as readable tables or JSON, for one or several servers.

Built on :class:`~geartrain.admin.AdminClient`; every server is asked at once.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from geartrain.admin import AdminClient, FunctionStatus
from geartrain.cli.common import add_server_argument, servers_from
from geartrain.cli.security_args import add_client_security_arguments, client_secret_from_args, client_tls_from_args
from geartrain.cli.tables import table
from geartrain.cli.usage import ArgumentParser
from geartrain.client.loopthread import new_event_loop
from geartrain.errors import AdminError, ConnectionLost, GearmanError, GearmanTimeout

PROG = "geartrain admin"

EPILOG = """\
commands:
  status                      functions: jobs queued and running, workers
  priority-status             queued jobs per priority
  workers                     connections and the functions they serve
  jobs                        every job (handle, retries, ignored, stored)
  unique-jobs                 the unique key of every job
  version | verbose | getpid  the server's version, log level, process id
  cancel HANDLE...            cancel jobs (exit 1 if one is unknown)
  create-function NAME        drop-function NAME
  maxqueue FUNCTION [SIZE | HIGH NORMAL LOW]   queue limits (none = unlimited)
  shutdown [--graceful]       stop the server (geartrain servers; gearmand refuses)

the job life cycle (geartrain servers started with --policy-file; docs/lifecycle.md):
  dead [FUNCTION]             the dead set: jobs out of retries, with their last error
  dead-show HANDLE            one dead job, with its payload
  dead-retry HANDLE|FUNCTION|all    queue dead jobs again
  dead-delete HANDLE|FUNCTION|all   delete dead jobs
  pause FUNCTION | resume FUNCTION  stop or restart handing out a function's jobs
  paused                      the paused functions
  cron                        the cron entries: schedule, next and last firing
  cron-add FUNCTION SCHEDULE [--payload P] [--timezone Z] [--unique U] [--priority high|normal|low]
           [--catch-up skip|once]   add an entry at run time (SCHEDULE quoted: "0 7 * * *", "@every 10s")
  cron-remove FUNCTION [SCHEDULE]   remove entries added at run time (the file's stay)
  policy [FUNCTION]           the policies in force, and what was changed at run time
  policy-set FUNCTION KEY=VALUE...  change a function's policy (retries=5 timeout=30s rate=100/s ...)
  policy-unset FUNCTION [KEY...]    back to the policy file's settings (for KEYs, or all)
  result HANDLE               how a background job ended (while its result_ttl keeps it)

Exit status: 0 all servers answered, 1 a server answered with an error (or an unknown job), 2 a server could
not be reached.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Query and manage Gearman job servers through the admin protocol.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_server_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document: a list, one entry per server")
    parser.add_argument("-t", "--timeout", type=float, default=10.0, metavar="SECONDS", help="per command (10)")
    add_client_security_arguments(parser)
    # --json is also accepted after the command (`geartrain admin status --json`); SUPPRESS keeps a subcommand
    # that did not get it from resetting the value given before the command.
    after = ArgumentParser(add_help=False)
    after.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[after])

    for name in ("status", "priority-status", "workers", "jobs", "unique-jobs", "version", "verbose", "getpid"):
        command(name)
    command("cancel").add_argument("handles", nargs="+", metavar="HANDLE")
    command("create-function").add_argument("name")
    command("drop-function").add_argument("name")
    maxqueue = command("maxqueue")
    maxqueue.add_argument("function")
    maxqueue.add_argument("sizes", nargs="*", type=int, metavar="SIZE")
    command("shutdown").add_argument("--graceful", action="store_true")
    command("dead").add_argument("function", nargs="?")
    for name in ("dead-show", "result"):
        command(name).add_argument("handle")
    for name in ("dead-retry", "dead-delete"):
        command(name).add_argument("selector", metavar="HANDLE|FUNCTION|all")
    for name in ("pause", "resume"):
        command(name).add_argument("function")
    command("paused")
    command("cron")
    _add_runtime_commands(command)
    return parser


def _add_runtime_commands(command: Callable[[str], argparse.ArgumentParser]) -> None:
    """The run-time changes of policies and cron entries (docs/lifecycle.md)."""
    command("policy").add_argument("function", nargs="?")
    policy_set = command("policy-set")
    policy_set.add_argument("function")
    policy_set.add_argument("settings", nargs="+", metavar="KEY=VALUE")
    policy_unset = command("policy-unset")
    policy_unset.add_argument("function")
    policy_unset.add_argument("keys", nargs="*", metavar="KEY")
    cron_add = command("cron-add")
    cron_add.add_argument("function")
    cron_add.add_argument("schedule", help='one argument: "0 7 * * *", "*/10 * * * * *", "@every 10s"')
    cron_add.add_argument("--payload")
    cron_add.add_argument("--timezone", metavar="ZONE", help="e.g. Europe/Berlin (default UTC)")
    cron_add.add_argument("--unique", metavar="TEMPLATE", help="{function}, {epoch} and {time} are filled in")
    cron_add.add_argument("--priority", choices=("high", "normal", "low"))
    cron_add.add_argument("--catch-up", choices=("skip", "once"))
    cron_remove = command("cron-remove")
    cron_remove.add_argument("function")
    cron_remove.add_argument("schedule", nargs="?", help="one argument; without it, every entry of FUNCTION")


class Failed(GearmanError):
    """The command ran but its outcome is a failure (exit status 1), e.g. an unknown job to cancel."""

    def __init__(self, message: str, result: Any) -> None:
        super().__init__(message)
        self.result = result


async def _ask(admin: AdminClient, args: argparse.Namespace) -> Any:
    command = args.command
    if command == "status":
        return await admin.status()
    if command == "priority-status":
        return await admin.priority_status()
    if command == "workers":
        return await admin.workers()
    if command == "jobs":
        return await admin.show_jobs()
    if command == "unique-jobs":
        return await admin.show_unique_jobs()
    if command == "version":
        return await admin.version()
    if command == "verbose":
        return await admin.verbose()
    if command == "getpid":
        return await admin.getpid()
    if command == "cancel":
        results = {handle: await admin.cancel_job(handle) for handle in args.handles}
        unknown = [handle for handle, done in results.items() if not done]
        if unknown:
            raise Failed(f"unknown job: {', '.join(unknown)}", results)
        return results
    if command == "create-function":
        await admin.create_function(args.name)
    elif command == "drop-function":
        await admin.drop_function(args.name)
    elif command == "maxqueue":
        if len(args.sizes) not in (0, 1, 3):
            raise ValueError("maxqueue takes no size, one size, or three (high normal low)")
        await admin.maxqueue(args.function, *args.sizes)
    elif command == "shutdown":
        await admin.shutdown(args.graceful)
    elif command in LIFECYCLE or command in RUNTIME:
        return await _ask_lifecycle(admin, args)
    return True


LIFECYCLE = ("dead", "dead-show", "dead-retry", "dead-delete", "pause", "resume", "paused", "cron", "result")
RUNTIME = ("policy", "policy-set", "policy-unset", "cron-add", "cron-remove")
CRON_OPTIONS = ("payload", "timezone", "unique", "priority", "catch_up")


async def _ask_lifecycle(admin: AdminClient, args: argparse.Namespace) -> Any:
    command = args.command
    if command == "dead":
        return await admin.dead_list(args.function)
    if command == "dead-show":
        return await admin.dead_show(args.handle)
    if command == "result":
        return await admin.result(args.handle)
    if command == "dead-retry":
        return {"retried": await admin.dead_retry(args.selector)}
    if command == "dead-delete":
        return {"deleted": await admin.dead_delete(args.selector)}
    if command == "paused":
        return await admin.paused()
    if command == "cron":
        return await admin.cron_list()
    if command in RUNTIME:
        return await _ask_runtime(admin, args)
    await (admin.pause if command == "pause" else admin.resume)(args.function)
    return True


async def _ask_runtime(admin: AdminClient, args: argparse.Namespace) -> Any:
    command = args.command
    if command == "policy":
        return await admin.policy_show(args.function)
    if command == "policy-set":
        settings = {}
        for token in args.settings:
            key, sep, value = token.partition("=")
            if not sep or not key:
                raise ValueError(f"{token}: not KEY=VALUE (e.g. retries=5, timeout=30s)")
            settings[key] = value
        await admin.policy_set(args.function, settings)
    elif command == "policy-unset":
        await admin.policy_unset(args.function, args.keys)
    elif command == "cron-add":
        options = {key: getattr(args, key) for key in CRON_OPTIONS if getattr(args, key) is not None}
        return {"function": args.function, "next": await admin.cron_add(args.function, args.schedule, **options)}
    else:
        return {"removed": await admin.cron_remove(args.function, args.schedule)}
    return True


async def _one(server: str, args: argparse.Namespace) -> tuple[str, Any, str | None, int]:
    """(server, result, error text, exit status) for one server."""
    try:
        async with AdminClient(server, timeout=args.timeout, tls=args.tls, secret=args.secret) as admin:
            return server, await _ask(admin, args), None, 0
    except Failed as exc:
        return server, exc.result, str(exc), 1
    except AdminError as exc:
        return server, None, f"the server answered: {exc}", 1
    except (ConnectionLost, GearmanTimeout, OSError) as exc:
        return server, None, str(exc), 2
    except (GearmanError, ValueError) as exc:
        return server, None, str(exc), 1


def _jsonable(result: Any) -> Any:
    if isinstance(result, list):
        return [_jsonable(item) for item in result]
    if isinstance(result, FunctionStatus):
        return {**dataclasses.asdict(result), "queued": result.queued}
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    return result


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _listing_text(command: str, result: list[Any]) -> str:
    """A listing as an aligned table with a header (printed even when empty), rows sorted by their first column:
    the server's own order is its hash table's, which means nothing to a reader."""
    rows: list[tuple[Any, ...]]
    if command == "status":
        rows = sorted((r.name, r.total, r.running, r.queued, r.workers) for r in result)
        return table(("FUNCTION", "TOTAL", "RUNNING", "QUEUED", "WORKERS"), rows, numeric=(1, 2, 3, 4))
    if command == "priority-status":
        rows = sorted((r.name, r.high, r.normal, r.low, r.workers) for r in result)
        return table(("FUNCTION", "HIGH", "NORMAL", "LOW", "WORKERS"), rows, numeric=(1, 2, 3, 4))
    if command == "workers":
        rows = sorted((r.fd, r.address, r.client_id, " ".join(r.functions)) for r in result)
        return table(("FD", "ADDRESS", "CLIENT-ID", "FUNCTIONS"), rows, numeric=(0,))
    if command == "jobs":
        rows = sorted((r.handle, r.retries, _yes(r.ignore), _yes(r.stored)) for r in result)
        return table(("HANDLE", "RETRIES", "IGNORED", "STORED"), rows, numeric=(1,))
    return table(("UNIQUE",), sorted((key,) for key in result))


def _lifecycle_text(command: str, result: Any) -> str:
    if command == "dead":
        rows = [(r["handle"], r["function"], r["unique"], r["attempts"], r["error"]) for r in result]
        return table(("HANDLE", "FUNCTION", "UNIQUE", "ATTEMPTS", "LAST ERROR"), rows, numeric=(3,))
    if command == "paused":
        return table(("FUNCTION",), [(name,) for name in result])
    if command == "cron":
        rows = [(r["function"], r["schedule"], r["timezone"], _when(r["next"]), _when(r["last"])) for r in result]
        return table(("FUNCTION", "SCHEDULE", "TIME ZONE", "NEXT", "LAST"), rows)
    if command in ("dead-retry", "dead-delete", "cron-remove"):
        return "".join(f"{key}: {value}\n" for key, value in result.items())
    if command == "cron-add":
        return f"added; first run: {_when(result['next'])}\n"
    if command == "policy":
        return _policy_text(result)
    return json.dumps(result, indent=2) + "\n"  # dead-show, result: one record


def _policy_text(view: dict[str, Any]) -> str:
    """One row per function, its policy's settings in force; one changed at run time marked with ``*``."""
    keys = list(view["defaults"])
    rows = [("(defaults)", *(_setting(key, view["defaults"][key]) for key in keys))]
    for name, entry in sorted(view["functions"].items()):
        changed = entry["overrides"]
        rows.append((name, *(_setting(key, entry["policy"][key]) + "*" * (key in changed) for key in keys)))
    legend = "* set at run time (policy-unset goes back to the file's)\n"
    return table(("FUNCTION", *(key.upper() for key in keys)), rows) + legend


DURATIONS = ("backoff_base", "backoff_max", "timeout", "result_ttl", "dead_retention")


def _setting(key: str, value: Any) -> str:
    """A policy value as the policy file would write it: durations as ``30s``, ``7d``; ``-`` for none."""
    if value is None:
        return "-"
    if key in DURATIONS:
        for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
            if value >= size and value % size == 0:
                return f"{value / size:g}{unit}"
        return f"{value:g}s"
    return str(value)


def _when(epoch: int | None) -> str:
    return "-" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(epoch))


def _text(command: str, result: Any) -> str:
    if command in (*LIFECYCLE, *RUNTIME) and result is not True:
        return _lifecycle_text(command, result)
    if isinstance(result, list):
        return _listing_text(command, result)
    if isinstance(result, dict):  # cancel
        return "".join(f"{key}: {'cancelled' if done else 'unknown job'}\n" for key, done in result.items())
    if result is True:
        return "OK\n"
    return f"{result}\n"


async def _all(servers: list[str], args: argparse.Namespace) -> list[tuple[str, Any, str | None, int]]:
    return list(await asyncio.gather(*(_one(server, args) for server in servers)))


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv))
    try:
        args.tls, args.secret = client_tls_from_args(args), client_secret_from_args(args)
    except GearmanError as exc:
        parser.error(str(exc))
    servers = [part for spec in args.server for part in spec.split(",") if part.strip()] if args.server else []
    servers = servers or servers_from(None, None)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        answers = runner.run(_all(servers, args))
    status = max(answer[3] for answer in answers)
    if args.json:
        document = [
            {"server": server, "result": _jsonable(result), **({"error": error} if error else {})}
            for server, result, error, _ in answers
        ]
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        for server, result, error, _ in answers:
            if len(servers) > 1:
                sys.stdout.write(f"== {server}\n")
            if result is not None:
                sys.stdout.write(_text(args.command, result))
            if error:
                sys.stdout.flush()
                sys.stderr.write(f"{PROG}: {server}: {error}\n")
                sys.stderr.flush()
    return status
