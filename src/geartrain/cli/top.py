"""``geartrain top``: a live view of one or several job servers (functions, throughput, workers), like ``top``.

On a terminal the screen is redrawn every ``--delay`` seconds (plain ANSI: no curses needed) until ``q`` or
Ctrl-C; ``s`` moves the sort to the next column, ``r`` reverses it, ``m`` switches between merged and per-server
rows. ``--once`` (or ``-n 1``) prints one frame and exits, for scripts; piped output never gets escape codes.

Several servers (``-s a:4730 -s b:4730``, or ``-s a:4730,b:4730``) are shown as one table with a row per function
merged over them (counts and rates summed, the oldest wait the longest, SERVERS saying how many report it): in a
cluster, or behind clients that spread jobs over a server list, a function's work is spread over every server and
the first question is whether it keeps up as a whole. ``--per-server`` (or ``m``) gives a row per function and
server instead, to find the one that lags. Each server's own line says whether it answered.

Columns: QUEUED = HIGH + NORMAL + LOW + PENDING (PENDING: counted by ``status`` but in no priority queue yet:
waiting for the store to hold them, or out a retry's backoff); IN/S and OUT/S: jobs submitted and finished
(complete, fail or exception) per second since the previous frame; OLDEST: how long the longest-waiting queued job
has waited. IN/S, OUT/S and OLDEST come from geartrain's counters (``status json``): ``-`` for gearmand.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from geartrain.admin import AdminClient
from geartrain.admin.monitor import FunctionRow, ServerSnapshot, function_rows, merge_rows, take_snapshots
from geartrain.cli.common import add_server_argument, servers_from
from geartrain.cli.security_args import add_client_security_arguments, client_secret_from_args, client_tls_from_args
from geartrain.cli.tables import table
from geartrain.cli.usage import ArgumentParser
from geartrain.client.loopthread import new_event_loop
from geartrain.errors import GearmanError

PROG = "geartrain top"

CLEAR = "\x1b[H\x1b[2J"
ALTERNATE_SCREEN_ON, ALTERNATE_SCREEN_OFF = "\x1b[?1049h\x1b[?25l", "\x1b[?25h\x1b[?1049l"

# Sort keys and how each reads a row: numbers sort largest first, names alphabetically (unknown values last).
SORT_KEYS: dict[str, Callable[[FunctionRow], float]] = {
    "queued": lambda row: row.queued,
    "pending": lambda row: -1 if row.pending is None else row.pending,
    "running": lambda row: row.running,
    "workers": lambda row: row.workers,
    "in": lambda row: -1 if row.in_rate is None else row.in_rate,
    "out": lambda row: -1 if row.out_rate is None else row.out_rate,
    "oldest": lambda row: -1 if row.oldest is None else row.oldest,
}
SORT_ORDER = ("name", "server", *SORT_KEYS)  # the `s` key's cycle


@dataclass
class View:
    """How rows are shown; the keys change it while top runs."""

    sort: str = "name"
    reverse: bool = False
    per_server: bool = False
    show_workers: bool = True


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="A live view of Gearman job servers: functions, throughput and workers.",
        epilog="Keys: q quits, s sorts by the next column, r reverses the order, m merges or splits the servers' "
        "rows. Exit status: 0, or 2 when a server could not be reached (in the last frame).",
    )
    add_server_argument(parser)
    parser.add_argument("-d", "--delay", type=float, default=2.0, metavar="SECONDS", help="between frames (2)")
    parser.add_argument("-n", "--iterations", type=int, default=0, metavar="N", help="stop after N frames")
    parser.add_argument("--once", action="store_true", help="print one frame and exit (same as -n 1)")
    parser.add_argument(
        "--sort",
        choices=SORT_ORDER,
        default="name",
        help="order of the rows: by name or server, or the largest first (name)",
    )
    parser.add_argument("-r", "--reverse", action="store_true", help="reverse the order of the rows")
    parser.add_argument(
        "--per-server",
        action="store_true",
        help="with several servers: a row per function and server, not one per function merged over them",
    )
    parser.add_argument("--no-workers", action="store_true", help="leave out the list of worker connections")
    parser.add_argument("-t", "--timeout", type=float, default=5.0, metavar="SECONDS", help="per server (5)")
    add_client_security_arguments(parser)
    return parser


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def age(seconds: float | None) -> str:
    """``-``, ``42s``, ``3m05s``, ``2h07m``, ``3d04h``."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def sort_rows(rows: list[FunctionRow], sort: str, reverse: bool = False) -> list[FunctionRow]:
    """Rows in the order asked for; ties (and ``name``) by function then server."""
    ordered = sorted(rows, key=lambda row: (row.name, row.server))
    if sort == "server":
        ordered.sort(key=lambda row: row.server)
    elif sort in SORT_KEYS:
        ordered.sort(key=SORT_KEYS[sort], reverse=True)  # largest first; sorting is stable
    return ordered[::-1] if reverse else ordered


