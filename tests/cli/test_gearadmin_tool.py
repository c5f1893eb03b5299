"""Our `gearadmin` next to libgearman's, against geartrain and the C gearmand: same options, same output."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from clitools import at, ours, outcome, run, theirs

from servers import GearmanServer, GearmanSocket, PacketType, free_port

interop = pytest.mark.interop


def both(server: GearmanServer | None, *args: str) -> tuple[tuple[int, bytes, bytes], ...]:
    """(C outcome, our outcome) of the same command line."""
    where = at(server) if server else []
    c_program, our_program = theirs("gearadmin"), ours("gearadmin")
    return (
        outcome(run([*c_program, *where, *args]), c_program),
        outcome(run([*our_program, *where, *args]), our_program),
    )


@pytest.fixture
def busy_server(gearman_server: GearmanServer) -> Iterator[GearmanServer]:
    """The server with a registered worker (id worker-1, f1 and f2) that never grabs, and three queued jobs."""
    with GearmanSocket(gearman_server) as worker, GearmanSocket(gearman_server) as client:
        worker.send(PacketType.SET_CLIENT_ID, b"worker-1")
        worker.send(PacketType.CAN_DO, b"f1")
        worker.send(PacketType.CAN_DO, b"f2")
        worker.sync()
        client.submit("f1", b"one", unique="u1", ptype=PacketType.SUBMIT_JOB_BG)
        client.submit("f1", b"two", ptype=PacketType.SUBMIT_JOB_LOW_BG)
        client.submit("f2", b"three", unique="u3", ptype=PacketType.SUBMIT_JOB_HIGH_BG)
        yield gearman_server


@pytest.mark.parametrize(
    "args",
    [
        ["--status"],
        ["--priority-status"],
        ["--show-jobs"],
        ["--show-unique-jobs"],
        ["--getpid"],
        ["--server-version"],
        ["--server-verbose"],
        ["--cancel-job", "H:nosuch:1"],
        ["--drop-function", "nosuch"],
        ["--drop-function", "f1"],  # refused: a worker has it
        ["--stat"],  # an unambiguous prefix
        ["--create-function", "cd", "--drop-function", "cd"],  # created, then dropped: the C tool's order
        ["--getpid", "--status", "--server-version", "--show-jobs", "--server-verbose", "--priority-status"],
        ["--status", "extra", "words"],
    ],
    ids=lambda args: " ".join(args),
)
@interop
def test_output_is_the_c_tools(busy_server: GearmanServer, args: list[str]) -> None:
    c_side, our_side = both(busy_server, *args)
    assert our_side == c_side


def _worker_lines(text: bytes) -> list[bytes]:
    # Each gearadmin run lists its own admin connection too, with whatever fd the server gave it: keep the worker.
    return [line for line in text.splitlines() if b"worker-1" in line]


@interop
def test_workers(busy_server: GearmanServer) -> None:
    c_side, our_side = both(busy_server, "--workers")
    assert (our_side[0], our_side[2]) == (c_side[0], c_side[2]) == (0, b"")
    assert our_side[1].endswith(b"\n.\n")
    assert _worker_lines(our_side[1]) == _worker_lines(c_side[1])
    assert _worker_lines(our_side[1])[0].endswith(b" worker-1 : f2 f1")


@interop
def test_create_cancel_and_drop(busy_server: GearmanServer) -> None:
    c_program, our_program = theirs("gearadmin"), ours("gearadmin")
    for program, name in ((c_program, "made-by-c"), (our_program, "made-by-us")):
        result = run([*program, *at(busy_server), "--create-function", name])
        assert (result.returncode, result.stdout, result.stderr) == (0, b"OK\n", b""), result
    status = run([*our_program, *at(busy_server), "--status"]).stdout
    assert b"made-by-c\t0\t0\t0\n" in status and b"made-by-us\t0\t0\t0\n" in status
    with GearmanSocket(busy_server) as client:
        handles = [client.submit("to-cancel", b"x", ptype=PacketType.SUBMIT_JOB_BG) for _ in range(2)]
    for program, handle in zip((c_program, our_program), handles, strict=True):
        result = run([*program, *at(busy_server), "--cancel-job", handle])
        assert (result.returncode, result.stdout, result.stderr) == (0, b"OK\n", b""), result
    for program, name in ((c_program, "made-by-us"), (our_program, "made-by-c")):
        result = run([*program, *at(busy_server), "--drop-function", name])
        assert (result.returncode, result.stdout, result.stderr) == (0, b"OK\n", b""), result


@interop
@pytest.mark.parametrize(
    "args",
    [[], ["--foo"], ["-x"], ["--status", "--status"], ["--cancel-job"], ["-p"], ["--server-version=x"], ["--status="]],
    ids=["nothing", "unknown-long", "unknown-short", "twice", "missing-value", "missing-port", "no-value", "empty"],
)
def test_usage_errors_match(args: list[str]) -> None:
    c_side, our_side = both(None, *args)
    assert (our_side[0], our_side[2]) == (c_side[0], c_side[2]) == (1, b"")
    # The first line is the same; our option list has --shutdown and --shutdown-graceful on top of the C one.
    assert our_side[1].splitlines()[0] == c_side[1].splitlines()[0]
    assert set(c_side[1].splitlines()) <= set(our_side[1].splitlines())


@interop
def test_help() -> None:
    c_side, our_side = both(None, "--help")
    assert our_side[0] == c_side[0] == 0
    assert set(c_side[1].splitlines()) <= set(our_side[1].splitlines())
    assert b"--shutdown-graceful" in our_side[1]
    assert b"Differences from libgearman's gearadmin" in our_side[1]


@interop
def test_connection_failure_names_the_address() -> None:
    port = free_port()
    c_side, our_side = both(None, "-h", "127.0.0.1", "-p", str(port), "--status")
    assert c_side == (1, b"", b"Error: Error connecting to 127.0.0.1.\n\n")
    assert our_side == (1, b"", b"Error: cannot connect to 127.0.0.1:%d: Connection refused\n" % port)


def test_ssl_against_a_plain_server_fails_cleanly(busy_server: GearmanServer) -> None:
    """-S speaks TLS (tests/security covers it against a TLS server); a plain server is a clear error."""
    result = run([*ours("gearadmin"), *at(busy_server), "-S", "--status"])
    assert (result.returncode, result.stdout) == (1, b""), result
    assert result.stderr.startswith(b"Error: cannot connect to") and b"SSL" in result.stderr


def test_shutdown(gearman_server: GearmanServer) -> None:
    result = run([*ours("gearadmin"), *at(gearman_server), "--shutdown-graceful"])
    if gearman_server.name == "gearmand":  # removed from gearmand in 1.1.15
        assert result.stderr == b"Error: UNKNOWN_COMMAND Unknown+server+commandshutdown\r\n"
        assert (result.returncode, result.stdout) == (0, b""), result
        return
    assert (result.returncode, result.stdout, result.stderr) == (0, b"OK\n", b""), result
    assert gearman_server.process.wait(20) == 0


def test_shutdown_options_exclude_each_other() -> None:
    result = run([*ours("gearadmin"), "--shutdown", "--shutdown-graceful"])
    assert result.returncode == 1
    assert b"cannot be used together" in result.stdout.splitlines()[0]


def test_waits_for_the_whole_listing(busy_server: GearmanServer) -> None:
    """A listing of many rows comes in several reads; it is printed whole."""
    with GearmanSocket(busy_server) as client:
        for n in range(300):
            client.send(PacketType.SUBMIT_JOB_BG, b"many", b"unique-%d" % n, b"x")
        for _ in range(300):
            client.expect(PacketType.JOB_CREATED)
    result = run([*ours("gearadmin"), *at(busy_server), "--show-unique-jobs"])
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[-1] == b"." and len([line for line in lines if line.startswith(b"unique-")]) == 300


@interop
def test_not_our_c_tool() -> None:
    """Sanity: the C tool is libgearman's (its --help has no --shutdown), ours is the venv's."""
    result = subprocess.run([*theirs("gearadmin"), "--help"], capture_output=True, timeout=30)
    assert b"--shutdown" not in result.stdout
