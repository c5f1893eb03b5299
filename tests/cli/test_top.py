"""`geartrain top` against real servers with real jobs, its live mode in a pseudo-terminal, and its arithmetic."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

from clitools import environment, ours, run

from geartrain.admin.monitor import ServerSnapshot, function_rows
from geartrain.admin.records import FunctionStatus, PriorityStatus, WorkerInfo
from geartrain.cli.top import render_frame
from servers import GearmanServer, GearmanSocket, PacketType, free_port


def top(*args: str) -> subprocess.CompletedProcess[bytes]:
    return run([*ours("geartrain"), "top", *args])


def table_rows(text: str, header_start: str) -> dict[str, list[str]]:
    """The rows of the table whose header line starts with ``header_start``, by first cell."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        cells = line.split()
        rows[cells[0]] = cells[1:]
    return rows


def test_once_shows_functions_and_workers(gearman_server: GearmanServer) -> None:
    with GearmanSocket(gearman_server) as worker, GearmanSocket(gearman_server) as client:
        worker.send(PacketType.SET_CLIENT_ID, b"top-worker")
        worker.send(PacketType.CAN_DO, b"resize")
        worker.sync()
        for n in range(3):
            client.submit("resize", f"img{n}".encode(), ptype=PacketType.SUBMIT_JOB_BG)
        client.submit("thumbs", b"x", ptype=PacketType.SUBMIT_JOB_HIGH_BG)
        assert worker.grab().type == PacketType.JOB_ASSIGN  # one job now runs

        result = top("-s", gearman_server.address, "--once")
        assert result.returncode == 0, result
        text = result.stdout.decode()
        assert b"\x1b" not in result.stdout  # no escape codes when not on a terminal
        assert text.startswith("geartrain top ")
        assert f"== {gearman_server.address}  version " in text
        functions = table_rows(text, "FUNCTION")
        #                     QUEUED HIGH NORMAL LOW RUNNING WORKERS QUEUED/S RUNNING/S
        assert functions["resize"] == ["2", "0", "2", "0", "1", "1", "-", "-"]
        assert functions["thumbs"] == ["1", "1", "0", "0", "0", "0", "-", "-"]
        assert "   2 functions  3 queued  1 running  1 workers" in text
        workers = table_rows(text, "FD")
        assert [cells[1:] for cells in workers.values()] == [["top-worker", "resize"]]

        quiet = top("-s", gearman_server.address, "--once", "--no-workers").stdout.decode()
        assert "top-worker" not in quiet and "resize" in quiet


def test_frames_and_rates(gearman_server: GearmanServer) -> None:
    with GearmanSocket(gearman_server) as client:
        client.submit("steady", b"x", ptype=PacketType.SUBMIT_JOB_BG)
        result = top("-s", gearman_server.address, "-n", "2", "-d", "0.05")
    assert result.returncode == 0, result
    first, second = result.stdout.decode().split("\ngeartrain top ")
    assert table_rows(first, "FUNCTION")["steady"][-2:] == ["-", "-"]
    assert table_rows(second, "FUNCTION")["steady"][-2:] == ["+0.0", "+0.0"]  # nothing changed in between


def test_unreachable_server(gearman_server: GearmanServer) -> None:
    missing = f"127.0.0.1:{free_port()}"
    result = top("-s", f"{gearman_server.address},{missing}", "--once")
    assert result.returncode == 2
    text = result.stdout.decode()
    assert f"== {missing}  UNREACHABLE: cannot connect" in text and f"== {gearman_server.address}  version" in text


def test_live_mode_in_a_terminal_quits_on_q(gearman_server: GearmanServer) -> None:
    main_fd, terminal_fd = pty.openpty()
    process = subprocess.Popen(
        [*ours("geartrain"), "top", "-s", gearman_server.address, "-d", "0.1"],
        stdin=terminal_fd,
        stdout=terminal_fd,
        stderr=terminal_fd,
        env=environment(),
        close_fds=True,
    )
    os.close(terminal_fd)
    seen = b""
    try:
        deadline = time.monotonic() + 20
        while seen.count(b"\x1b[H\x1b[2J") < 2 and time.monotonic() < deadline:  # two frames drawn
            if select.select([main_fd], [], [], 0.5)[0]:
                seen += os.read(main_fd, 65536)
        assert seen.count(b"\x1b[H\x1b[2J") >= 2, seen
        assert b"\x1b[?1049h" in seen and gearman_server.address.encode() in seen
        os.write(main_fd, b"q")
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main_fd)


def _snapshot(taken: float, functions: list[FunctionStatus], error: str | None = None) -> ServerSnapshot:
    return ServerSnapshot("s:1", taken, functions, [PriorityStatus("a", 1, 2, 3, 1)], [], "v", 1, error)


def test_rates_between_snapshots() -> None:
    before = _snapshot(10.0, [FunctionStatus("a", total=10, running=2, workers=1)])
    after = _snapshot(12.0, [FunctionStatus("a", 6, 4, 1), FunctionStatus("b", 4, 0, 0)])
    a, b = function_rows(after, before)
    assert (a.name, a.queued, a.running, a.queued_rate, a.running_rate) == ("a", 2, 4, -3.0, 1.0)
    assert (a.high, a.normal, a.low) == (1, 2, 3)
    assert (b.name, b.queued_rate, b.high) == ("b", 2.0, None)  # new since the last frame: counted from 0
    assert function_rows(after)[0].queued_rate is None
    assert function_rows(after, _snapshot(9.0, [], error="down"))[0].queued_rate is None


def test_a_frame_is_cut_to_the_terminal() -> None:
    workers = [WorkerInfo(n, "127.0.0.1", f"w{n}", ("a",)) for n in range(50)]
    snapshot = ServerSnapshot("s:1", 1.0, [FunctionStatus("a", 0, 0, 50)], [], workers, "v", None)
    frame = render_frame([snapshot], {}, delay=1, height=20)
    lines = frame.splitlines()
    assert len(lines) == 20 and lines[-1].startswith("... ") and "more lines" in lines[-1]
    assert len(render_frame([snapshot], {}, delay=1).splitlines()) > 50


def test_sorting_functions() -> None:
    functions = [FunctionStatus("a", 1, 0, 2), FunctionStatus("b", 5, 1, 0), FunctionStatus("c", 3, 0, 2)]
    snapshot = ServerSnapshot("s:1", 1.0, functions, [], [], "v", None)

    def order(sort: str) -> list[str]:
        return list(table_rows(render_frame([snapshot], {}, delay=1, sort=sort), "FUNCTION"))

    assert order("name") == ["a", "b", "c"]
    assert order("queued") == ["b", "c", "a"]
    assert order("running") == ["b", "a", "c"]
    assert order("workers") == ["a", "c", "b"]
    result = top("-s", "127.0.0.1:1", "--once", "--sort", "bogus")
    assert result.returncode == 2 and b"invalid choice" in result.stderr