def server_lines(current: ServerSnapshot) -> list[str]:
    """One server's heading: who it is, or why it could not be read."""
    if current.error:
        return [f"== {current.server}  UNREACHABLE: {current.error}\n"]
    pid = f"  pid {current.pid}" if current.pid is not None else ""
    statuses = current.functions
    return [
        f"== {current.server}  version {current.version}{pid}\n",
        f"   {len(statuses)} functions  {sum(s.queued for s in statuses)} queued  {sum(s.running for s in statuses)}"
        f" running  {len(current.worker_connections)} workers  {len(current.workers)} connections\n",
    ]


def function_table(rows: list[FunctionRow], servers: int, per_server: bool) -> list[str]:
    """The functions' table; a SERVERS column when rows are merged over several servers, SERVER when split."""
    if not rows:
        return ["(no functions)\n"]
    where: tuple[str, ...] = ()
    if servers > 1:
        where = ("SERVER",) if per_server else ("SERVERS",)
    header = ("FUNCTION", *where, "QUEUED", "HIGH", "NORMAL", "LOW", "PENDING", "RUNNING", "WORKERS")
    header += ("IN/S", "OUT/S", "OLDEST")
    cells = []
    for r in rows:
        place = (r.server,) if where == ("SERVER",) else (r.servers,) if where else ()
        counts = (r.queued, _count(r.high), _count(r.normal), _count(r.low), _count(r.pending), r.running, r.workers)
        cells.append((r.name, *place, *counts, _rate(r.in_rate), _rate(r.out_rate), age(r.oldest)))
    first_number = 2 if where == ("SERVER",) else 1
    return table(header, cells, numeric=range(first_number, len(header))).splitlines(keepends=True)


def render_frame(
    snapshots: list[ServerSnapshot],
    previous: dict[str, ServerSnapshot],
    *,
    delay: float,
    show_workers: bool = True,
    height: int | None = None,
    sort: str = "name",
    reverse: bool = False,
    per_server: bool = False,
) -> str:
    """One whole frame; with ``height`` (a terminal's rows) it is cut to fit, saying how much was left out."""
    order = f"{sort}{', reversed' if reverse else ''}"
    several = len(snapshots) > 1
    layout = (" per server" if per_server else " merged") if several else ""
    lines = [
        f"{PROG}  {time.strftime('%H:%M:%S')}  every {delay:g}s  {len(snapshots)} server(s){layout}  sort: {order}\n"
    ]
    lines.append("\n")
    rows: list[FunctionRow] = []
    for snapshot in snapshots:
        lines += server_lines(snapshot)
        if not snapshot.error:
            rows += function_rows(snapshot, previous.get(snapshot.server))
    if several and not per_server:
        rows = merge_rows(rows)
    lines.append("\n")
    lines += function_table(sort_rows(rows, sort, reverse), len(snapshots), per_server)
    clustered = next((s for s in snapshots if s.cluster and not s.error), None)
    if clustered is not None and clustered.cluster is not None:
        lines.append("\n")
        nodes = [
            (node, address, f"{age_s}s ago", jobs, "yes" if leader == "1" else "")
            for node, address, age_s, jobs, leader in clustered.cluster
        ]
        node_header = ("NODE", "ADDRESS", "HEARTBEAT", "JOBS HELD", "LEADER")
        if several:
            lines.append(f"cluster as {clustered.server} sees it:\n")
        lines += table(node_header, nodes, numeric=(3,)).splitlines(keepends=True)
    if show_workers:
        lines += _worker_lines(snapshots)
    if height is not None and len(lines) > height:
        hidden = len(lines) - (height - 1)
        lines = [*lines[: height - 1], f"... {hidden} more lines (a larger window, or --no-workers)\n"]
    return "".join(lines)


