"""Our `gearman` (client and worker mode) against geartrain and the C gearmand, next to libgearman's `gearman`.

Where the two tools should agree, both run with the same flags against the same server and worker, and their exit
status, stdout and stderr are compared byte for byte. Where ours deliberately differs (docs/cli.md), the test
asserts our behaviour, and where it is cheap, what the C tool does instead.
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest
from clitools import Background, Programs, at, ours, outcome, run, theirs

from servers import GearmanServer, StatusRow, free_port, parse_status, require_program, status_of, wait_until

interop = pytest.mark.interop
HANDLE = rb"[^\s]+:\d+"


def gearman(server: GearmanServer, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return run([*ours("gearman"), *at(server), *args], input=input)


def c_gearman(server: GearmanServer, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return run([*theirs("gearman"), *at(server), *args], input=input)


def both(server: GearmanServer, *args: str, input: bytes | None = None) -> tuple[tuple[int, bytes, bytes], ...]:
    """(C outcome, our outcome) of the same command line."""
    c_program, our_program = theirs("gearman"), ours("gearman")
    c_result = run([*c_program, *at(server), *args], input=input)
    our_result = run([*our_program, *at(server), *args], input=input)
    return outcome(c_result, c_program), outcome(our_result, our_program)


def start_worker(programs: Programs, server: GearmanServer, tool: list[str], *args: str) -> Background:
    return programs.start("worker", [*tool, *at(server), "-w", *args])


def status(server: GearmanServer) -> dict[str, StatusRow]:
    result = run([*ours("gearadmin"), *at(server), "--status"])
    assert result.returncode == 0, result
    return parse_status(result.stdout.decode())


# ---------------------------------------------------------------------------------------------- the classic example


def test_wc_line_count_with_our_tools(gearman_server: GearmanServer, programs: Programs) -> None:
    """`gearman -w -f wc -- wc -l` and `gearman -f wc < /etc/passwd`, both ours."""
    worker = start_worker(programs, gearman_server, ours("gearman"), "-f", "wc", "-c", "1", "--", "wc", "-l")
    passwd = Path("/etc/passwd").read_bytes()
    result = gearman(gearman_server, "-f", "wc", input=passwd)
    assert (result.returncode, result.stderr) == (0, b""), result
    assert result.stdout.strip() == str(passwd.count(b"\n")).encode()
    assert worker.wait() == 0, worker.stderr


@interop
def test_our_worker_serves_the_c_client_as_the_c_worker_does(gearman_server: GearmanServer, programs: Programs) -> None:
    seen = []
    for tool in (theirs("gearman"), ours("gearman")):
        worker = start_worker(programs, gearman_server, tool, "-f", "up", "-c", "3", "--", "tr", "a-z", "A-Z")
        seen.append(
            [
                outcome(c_gearman(gearman_server, "-f", "up", "hello", "world"), theirs("gearman")),
                outcome(c_gearman(gearman_server, "-f", "up", input=b"all of\nstdin\n"), theirs("gearman")),
            ]
        )
        assert worker.wait() == 0, worker.stderr
    assert seen[0] == seen[1]
    assert seen[1][0] == (0, b"HELLOWORLD", b"")


@interop
def test_the_c_worker_serves_our_client_as_it_serves_the_c_client(
    gearman_server: GearmanServer, programs: Programs
) -> None:
    worker = start_worker(programs, gearman_server, theirs("gearman"), "-f", "rev", "-c", "6", "--", "rev")
    c_side, our_side = both(gearman_server, "-f", "rev", "abc", "xyz")
    assert c_side == our_side == (0, b"cbazyx", b"")
    c_side, our_side = both(gearman_server, "-f", "rev", input=b"line one\nline two\n")
    assert c_side == our_side == (0, b"eno enil\nowt enil\n", b"")
    assert worker.wait() == 0, worker.stderr


# ---------------------------------------------------------------------------------------------- same output as C

SAME_OUTPUT = [
    pytest.param(["-f", "echo", "abc", "def"], None, id="one-job-per-argument"),
    pytest.param(["-f", "echo"], b"all of\nstdin\n", id="stdin-is-one-job"),
    pytest.param(["-n", "-f", "up"], b"one\ntwo\n", id="n-one-job-per-line"),
    pytest.param(["-N", "-f", "up"], b"one\ntwo\n", id="N-newline-stripped"),
    pytest.param(["-s", "-f", "echo"], b"not read", id="s-empty-workload"),
    pytest.param(["-P", "-f", "chatty", "x"], None, id="P-prefix"),
    pytest.param(["-f", "fail", "x"], None, id="failed-job"),
    pytest.param(["-P", "-f", "fail", "x"], None, id="P-failed-job"),
    pytest.param(["-I", "-f", "up", "high"], None, id="I-high"),
    pytest.param(["-L", "-f", "up", "low"], None, id="L-low"),
    pytest.param(["-u", "my-key", "-f", "up", "unique"], None, id="u-unique"),
    pytest.param(["-f", "echo", "--", "-x", "--"], None, id="operands-after-double-dash"),
    pytest.param(["-f", "echo", "first", "-P", "second"], None, id="options-after-operands"),
    pytest.param(["-b", "-f", "up", "queued"], None, id="b-background"),
]


@interop
@pytest.mark.parametrize(("args", "stdin"), SAME_OUTPUT)
def test_client_output_is_the_c_tools(
    gearman_server: GearmanServer, events_worker: Background, args: list[str], stdin: bytes | None
) -> None:
    c_side, our_side = both(gearman_server, *args, input=stdin)
    assert our_side == c_side


@interop
def test_several_functions_each_get_the_workload(gearman_server: GearmanServer, events_worker: Background) -> None:
    c_side, our_side = both(gearman_server, "-P", "-f", "echo", "-f", "up", "abc\n")
    # The two jobs run at once: their outputs may come in either order.
    assert sorted(our_side[1].splitlines()) == sorted(c_side[1].splitlines()) == [b"echo: abc", b"up: ABC"]
    assert our_side[0] == c_side[0] == 0


@interop
def test_gearman_server_variable_wins_over_h_and_p(gearman_server: GearmanServer, events_worker: Background) -> None:
    env = {"GEARMAN_SERVER": gearman_server.address}
    for program in (theirs("gearman"), ours("gearman")):
        result = run([*program, "-h", "nowhere.invalid", "-p", "1", "-f", "up", "via env"], env=env)
        assert (result.returncode, result.stdout, result.stderr) == (0, b"VIA ENV", b""), (program, result)


@interop
@pytest.mark.parametrize(
    "args",
    [["-H"], ["-H", "-f", "x"], [], ["-f", "x", "-x"], ["-x"], ["-H", "-w", "-n"], ["-f", "x", "-c"], ["-b", "-v"]],
    ids=["H", "H-with-f", "nothing", "unknown-option", "unknown-without-f", "H-shows-flags", "missing-value", "no-f"],
)
def test_usage_text_is_the_c_tools(args: list[str]) -> None:
    c_program, our_program = theirs("gearman"), ours("gearman")
    c_side = outcome(run([*c_program, *args]), c_program)
    our_side = outcome(run([*our_program, *args]), our_program)
    assert our_side == c_side


def test_help_documents_the_differences() -> None:
    result = run([*ours("gearman"), "--help"])
    assert result.returncode == 0, result
    assert b"Differences from libgearman's gearman" in result.stdout
    assert b"GEARMAN_SERVER" in result.stdout


# ---------------------------------------------------------------------------------------------- deliberate differences


def test_unreachable_server_exits_2_with_a_message() -> None:
    port = free_port()
    result = run([*ours("gearman"), "-h", "127.0.0.1", "-p", str(port), "-f", "x", "data"])
    assert result.returncode == 2, result
    assert result.stdout == b""
    assert re.fullmatch(rb"gearman: cannot submit the job: .*127\.0\.0\.1:%d.*\n" % port, result.stderr), result


@interop
def test_the_c_client_exits_0_when_the_server_is_unreachable() -> None:
    result = run([*theirs("gearman"), "-h", "127.0.0.1", "-p", str(free_port()), "-f", "x", "data"])
    assert result.returncode == 0 and b"GEARMAN_COULD_NOT_CONNECT" in result.stderr, result


def test_timeout_exits_3(gearman_server: GearmanServer) -> None:
    result = gearman(gearman_server, "-t", "200", "-f", "nobody_serves_this", "x")
    assert (result.returncode, result.stdout) == (3, b""), result
    assert result.stderr == b"gearman: timed out: nothing came from the job server in 200 ms\n"


@interop
def test_the_c_client_exits_0_on_timeout(gearman_server: GearmanServer) -> None:
    c_result = c_gearman(gearman_server, "-t", "200", "-f", "nobody_serves_this", "x")
    assert c_result.returncode == 0 and b"GEARMAN_TIMEOUT" in c_result.stderr, c_result


def test_failed_job_exits_1(gearman_server: GearmanServer, events_worker: Background) -> None:
    result = gearman(gearman_server, "-f", "fail", "x")
    assert (result.returncode, result.stdout, result.stderr) == (1, b"partial\n", b"Job failed\n")


def test_exception_prints_its_text_and_fails(gearman_server: GearmanServer, events_worker: Background) -> None:
    # The C client never asks for exceptions; on gearmand it then hangs (reference §3.7), so it is not run here.
    result = gearman(gearman_server, "-P", "-f", "exc", "x")
    assert (result.returncode, result.stdout) == (1, b""), result
    assert result.stderr == b"exc: ValueError: boom\nexc: Job failed\n"


@interop
def test_zero_denominator_does_not_crash(gearman_server: GearmanServer, events_worker: Background) -> None:
    result = gearman(gearman_server, "-f", "zero", "x")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"0% Complete\nz\n", b"")
    assert c_gearman(gearman_server, "-f", "zero", "x").returncode == -signal.SIGFPE


@interop
def test_large_status_does_not_overflow(gearman_server: GearmanServer, events_worker: Background) -> None:
    assert gearman(gearman_server, "-f", "big", "x").stdout == b"50% Complete\nb\n"
    assert c_gearman(gearman_server, "-f", "big", "x").stdout == b"b\n7% Complete\n"


@interop
def test_status_and_task_created_come_in_order(gearman_server: GearmanServer, events_worker: Background) -> None:
    ours_ = gearman(gearman_server, "-v", "-f", "chatty", "x")
    assert ours_.returncode == 0 and ours_.stderr == b"w1", ours_
    assert re.fullmatch(rb"Task created: " + HANDLE + rb"\nd125% Complete\nd2\nR\n", ours_.stdout), ours_.stdout
    # libgearman's tool buffers its printf() output, so on a pipe it comes after the data.
    c_result = c_gearman(gearman_server, "-v", "-f", "chatty", "x")
    assert re.fullmatch(rb"d1d2\nR\nTask created: " + HANDLE + rb"\n25% Complete\n", c_result.stdout), c_result


@interop
def test_background_with_v_prints_the_handle(gearman_server: GearmanServer) -> None:
    for program in (theirs("gearman"), ours("gearman")):
        result = run([*program, *at(gearman_server), "-v", "-b", "-f", "later", "x"])
        assert result.returncode == 0 and result.stderr == b"", result
        assert re.fullmatch(rb"Task created: " + HANDLE + rb"\n", result.stdout), result


@interop
def test_per_line_worker_output_is_one_line_per_packet(gearman_server: GearmanServer, programs: Programs) -> None:
    command = ["--", "printf", "a\\nb\\nc\\n"]
    worker = start_worker(programs, gearman_server, ours("gearman"), "-n", "-f", "lines", "-c", "2", *command)
    assert c_gearman(gearman_server, "-f", "lines", "x").stdout == b"a\nb\nc\n"
    assert gearman(gearman_server, "-f", "lines", "x").stdout == b"a\nb\nc\n"
    assert worker.wait() == 0, worker.stderr
    worker = start_worker(programs, gearman_server, ours("gearman"), "-N", "-f", "lines", "-c", "1", *command)
    # The last "lines: " is the empty WORK_COMPLETE.
    assert gearman(gearman_server, "-P", "-f", "lines", "x").stdout == b"lines: alines: blines: clines: "
    assert worker.wait() == 0, worker.stderr
    # The C worker sends everything printed so far with every line.
    worker = start_worker(programs, gearman_server, theirs("gearman"), "-n", "-f", "lines", "-c", "1", *command)
    assert c_gearman(gearman_server, "-f", "lines", "x").stdout == b"a\na\nb\na\nb\nc\n"
    assert worker.wait() == 0, worker.stderr


@interop
def test_strip_newline_keeps_a_last_line_without_one(gearman_server: GearmanServer, events_worker: Background) -> None:
    assert gearman(gearman_server, "-N", "-f", "echo", input=b"abc\nxyz").stdout == b"abcxyz"
    assert c_gearman(gearman_server, "-N", "-f", "echo", input=b"abc\nxyz").stdout == b"abcxy"


# ---------------------------------------------------------------------------------------------- worker mode


@interop
def test_failing_command_sends_its_output_then_fails(gearman_server: GearmanServer, programs: Programs) -> None:
    command = ["--", "sh", "-c", "cat; echo partial; exit 3"]
    seen = []
    for tool in (theirs("gearman"), ours("gearman")):
        worker = start_worker(programs, gearman_server, tool, "-f", "sh", "-c", "1", *command)
        seen.append(outcome(c_gearman(gearman_server, "-f", "sh", "in:"), theirs("gearman")))
        assert worker.wait() == 0, worker.stderr
    assert seen[0] == seen[1] == (1, b"in:partial\n", b"Job failed\n")


def test_command_killed_by_a_signal_fails_the_job(gearman_server: GearmanServer, programs: Programs) -> None:
    command = ["--", "sh", "-c", "kill -9 $$"]
    worker = start_worker(programs, gearman_server, ours("gearman"), "-f", "die", "-c", "1", *command)
    result = gearman(gearman_server, "-f", "die", "x")
    assert (result.returncode, result.stderr) == (1, b"Job failed\n"), result
    assert worker.wait() == 0, worker.stderr


def test_command_that_cannot_run_fails_the_job(gearman_server: GearmanServer, programs: Programs) -> None:
    worker = start_worker(programs, gearman_server, ours("gearman"), "-f", "nope", "-c", "1", "--", "/nonexistent/cmd")
    result = gearman(gearman_server, "-f", "nope", "x")
    assert (result.returncode, result.stderr) == (1, b"Job failed\n"), result
    assert worker.wait() == 0
    assert b"gearman: cannot run '/nonexistent/cmd'" in worker.stderr


def test_worker_without_command_prints_the_workload(gearman_server: GearmanServer, programs: Programs) -> None:
    for workload in ("first\n", "second\n", "third\n"):
        assert gearman(gearman_server, "-b", "-f", "later", workload).returncode == 0
    assert status(gearman_server)["later"] == StatusRow(total=3, running=0, workers=0)
    worker = start_worker(programs, gearman_server, ours("gearman"), "-f", "later", "-c", "2")
    assert worker.wait() == 0, worker.stderr
    assert worker.stdout == b"first\nsecond\n"
    wait_until(lambda: status(gearman_server)["later"] == StatusRow(1, 0, 0), message="one job left")


def test_priorities_high_normal_low(gearman_server: GearmanServer, programs: Programs) -> None:
    for flags, workload in ((["-L"], "low\n"), ([], "normal\n"), (["-I"], "high\n")):
        assert gearman(gearman_server, "-b", *flags, "-f", "prio", workload).returncode == 0
    worker = start_worker(programs, gearman_server, ours("gearman"), "-f", "prio", "-c", "3")
    assert worker.wait() == 0, worker.stderr
    assert worker.stdout == b"high\nnormal\nlow\n"


def test_unique_key_coalesces(gearman_server: GearmanServer) -> None:
    for workload in ("first", "second"):
        assert gearman(gearman_server, "-b", "-u", "same-key", "-f", "uq", workload).returncode == 0
    assert gearman(gearman_server, "-b", "-f", "uq", "no key: a fresh UUID each").returncode == 0
    assert gearman(gearman_server, "-b", "-f", "uq", "no key: a fresh UUID each").returncode == 0
    assert status(gearman_server)["uq"].total == 3


def test_unreachable_server_worker_gives_up_with_a_message() -> None:
    port = free_port()
    result = run([*ours("gearman"), "-h", "127.0.0.1", "-p", str(port), "-w", "-f", "x", "--retry-for", "0.5"])
    assert result.returncode == 2, result
    assert b"gearman: cannot connect to 127.0.0.1:%d" % port in result.stderr
    assert result.stderr.endswith(b"gearman: giving up: no job server reachable (127.0.0.1:%d) for 0.5 s\n" % port)


@interop
def test_the_c_worker_counts_connection_errors_as_jobs() -> None:
    # Without -c it prints this error in a tight loop forever; with -c each failure counts as a job.
    result = run([*theirs("gearman"), "-h", "127.0.0.1", "-p", str(free_port()), "-w", "-f", "x", "-c", "3"])
    assert result.returncode == 0, result
    assert result.stderr.count(b"GEARMAN_COULD_NOT_CONNECT") == 3


def test_worker_t_is_an_idle_timeout(gearman_server: GearmanServer) -> None:
    result = gearman(gearman_server, "-w", "-f", "idle", "-t", "200")
    assert (result.returncode, result.stderr) == (3, b"gearman: timed out: no job came in 200 ms\n"), result


def test_pid_file(gearman_server: GearmanServer, programs: Programs, tmp_path: Path) -> None:
    pid_file = tmp_path / "worker.pid"
    worker = start_worker(programs, gearman_server, ours("gearman"), "-f", "pid", "-c", "1", "-i", str(pid_file))
    written = wait_until(lambda: pid_file.exists() and pid_file.read_text().endswith("\n"), message="the pid file")
    assert written and pid_file.read_text() == f"{worker.process.pid}\n"
    assert gearman(gearman_server, "-f", "pid", "x").returncode == 0
    assert worker.wait() == 0, worker.stderr
    assert not pid_file.exists()


def test_ssl_against_a_plain_server_fails_cleanly(gearman_server: GearmanServer) -> None:
    """-S speaks TLS (tests/security covers it against a TLS server); a plain server is a clear error."""
    result = run([*ours("gearman"), "-S", "-h", gearman_server.host, "-p", str(gearman_server.port), "-f", "x", "d"])
    assert (result.returncode, result.stdout) == (2, b""), result
    assert re.search(rb"cannot connect to 127\.0\.0\.1:\d+: \S", result.stderr), result  # with the reason


@interop
def test_php_client_against_our_worker(gearman_server: GearmanServer, programs: Programs) -> None:
    php = require_program("php-gearman")
    script = Path(__file__).resolve().parent.parent / "interop" / "scripts" / "php_client.php"
    command = ["--", "tr", "a-z", "A-Z"]
    worker = start_worker(programs, gearman_server, ours("gearman"), "-f", "php_up", "-c", "1", *command)
    result = run([php, str(script), gearman_server.host, str(gearman_server.port), "reverse", "php_up", "hi php", "u1"])
    assert result.returncode == 0, result
    assert b'"result": "HI PHP"' in result.stdout and b'"rc": 0' in result.stdout, result.stdout
    assert worker.wait() == 0, worker.stderr
    row = status_of(gearman_server, "php_up")
    assert row is not None and row.total == 0
