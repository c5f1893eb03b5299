"""`geartrain submit`, `geartrain work` and `geartrain admin` against geartrain and the C gearmand."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from clitools import Background, Programs, ours, run

from servers import GearmanServer, GearmanSocket, PacketType, free_port, start_server, wait_until


def geartrain(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return run([*ours("geartrain"), *args], input=input)


def work(programs: Programs, server: GearmanServer, *args: str) -> Background:
    return programs.start("geartrain-work", [*ours("geartrain"), "work", "-s", server.address, *args])


@pytest.fixture
def second_server(tmp_path: Path) -> Iterator[GearmanServer]:
    workdir = tmp_path / "second"
    workdir.mkdir()
    server = start_server("geartrain", workdir)
    try:
        yield server
    finally:
        server.stop()


def test_usage_lists_the_commands() -> None:
    result = geartrain("--help")
    assert result.returncode == 0
    for command in (b"server", b"submit", b"work", b"admin"):
        assert b"\n  " + command + b" " in result.stdout


def test_work_and_submit(gearman_server: GearmanServer, programs: Programs) -> None:
    worker = work(programs, gearman_server, "--count", "2", "up", "--", "tr", "a-z", "A-Z")
    result = geartrain("submit", "-s", gearman_server.address, "up", "hello", "world")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"HELLOWORLD", b""), result
    assert worker.wait() == 0, worker.stderr


def test_submit_json(gearman_server: GearmanServer, events_worker: Background) -> None:
    result = geartrain("submit", "-s", gearman_server.address, "--json", "chatty", "x")
    assert result.returncode == 0, result
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["status"] == "complete" and record["result"] == "R\n"
    assert (record["data"], record["warnings"], record["progress"]) == (["d1", "d2\n"], ["w1"], [1, 4])
    assert record["server"] == gearman_server.address and record["handle"]

    result = geartrain("submit", "-s", gearman_server.address, "--json", "fail", "x")
    assert result.returncode == 1
    assert json.loads(result.stdout)["status"] == "failed"

    result = geartrain("submit", "-s", gearman_server.address, "--json", "--lines", "up", input=b"a\nb\n")
    assert [json.loads(line)["result"] for line in result.stdout.splitlines()] == ["A", "B"]


def test_submit_refused_by_a_full_queue(gearman_server: GearmanServer) -> None:
    assert geartrain("admin", "-s", gearman_server.address, "create-function", "small").returncode == 0
    assert geartrain("admin", "-s", gearman_server.address, "maxqueue", "small", "1").returncode == 0
    assert geartrain("submit", "-s", gearman_server.address, "-b", "small", "one").returncode == 0
    result = geartrain("submit", "-s", gearman_server.address, "-b", "--json", "small", "two")
    assert result.returncode == 2, result
    assert json.loads(result.stdout)["status"] == "refused"


def test_work_lines_and_concurrency(gearman_server: GearmanServer, programs: Programs) -> None:
    for n in range(2):
        assert geartrain("submit", "-s", gearman_server.address, "-b", "twice", f"job {n}").returncode == 0
    worker = work(programs, gearman_server, "-j", "2", "-c", "2", "twice")
    assert worker.wait() == 0, worker.stderr
    assert sorted(worker.stdout.split(b"job ")) == [b"", b"0", b"1"]

    worker = work(programs, gearman_server, "--lines", "-c", "1", "lines", "--", "printf", "a\\nb\\n")
    result = geartrain("submit", "-s", gearman_server.address, "--json", "lines", "x")
    assert json.loads(result.stdout)["data"] == ["a", "b"]
    assert worker.wait() == 0, worker.stderr


def test_work_gives_up_on_an_unreachable_server() -> None:
    result = geartrain("work", "-s", f"127.0.0.1:{free_port()}", "--retry-for", "0.3", "x")
    assert result.returncode == 2
    assert b"geartrain work: giving up" in result.stderr


def test_admin_several_servers(gearman_server: GearmanServer, second_server: GearmanServer) -> None:
    for server in (gearman_server, second_server):
        with GearmanSocket(server) as client:
            client.submit("queued", b"x", ptype=PacketType.SUBMIT_JOB_BG)
    result = geartrain("admin", "-s", gearman_server.address, "-s", second_server.address, "--json", "status")
    assert result.returncode == 0, result
    document = json.loads(result.stdout)
    assert [entry["server"] for entry in document] == [gearman_server.address, second_server.address]
    for entry in document:
        (row,) = [row for row in entry["result"] if row["name"] == "queued"]
        assert row == {"name": "queued", "total": 1, "running": 0, "workers": 0, "queued": 1}
    after = geartrain("admin", "-s", gearman_server.address, "-s", second_server.address, "status", "--json")
    assert json.loads(after.stdout) == document  # --json after the command works the same

    text = geartrain("admin", "-s", f"{gearman_server.address},{second_server.address}", "status").stdout.decode()
    assert text.startswith(f"== {gearman_server.address}\nFUNCTION")
    assert f"== {second_server.address}\n" in text


def test_admin_errors(gearman_server: GearmanServer) -> None:
    missing = f"127.0.0.1:{free_port()}"
    result = geartrain("admin", "-s", gearman_server.address, "-s", missing, "--json", "version")
    assert result.returncode == 2
    ok, failed = json.loads(result.stdout)
    assert ok["result"] and "error" not in ok
    assert failed["result"] is None and "cannot connect" in failed["error"]

    result = geartrain("admin", "-s", gearman_server.address, "cancel", "H:nosuch:1")
    assert (result.returncode, result.stdout) == (1, b"H:nosuch:1: unknown job\n"), result

    result = geartrain("admin", "-s", gearman_server.address, "drop-function", "nosuch")
    assert result.returncode == 1 and b"the server answered" in result.stderr, result


def test_admin_listings(gearman_server: GearmanServer) -> None:
    with GearmanSocket(gearman_server) as worker:
        worker.send(PacketType.SET_CLIENT_ID, b"w-1")
        worker.send(PacketType.CAN_DO, b"listed")
        worker.sync()
        with GearmanSocket(gearman_server) as client:
            handle = client.submit("listed", b"x", unique="key-1", ptype=PacketType.SUBMIT_JOB_BG)
        server = ["-s", gearman_server.address, "--json"]
        workers = json.loads(geartrain("admin", *server, "workers").stdout)[0]["result"]
        assert {"fd", "address", "client_id", "functions"} <= set(workers[0])
        assert ["listed"] in [row["functions"] for row in workers if row["client_id"] == "w-1"]
        jobs = json.loads(geartrain("admin", *server, "jobs").stdout)[0]["result"]
        assert [row["handle"] for row in jobs] == [handle]
        assert json.loads(geartrain("admin", *server, "unique-jobs").stdout)[0]["result"] == ["key-1"]
        (row,) = json.loads(geartrain("admin", *server, "priority-status").stdout)[0]["result"]
        assert (row["name"], row["normal"], row["workers"]) == ("listed", 1, 1)
        assert isinstance(json.loads(geartrain("admin", *server, "getpid").stdout)[0]["result"], int)
        text = geartrain("admin", "-s", gearman_server.address, "workers").stdout
        assert text.startswith(b"FD") and b"w-1" in text


def test_admin_shutdown(second_server: GearmanServer) -> None:
    result = geartrain("admin", "-s", second_server.address, "shutdown", "--graceful")
    assert (result.returncode, result.stdout) == (0, b"OK\n"), result
    wait_until(lambda: second_server.process.poll() is not None, message="the server to exit")
    assert second_server.process.returncode == 0


def test_submit_in_and_at_submit_a_delayed_background_job(gearman_server: GearmanServer) -> None:
    import time

    if gearman_server.name == "gearmand":
        pytest.skip("gearmand fires epoch jobs late, on its own schedule (gearmand #101)")
    before = time.time()
    result = geartrain("submit", "-s", gearman_server.address, "-v", "--in", "2s", "later", "x")
    assert result.returncode == 0 and result.stdout.startswith(b"Task created: "), result
    with GearmanSocket(gearman_server.address, timeout=15) as worker:
        worker.send(PacketType.CAN_DO, b"later")
        worker.send(PacketType.GRAB_JOB)
        assert worker.recv().type == PacketType.NO_JOB  # not before its time
        worker.send(PacketType.PRE_SLEEP)
        worker.expect(PacketType.NOOP)
        assert time.time() >= int(before) + 2
        assert worker.grab().args[2] == b"x"
        # --at: an RFC 3339 time, here two seconds from now with an offset of its own.
        from datetime import datetime, timedelta, timezone

        at = datetime.fromtimestamp(int(time.time()) + 2, timezone(timedelta(hours=-5))).isoformat()
        result = geartrain("submit", "-s", gearman_server.address, "--at", at, "at", "y")
        assert result.returncode == 0, result
        worker.send(PacketType.CAN_DO, b"at")
        worker.send(PacketType.GRAB_JOB)
        assert worker.recv().type == PacketType.NO_JOB
        assert worker.grab().args[2] == b"y"
        assert time.time() >= datetime.fromisoformat(at).timestamp()  # never early
    for flags in (["--in", "soon"], ["--at", "2026-12-24 18:00"], ["--in", "1s", "--at", "2026-12-24T18:00Z"]):
        result = geartrain("submit", "-s", gearman_server.address, *flags, "later", "x")
        assert result.returncode == 2, result
        assert result.stderr.splitlines()[-1].startswith(b"geartrain submit: error: "), result  # after the usage


def test_admin_lifecycle_commands(tmp_path: Path) -> None:
    import sys

    from servers import admin_raw

    policy = tmp_path / "policy.toml"
    policy.write_text('[functions.f]\nresult_ttl = "1h"\n[[cron]]\nfunction = "r"\nschedule = "@daily"\n')
    port = free_port()
    command = [sys.executable, "-m", "geartrain", "server", "--port", str(port), "--store", "memory"]
    server = subprocess.Popen([*command, "--policy-file", str(policy)], stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"

    def up() -> bool:
        try:
            return admin_raw(address, "version", timeout=1).startswith(b"OK")
        except OSError:
            return False

    try:
        wait_until(up, timeout=30, message="the server to start")
        with GearmanSocket(address) as client, GearmanSocket(address) as worker:
            client.send(PacketType.SUBMIT_JOB_BG, b"f", b"u", b"x")
            handle = client.expect(PacketType.JOB_CREATED).body.decode()
            worker.send(PacketType.CAN_DO, b"f")
            worker.send(PacketType.WORK_EXCEPTION, worker.grab().args[0], b"boom")
            worker.sync()
        listed = geartrain("admin", "-s", address, "--json", "dead")
        assert listed.returncode == 0, listed
        [entry] = json.loads(listed.stdout)[0]["result"]
        assert (entry["handle"], entry["function"], entry["attempts"], entry["error"]) == (handle, "f", 1, "boom")
        assert (
            json.loads(geartrain("admin", "-s", address, "--json", "result", handle).stdout)[0]["result"]["status"]
            == "exception"
        )
        # The names for them: `geartrain result HANDLE`, `geartrain dead [list|show|retry|delete]`.
        shortcut = json.loads(geartrain("result", handle, "-s", address, "--json").stdout)[0]["result"]
        assert (shortcut["status"], shortcut["data"]) == ("exception", "boom")
        [listed_again] = json.loads(geartrain("dead", "list", "f", "--json", "-s", address).stdout)[0]["result"]
        assert listed_again["handle"] == handle
        assert json.loads(geartrain("dead", "-s", address, "--json", "show", handle).stdout)[0]["result"]["data"] == "x"
        assert geartrain("admin", "-s", address, "pause", "g").stdout == b"OK\n"
        assert geartrain("admin", "-s", address, "paused").stdout.split() == [b"FUNCTION", b"g"]
        assert b"@daily" in geartrain("admin", "-s", address, "cron").stdout
        assert geartrain("dead", "retry", "all", "-s", address).stdout == b"retried: 1\n"
        assert geartrain("dead", "delete", "all", "-s", address).stdout.split()[-1] == b"0"
    finally:
        server.terminate()
        server.wait(10)


def test_admin_lifecycle_commands_without_a_policy_file_say_so(gearman_server: GearmanServer) -> None:
    if gearman_server.name == "gearmand":
        pytest.skip("gearmand has no job life cycle")
    result = geartrain("admin", "-s", gearman_server.address, "dead")
    assert result.returncode == 1 and b"NO_POLICY_FILE" in result.stderr and result.stderr.count(b"\n") == 1, result


def test_the_life_cycle_shortcuts_are_admin_commands_with_admins_options_anywhere() -> None:
    from geartrain.cli.shortcuts import admin_argv

    assert admin_argv("result", ["H:x:1", "-s", "h:1", "--json"]) == ["-s", "h:1", "--json", "result", "H:x:1"]
    assert admin_argv("dead", []) == ["dead"]
    assert admin_argv("dead", ["resize", "-t", "3"]) == ["-t", "3", "dead", "resize"]
    assert admin_argv("dead", ["list", "resize"]) == ["dead", "resize"]
    assert admin_argv("dead", ["--server=h:1", "show", "H:x:1"]) == ["--server=h:1", "dead-show", "H:x:1"]
    assert admin_argv("dead", ["retry", "all", "-s", "a", "-s", "b"]) == ["-s", "a", "-s", "b", "dead-retry", "all"]
    assert admin_argv("dead", ["delete", "resize"]) == ["dead-delete", "resize"]