def _worker_lines(snapshots: list[ServerSnapshot]) -> list[str]:
    several = len(snapshots) > 1
    listed = [
        ((s.server,) if several else ()) + (w.fd, w.address, w.client_id, " ".join(w.functions))
        for s in snapshots
        for w in s.worker_connections
    ]
    if not listed:
        return []
    header = (("SERVER",) if several else ()) + ("FD", "ADDRESS", "CLIENT-ID", "FUNCTIONS")
    return ["\n", *table(header, listed, numeric=(1 if several else 0,)).splitlines(keepends=True)]


@contextlib.contextmanager
def _keys() -> Iterator[int | None]:
    """Put a terminal stdin in cbreak mode (single keys, no echo); yields its fd, or None when not a terminal."""
    if not sys.stdin.isatty():
        yield None
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def press(view: View, key: str) -> bool:
    """Apply one key to the view; ``True`` for ``q`` (quit)."""
    if key == "q":
        return True
    if key == "s":
        view.sort = SORT_ORDER[(SORT_ORDER.index(view.sort) + 1) % len(SORT_ORDER)]
    elif key == "r":
        view.reverse = not view.reverse
    elif key == "m":
        view.per_server = not view.per_server
    return False


async def _run(servers: list[str], args: argparse.Namespace, iterations: int) -> int:
    live = sys.stdout.isatty()
    view = View(args.sort, args.reverse, args.per_server, not args.no_workers)
    quit_pressed, changed = asyncio.Event(), asyncio.Event()
    previous: dict[str, ServerSnapshot] = {}
    status = 0
    admins = [AdminClient(server, timeout=args.timeout, tls=args.tls, secret=args.secret) for server in servers]

    def draw(snapshots: list[ServerSnapshot], before: dict[str, ServerSnapshot], first: bool) -> None:
        height = shutil.get_terminal_size().lines if live else None
        text = render_frame(
            snapshots,
            before,
            delay=args.delay,
            show_workers=view.show_workers,
            height=height,
            sort=view.sort,
            reverse=view.reverse,
            per_server=view.per_server,
        )
        sys.stdout.write(CLEAR + text if live else ("" if first else "\n") + text)
        sys.stdout.flush()

    with _keys() as key_fd:
        loop = asyncio.get_running_loop()
        if key_fd is not None and live:

            def on_key() -> None:
                for key in os.read(key_fd, 32).decode("ascii", "ignore").lower():
                    if press(view, key):
                        quit_pressed.set()
                changed.set()

            loop.add_reader(key_fd, on_key)
        if live:
            sys.stdout.write(ALTERNATE_SCREEN_ON)
        try:
            frame = 0
            while True:
                snapshots = await take_snapshots(admins)
                status = 2 if any(snapshot.error for snapshot in snapshots) else 0
                before = previous
                draw(snapshots, before, frame == 0)
                previous = {snapshot.server: snapshot for snapshot in snapshots}
                frame += 1
                if iterations and frame >= iterations:
                    break
                deadline = loop.time() + args.delay
                while not quit_pressed.is_set() and (remaining := deadline - loop.time()) > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(remaining):
                            await changed.wait()
                    if changed.is_set() and not quit_pressed.is_set():
                        changed.clear()
                        draw(snapshots, before, False)  # the same figures, sorted or laid out anew
                if quit_pressed.is_set():
                    break
        finally:
            if key_fd is not None and live:
                loop.remove_reader(key_fd)
            if live:
                sys.stdout.write(ALTERNATE_SCREEN_OFF)
                sys.stdout.flush()
            for admin in admins:
                await admin.close()
    return status


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv))
    if args.delay <= 0:
        parser.error("--delay must be more than 0")
    iterations = 1 if args.once else max(0, args.iterations)
    try:
        args.tls, args.secret = client_tls_from_args(args), client_secret_from_args(args)
    except GearmanError as exc:
        parser.error(str(exc))
    servers = [part.strip() for spec in args.server for part in spec.split(",") if part.strip()] if args.server else []
    servers = servers or servers_from(None, None)
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            return runner.run(_run(servers, args, iterations))
    except KeyboardInterrupt:
        return 0
