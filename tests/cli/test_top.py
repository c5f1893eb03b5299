"""`geartrain top` against real servers with real jobs, its live mode in a pseudo-terminal, and its arithmetic."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clitools import environment, ours, run

from geartrain.admin.monitor import FunctionCounters, FunctionRow, ServerSnapshot, function_rows, merge_rows
from geartrain.admin.records import FunctionStatus, PriorityStatus, WorkerInfo
from geartrain.cli.top import View, age, press, render_frame
from servers import GearmanServer, GearmanSocket, PacketType, admin, free_port, start_server, wait_until


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
        #                         QUEUED HIGH NORMAL LOW PENDING RUNNING WORKERS IN/S OUT/S (OLDEST)
        assert functions["resize"][:-1] == ["2", "0", "2", "0", "0", "1", "1", "-", "-"]
        assert functions["thumbs"][:-1] == ["1", "1", "0", "0", "0", "0", "0", "-", "-"]
        # How long the longest-waiting job has waited: geartrain's counters only (gearmand has none).
        oldest = "-" if gearman_server.name == "gearmand" else functions["resize"][-1]
        assert oldest == "-" or (oldest.endswith("s") and oldest[:-1].isdigit())
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
    assert table_rows(first, "FUNCTION")["steady"][-3:-1] == ["-", "-"]  # IN/S, OUT/S: nothing to compare with
    expected = ["-", "-"] if gearman_server.name == "gearmand" else ["0.0", "0.0"]  # nothing moved in between
    assert table_rows(second, "FUNCTION")["steady"][-3:-1] == expected


def test_jobs_per_second_in_and_out_from_the_servers_counters(gearman_server: GearmanServer) -> None:
    if gearman_server.name == "gearmand":
        pytest.skip("gearmand keeps no counters: IN/S and OUT/S show -")
    process = subprocess.Popen(
        [*ours("geartrain"), "top", "-s", gearman_server.address, "-n", "2", "-d", "3", "--no-workers"],
        stdout=subprocess.PIPE,
        env=environment(),
    )
    try:
        assert process.stdout is not None
        seen = b""
        while b"(no functions)" not in seen:  # the first frame is out: what follows counts for the second
            chunk = process.stdout.read1(65536)
            assert chunk, "top ended before its first frame"
            seen += chunk
        with GearmanSocket(gearman_server) as client, GearmanSocket(gearman_server) as worker:
            worker.send(PacketType.CAN_DO, b"busy")
            for n in range(6):
                client.submit("busy", b"%d" % n, ptype=PacketType.SUBMIT_JOB_BG)
            for _ in range(4):
                worker.send(PacketType.WORK_COMPLETE, worker.grab().args[0], b"")
            worker.sync()
        out, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    busy = table_rows(out.decode().split("\ngeartrain top ")[-1], "FUNCTION")["busy"]
    queued, in_rate, out_rate = int(busy[0]), float(busy[-3]), float(busy[-2])
    # 6 in and 4 out between two frames at least 3 s apart: at most 2 and 1.3 per second, in a ratio of 3 to 2.
    assert queued == 2 and 0 < in_rate <= 2.0 and 0 < out_rate <= 1.4, busy
    assert abs(in_rate / out_rate - 1.5) < 0.2, busy


def test_several_servers_merged_or_per_server(tmp_path: Path) -> None:
    first, second = start_server("geartrain", tmp_path), start_server("geartrain", tmp_path)
    try:
        for server, count in ((first, 3), (second, 2)):
            with GearmanSocket(server) as client:
                for n in range(count):
                    client.submit("resize", b"%d" % n, ptype=PacketType.SUBMIT_JOB_BG)
                client.submit(f"only-{count}", b"x", ptype=PacketType.SUBMIT_JOB_HIGH_BG)
        with GearmanSocket(first) as worker:
            worker.send(PacketType.SET_CLIENT_ID, b"w-first")
            worker.send(PacketType.CAN_DO, b"resize")
            worker.sync()
            merged = top("-s", first.address, "-s", second.address, "--once").stdout.decode()
            split = top("-s", f"{first.address},{second.address}", "--once", "--per-server").stdout.decode()
    finally:
        first.stop()
        second.stop()
    assert f"== {first.address}  version" in merged and f"== {second.address}  version" in merged
    rows = table_rows(merged, "FUNCTION")
    #                 SERVERS QUEUED HIGH NORMAL LOW PENDING RUNNING WORKERS
    assert rows["resize"][:8] == ["2", "5", "0", "5", "0", "0", "0", "1"]
    assert rows["only-3"][:3] == ["1", "1", "1"]
    workers = table_rows(merged, "SERVER")
    assert [cells[2:] for cells in workers.values()] == [["w-first", "resize"]]

    lines = split[split.index("FUNCTION") :].splitlines()
    per_server = [line.split()[:3] for line in lines[1:] if line.startswith("resize")]
    assert per_server == sorted([["resize", first.address, "3"], ["resize", second.address, "2"]])


def test_jobs_out_of_a_retry_backoff_are_pending_so_the_columns_add_up(tmp_path: Path) -> None:
    """The `QUEUED 1` with 0/0/0 by priority of issue 16: a job waiting out its backoff is counted by `status`
    but is in no priority queue; it shows as PENDING."""
    policy = tmp_path / "policy.toml"
    policy.write_text('[functions.flaky]\nretries = 3\nbackoff = "fixed"\nbackoff_base = "1h"\n')
    port = free_port()
    command = [sys.executable, "-m", "geartrain", "server", "--listen", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--store", "memory", "--policy-file", str(policy)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment(),
    )
    address = f"127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(address), timeout=30, message="the server to start")
        with GearmanSocket(address) as client, GearmanSocket(address) as worker:
            client.submit("flaky", b"x", ptype=PacketType.SUBMIT_JOB_BG)
            worker.send(PacketType.CAN_DO, b"flaky")
            worker.send(PacketType.WORK_FAIL, worker.grab().args[0])
            worker.sync()
            text = top("-s", address, "--once", "--no-workers").stdout.decode()
    finally:
        server.terminate()
        server.wait(10)
    #                                   QUEUED HIGH NORMAL LOW PENDING RUNNING
    assert table_rows(text, "FUNCTION")["flaky"][:6] == ["1", "0", "0", "0", "1", "0"]
    assert "1 queued  0 running" in text


def _answers(address: str) -> bool:
    try:
        return admin(address, "version").startswith("OK")
    except OSError:
        return False


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
        os.write(main_fd, b"s")  # sort by the next column: drawn again at once
        while b"sort: server" not in seen and time.monotonic() < deadline:
            if select.select([main_fd], [], [], 0.5)[0]:
                seen += os.read(main_fd, 65536)
        assert b"sort: server" in seen
        os.write(main_fd, b"q")
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main_fd)


def _snapshot(
    taken: float,
    functions: list[FunctionStatus],
    counters: dict[str, FunctionCounters] | None = None,
    error: str | None = None,
    server: str = "s:1",
) -> ServerSnapshot:
    priorities = [PriorityStatus("a", 1, 2, 3, 1)]
    return ServerSnapshot(server, taken, functions, priorities, [], "v", 1, error, counters=counters)


def test_rates_between_snapshots() -> None:
    before = _snapshot(10.0, [FunctionStatus("a", 10, 2, 1)], {"a": FunctionCounters(100, 90, 5.0)})
    after = _snapshot(
        12.0,
        [FunctionStatus("a", 10, 2, 1), FunctionStatus("b", 4, 0, 0)],
        {"a": FunctionCounters(110, 93, 7.0), "b": FunctionCounters(4, 0, 1.5)},
    )
    a, b = function_rows(after, before)
    assert (a.name, a.queued, a.running, a.in_rate, a.out_rate, a.oldest) == ("a", 8, 2, 5.0, 1.5, 7.0)
    assert (a.high, a.normal, a.low, a.pending) == (1, 2, 3, 2)  # 8 queued: 6 by priority, 2 in none
    assert (b.name, b.in_rate, b.high, b.pending) == ("b", 2.0, None, None)  # new since the last frame: from 0
    assert function_rows(after)[0].in_rate is None
    assert function_rows(after, _snapshot(9.0, [], error="down"))[0].in_rate is None
    gearmand = _snapshot(14.0, [FunctionStatus("a", 10, 2, 1)])
    assert function_rows(gearmand, after)[0].in_rate is None  # no counters: no rates
    skewed = _snapshot(14.0, [FunctionStatus("a", 5, 2, 1)])  # status read after a job left the queue
    assert (function_rows(skewed)[0].queued, function_rows(skewed)[0].pending) == (6, 0)


def test_merged_rows_sum_and_keep_the_longest_wait() -> None:
    rows = [
        FunctionRow("a", 3, 1, 2, 1, 2, 0, 0, 1.0, 0.5, 4.0, "s:1"),
        FunctionRow("a", 2, 0, 1, None, None, None, None, None, None, None, "s:2"),  # gearmand
        FunctionRow("b", 1, 0, 0, 0, 1, 0, 0, 0.0, 0.0, 9.0, "s:2"),
    ]
    a, b = merge_rows(rows)
    assert (a.queued, a.running, a.workers, a.high, a.in_rate, a.oldest, a.servers) == (5, 1, 3, 1, 1.0, 4.0, 2)
    assert (b.name, b.servers, b.oldest) == ("b", 1, 9.0)
    assert merge_rows([rows[1]])[0].in_rate is None


def test_ages() -> None:
    assert [age(s) for s in (None, 0.4, 59, 61, 3599, 3600 * 2 + 65, 86400 * 3 + 3600 * 4)] == [
        "-",
        "0s",
        "59s",
        "1m01s",
        "59m59s",
        "2h01m",
        "3d04h",
    ]


def test_a_frame_is_cut_to_the_terminal() -> None:
    workers = [WorkerInfo(n, "127.0.0.1", f"w{n}", ("a",)) for n in range(50)]
    snapshot = ServerSnapshot("s:1", 1.0, [FunctionStatus("a", 0, 0, 50)], [], workers, "v", None)
    frame = render_frame([snapshot], {}, delay=1, height=20)
    lines = frame.splitlines()
    assert len(lines) == 20 and lines[-1].startswith("... ") and "more lines" in lines[-1]
    assert len(render_frame([snapshot], {}, delay=1).splitlines()) > 50


def test_sorting_functions() -> None:
    functions = [FunctionStatus("a", 1, 0, 2), FunctionStatus("b", 5, 1, 0), FunctionStatus("c", 3, 0, 2)]
    counters = {
        "a": FunctionCounters(10, 10, None),
        "b": FunctionCounters(5, 1, 30.0),
        "c": FunctionCounters(1, 8, 2.0),
    }
    previous = ServerSnapshot("s:1", 0.0, functions, [], [], "v", None, counters={})
    snapshot = ServerSnapshot("s:1", 1.0, functions, [], [], "v", None, counters=counters)

    def order(sort: str, reverse: bool = False) -> list[str]:
        frame = render_frame([snapshot], {"s:1": previous}, delay=1, sort=sort, reverse=reverse)
        return list(table_rows(frame, "FUNCTION"))

    assert order("name") == ["a", "b", "c"]
    assert order("queued") == ["b", "c", "a"]
    assert order("running") == ["b", "a", "c"]
    assert order("workers") == ["a", "c", "b"]
    assert order("in") == ["a", "b", "c"]
    assert order("out") == ["a", "c", "b"]
    assert order("oldest") == ["b", "c", "a"]  # a has none waiting: last
    assert order("oldest", reverse=True) == ["a", "c", "b"]
    assert order("name", reverse=True) == ["c", "b", "a"]
    result = top("-s", "127.0.0.1:1", "--once", "--sort", "bogus")
    assert result.returncode == 2 and b"invalid choice" in result.stderr


def test_keys_change_the_sort_and_the_layout() -> None:
    view = View()
    assert not press(view, "s") and view.sort == "server"
    assert not press(view, "s") and view.sort == "queued"
    press(view, "r")
    press(view, "m")
    assert (view.reverse, view.per_server) == (True, True)
    assert press(view, "q")
