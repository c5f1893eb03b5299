"""``geartrain top``: a live view of one or several job servers (functions, queue rates, workers), like ``top``.

On a terminal the screen is redrawn every ``--delay`` seconds (plain ANSI: no curses needed) until ``q`` or
Ctrl-C. ``--once`` (or ``-n 1``) prints one frame and exits, for scripts; piped output never gets escape codes.
Rates are the change per second of each gauge since the previous frame (``-`` on the first one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence

from geartrain.admin import AdminClient
from geartrain.admin.monitor import ServerSnapshot, function_rows, take_snapshots
from geartrain.cli.common import add_server_argument, servers_from
from geartrain.cli.security_args import add_client_security_arguments, client_secret_from_args, client_tls_from_args
from geartrain.cli.tables import table
from geartrain.client.loopthread import new_event_loop
from geartrain.errors import GearmanError

PROG = "geartrain top"

CLEAR = "\x1b[H\x1b[2J"
SORT_KEYS = ("name", "queued", "running", "workers")
ALTERNATE_SCREEN_ON, ALTERNATE_SCREEN_OFF = "\x1b[?1049h\x1b[?25l", "\x1b[?25h\x1b[?1049l"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A live view of Gearman job servers: functions, queue rates and workers.",
        epilog="Keys: q quits. Exit status: 0, or 2 when a server could not be reached (in the last frame).",
    )
    add_server_argument(parser)
    parser.add_argument("-d", "--delay", type=float, default=2.0, metavar="SECONDS", help="between frames (2)")
    parser.add_argument("-n", "--iterations", type=int, default=0, metavar="N", help="stop after N frames")
    parser.add_argument("--once", action="store_true", help="print one frame and exit (same as -n 1)")
    parser.add_argument(
        "--sort",
        choices=SORT_KEYS,
        default="name",
        help="order of the functions: by name, or the largest first (name)",
    )
    parser.add_argument("--no-workers", action="store_true", help="leave out the list of worker connections")
    parser.add_argument("-t", "--timeout", type=float, default=5.0, metavar="SECONDS", help="per server (5)")
    add_client_security_arguments(parser)
    return parser


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def render_server(
    current: ServerSnapshot, previous: ServerSnapshot | None, show_workers: bool, sort: str = "name"
) -> list[str]:
    """The lines of one server's section."""
    if current.error:
        return [f"== {current.server}  UNREACHABLE: {current.error}\n"]
    rows = function_rows(current, previous)
    if sort != "name":  # largest first; ties by name (the rows come sorted by name, and sorting is stable)
        rows.sort(key=lambda row: getattr(row, sort), reverse=True)
    workers = current.worker_connections
    pid = f"  pid {current.pid}" if current.pid is not None else ""
    lines = [
        f"== {current.server}  version {current.version}{pid}\n",
        f"   {len(rows)} functions  {sum(r.queued for r in rows)} queued  {sum(r.running for r in rows)} running"
        f"  {len(workers)} workers  {len(current.workers)} connections\n",
        "\n",
    ]
    if rows:
        header = ("FUNCTION", "QUEUED", "HIGH", "NORMAL", "LOW", "RUNNING", "WORKERS", "QUEUED/S", "RUNNING/S")
        cells = [
            (r.name, r.queued, _count(r.high), _count(r.normal), _count(r.low), r.running, r.workers, *rates)
            for r in rows
            for rates in [(_rate(r.queued_rate), _rate(r.running_rate))]
        ]
        lines += table(header, cells, numeric=range(1, 9)).splitlines(keepends=True)
    else:
        lines.append("(no functions)\n")
    if current.cluster:
        lines.append("\n")
        nodes = [
            (node, address, f"{age}s ago", jobs, "yes" if leader == "1" else "")
            for node, address, age, jobs, leader in current.cluster
        ]
        node_header = ("NODE", "ADDRESS", "HEARTBEAT", "JOBS HELD", "LEADER")
        lines += table(node_header, nodes, numeric=(3,)).splitlines(keepends=True)
    if show_workers and workers:
        lines.append("\n")
        listed = [(w.fd, w.address, w.client_id, " ".join(w.functions)) for w in workers]
        lines += table(("FD", "ADDRESS", "CLIENT-ID", "FUNCTIONS"), listed, numeric=(0,)).splitlines(keepends=True)
    return lines


def render_frame(
    snapshots: list[ServerSnapshot],
    previous: dict[str, ServerSnapshot],
    *,
    delay: float,
    show_workers: bool = True,
    height: int | None = None,
    sort: str = "name",
) -> str:
    """One whole frame; with ``height`` (a terminal's rows) it is cut to fit, saying how much was left out."""
    lines = [f"{PROG}  {time.strftime('%H:%M:%S')}  every {delay:g}s  {len(snapshots)} server(s)\n"]
    for snapshot in snapshots:
        lines.append("\n")
        lines += render_server(snapshot, previous.get(snapshot.server), show_workers, sort)
    if height is not None and len(lines) > height:
        hidden = len(lines) - (height - 1)
        lines = [*lines[: height - 1], f"... {hidden} more lines (a larger window, or --no-workers)\n"]
    return "".join(lines)


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


async def _run(servers: list[str], args: argparse.Namespace, iterations: int) -> int:
    live = sys.stdout.isatty()
    quit_pressed = asyncio.Event()
    previous: dict[str, ServerSnapshot] = {}
    status = 0
    admins = [AdminClient(server, timeout=args.timeout, tls=args.tls, secret=args.secret) for server in servers]
    with _keys() as key_fd:
        loop = asyncio.get_running_loop()
        if key_fd is not None and live:

            def on_key() -> None:
                if os.read(key_fd, 32).lower().startswith(b"q"):
                    quit_pressed.set()

            loop.add_reader(key_fd, on_key)
        if live:
            sys.stdout.write(ALTERNATE_SCREEN_ON)
        try:
            frame = 0
            while True:
                snapshots = await take_snapshots(admins)
                status = 2 if any(snapshot.error for snapshot in snapshots) else 0
                height = shutil.get_terminal_size().lines if live else None
                text = render_frame(
                    snapshots,
                    previous,
                    delay=args.delay,
                    show_workers=not args.no_workers,
                    height=height,
                    sort=args.sort,
                )
                if live:
                    sys.stdout.write(CLEAR + text)
                else:
                    sys.stdout.write(("\n" if frame else "") + text)
                sys.stdout.flush()
                previous = {snapshot.server: snapshot for snapshot in snapshots}
                frame += 1
                if iterations and frame >= iterations:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(args.delay):
                        await quit_pressed.wait()
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
