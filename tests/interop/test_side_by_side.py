"""Side by side: the same byte scripts sent to the C gearmand 1.1.20 and to geartrain must get the same bytes back.

Each scenario is a script of steps over named raw TCP connections (`c1`, `w1`, `a`, ...): send bytes, read an exact
number of packets / lines / a whole listing (with a deadline), or assert silence (a short read timeout). The script
runs against a fresh C gearmand (`--threads 1 --log-file none`, builtin RAM queue) and a fresh geartrain
(`geartrain server --store memory`, its RAM-only counterpart), both on free 127.0.0.1 ports and both with
`--job-handle-prefix H:test` (so handles are `H:test:N` on both) plus the scenario's own flags (`-R`, `-w 1`,
`-j 2`, ...), and the two transcripts must be equal after normalising what legitimately differs:

* `getpid` answers (`OK <pid>`, checked to be the server's real pid first);
* the build suffix of `version` (`OK 1.1.20+ds` vs `OK 1.1.20+geartrain-…`);
* the file descriptor numbers in `workers` lines, and the order of those lines.

Nothing else is normalised: ERROR texts, `\\r\\n` vs `\\n`, row order of `status` / `prioritystatus` / `show jobs`
(geartrain reproduces gearmand's hash order) all have to match byte for byte.

Where the reference (gearmand.md §3.12) calls a 1.1.20 behaviour a defect that geartrain fixes on purpose (README,
"Where geartrain differs from gearmand 1.1.20 on purpose"), the scenario is not compared byte for byte; instead a
`test_deliberate_*` test asserts gearmand's defect and geartrain's documented behaviour, each on its own side:

1. WORK_EXCEPTION to a client that did not send OPTION_REQ exceptions: gearmand converts it to WORK_FAIL `handle\\0`
   (a trailing NUL, which hangs libgearman clients); geartrain sends a plain `WORK_FAIL handle`.
2. A unique of exactly 64 bytes: gearmand silently truncates it to 63; geartrain keeps all 64.
3. `create function NAME` ending in a bare LF: gearmand drops the name's last character; geartrain keeps it.
4. A SUBMIT_JOB_EPOCH job in the near future: gearmand NOOPs sleeping workers at submit time (their GRAB gets NO_JOB)
   and never again when the job comes due; geartrain sends no NOOP at submit and one when the job is due.
5. A foreground client coalesced onto a background job disconnects: gearmand abandons the background job (a worker
   never gets it); geartrain keeps it.
6. A packet with fewer NULs than its arguments need (size-0 SUBMIT_JOB, 3-field SUBMIT_REDUCE_JOB): gearmand looks
   for the missing NULs past the declared size and hangs (or eats the next packet); geartrain answers
   ERROR INVALID_PACKET and the connection stays usable.
7. A header whose magic is neither `\\0REQ` nor `\\0RES`: gearmand closes silently; geartrain sends
   ERROR INVALID_MAGIC, then closes.
8. Packet type 0 or >= 43: gearmand closes silently; geartrain answers ERROR INVALID_COMMAND and keeps the
   connection open.
9. An admin line with more than 5 tokens: gearmand closes silently; geartrain answers
   `ERR INVALID_ARGUMENTS Too+many+arguments` and then closes.
10. Admin `shutdown` / `shutdown graceful`: gearmand 1.1.20 (which removed them in 1.1.15) answers
    `ERR UNKNOWN_COMMAND Unknown+server+commandshutdown`; geartrain answers `OK` and stops.
11. `drop function` of a function that still has a queued job: gearmand drops it (the job is orphaned); geartrain
    refuses with `ERR there are still connected workers or executing clients` and keeps the function and the job.
12. `cancel job` twice on a queued foreground job: gearmand sends the client a second WORK_FAIL at the second cancel;
    geartrain detaches the client at the first, so it gets exactly one WORK_FAIL (the second cancel still answers OK).
13. `cancel job` on a running job: gearmand still forwards the worker's later WORK_STATUS / WORK_COMPLETE to the
    client that already got WORK_FAIL; geartrain sends that client nothing more (and accepts the worker's packets
    silently).
14. A SUBMIT_JOB_EPOCH time that overflows 64 bits: gearmand closes the connection silently; geartrain answers
    ERROR INVALID_ARGUMENT and the connection stays usable.
15. SUBMIT_REDUCE_JOB length checks: gearmand checks the reducer's length against 64 instead of the unique's
    (gearmand.md §1.2), so it rejects a 65-byte reducer and accepts a 65-byte unique; geartrain does the opposite
    (ERROR ARGUMENT_TOO_LARGE `Unique value too large` for the unique).
16. The last foreground client of a queued job disconnects: geartrain frees the job's unique at once, so
    GET_STATUS_UNIQUE answers unknown; gearmand reports it known until a worker skips the abandoned job.
17. ... and a new submit then uses that unique: gearmand attaches it to the abandoned job, which never runs (the new
    client never hears anything); geartrain creates a new job, and a worker gets it.

Run: `python -m pytest tests/interop/test_side_by_side.py -q` (needs /usr/sbin/gearmand; skipped without it, failed
under CI). Every read has a deadline; silence is watched for SILENCE seconds; nothing sleeps a fixed time.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Literal

import pytest

from servers import HOST, REPO_ROOT, GearmanServer, free_port, require_program

pytestmark = pytest.mark.interop

PREFIX = "H:test"
SERVERS = ("gearmand", "geartrain")
START_TIMEOUT = 20.0  # seconds for a server to answer `version`
REPLY_TIMEOUT = 5.0  # deadline for every expected reply
SILENCE = 0.3  # how long "nothing arrives" is watched
POLL_INTERVAL = 0.02


class T(IntEnum):
    """Every packet type (numbers from the protocol document)."""

    CAN_DO = 1
    CANT_DO = 2
    RESET_ABILITIES = 3
    PRE_SLEEP = 4
    UNUSED = 5
    NOOP = 6
    SUBMIT_JOB = 7
    JOB_CREATED = 8
    GRAB_JOB = 9
    NO_JOB = 10
    JOB_ASSIGN = 11
    WORK_STATUS = 12
    WORK_COMPLETE = 13
    WORK_FAIL = 14
    GET_STATUS = 15
    ECHO_REQ = 16
    ECHO_RES = 17
    SUBMIT_JOB_BG = 18
    ERROR = 19
    STATUS_RES = 20
    SUBMIT_JOB_HIGH = 21
    SET_CLIENT_ID = 22
    CAN_DO_TIMEOUT = 23
    ALL_YOURS = 24
    WORK_EXCEPTION = 25
    OPTION_REQ = 26
    OPTION_RES = 27
    WORK_DATA = 28
    WORK_WARNING = 29
    GRAB_JOB_UNIQ = 30
    JOB_ASSIGN_UNIQ = 31
    SUBMIT_JOB_HIGH_BG = 32
    SUBMIT_JOB_LOW = 33
    SUBMIT_JOB_LOW_BG = 34
    SUBMIT_JOB_SCHED = 35
    SUBMIT_JOB_EPOCH = 36
    SUBMIT_REDUCE_JOB = 37
    SUBMIT_REDUCE_JOB_BACKGROUND = 38
    GRAB_JOB_ALL = 39
    JOB_ASSIGN_ALL = 40
    GET_STATUS_UNIQUE = 41
    STATUS_RES_UNIQUE = 42


_HEADER = struct.Struct(">4sII")
REQ = b"\0REQ"
RES = b"\0RES"


def packet(ptype: int, *args: bytes, magic: bytes = REQ) -> bytes:
    body = b"\0".join(args)
    return _HEADER.pack(magic, ptype, len(body)) + body


def handle(n: int) -> bytes:
    return f"{PREFIX}:{n}".encode()


# --------------------------------------------------------------------------------------------------------------
# Scripts


StepKind = Literal["send", "packets", "lines", "listing", "silent", "closed", "close", "poll", "exited"]


@dataclass(frozen=True)
class Step:
    kind: StepKind
    conn: str
    data: bytes = b""
    count: int = 1
    workers: bool = False  # a `workers` listing: normalise fds and sort the lines
    want: bytes = b""  # poll: wait until the normalised listing contains this (or equals it, with `exact`)
    exact: bool = False
    timeout: float = SILENCE  # silent, exited: how long to watch
    make: Callable[[], bytes] | None = None  # send: bytes computed when the step runs (e.g. a time)


@dataclass
class Script:
    """A sequence of steps, built with the methods below (each returns the script, for chaining)."""

    flags: tuple[str, ...] = ()
    steps: list[Step] = field(default_factory=list)

    def raw(self, conn: str, data: bytes) -> Script:
        self.steps.append(Step("send", conn, data))
        return self

    def send(self, conn: str, ptype: int, *args: bytes) -> Script:
        return self.raw(conn, packet(ptype, *args))

    def send_later(self, conn: str, make: Callable[[], bytes]) -> Script:
        """Send bytes computed only when the step runs."""
        self.steps.append(Step("send", conn, make=make))
        return self

    def recv(self, conn: str, count: int = 1) -> Script:
        """Read exactly `count` packets."""
        self.steps.append(Step("packets", conn, count=count))
        return self

    def lines(self, conn: str, count: int = 1) -> Script:
        self.steps.append(Step("lines", conn, count=count))
        return self

    def listing(self, conn: str, *, workers: bool = False) -> Script:
        """Read lines up to `.` (or a single `ERR` line)."""
        self.steps.append(Step("listing", conn, workers=workers))
        return self

    def admin(self, conn: str, line: bytes) -> Script:
        """Send one admin line (with its own line ending) and read the one-line answer."""
        return self.raw(conn, line).lines(conn)

    def admin_list(self, conn: str, line: bytes) -> Script:
        return self.raw(conn, line).listing(conn, workers=line.split()[0].lower() == b"workers")

    def request(self, conn: str, ptype: int, *args: bytes, replies: int = 1) -> Script:
        return self.send(conn, ptype, *args).recv(conn, replies)

    def silent(self, conn: str, timeout: float = SILENCE) -> Script:
        """Nothing arrives within `timeout` seconds (whatever does arrive is recorded)."""
        self.steps.append(Step("silent", conn, timeout=timeout))
        return self

    def closed(self, conn: str) -> Script:
        """Read until the server closes the connection (recording what came before)."""
        self.steps.append(Step("closed", conn))
        return self

    def close(self, conn: str) -> Script:
        self.steps.append(Step("close", conn))
        return self

    def sync(self, conn: str) -> Script:
        """An ECHO round trip: everything sent before on `conn` has been processed."""
        return self.request(conn, T.ECHO_REQ, b"sync")

    def poll(self, conn: str, line: bytes, want: bytes, *, exact: bool = False) -> Script:
        """Repeat admin listing `line` until its normalised answer contains (or is) `want`; deadline REPLY_TIMEOUT."""
        workers = line.split()[0].lower() == b"workers"
        self.steps.append(Step("poll", conn, line, want=want, exact=exact, workers=workers))
        return self

    def exited(self, timeout: float) -> Script:
        """Record whether the server process exits within `timeout` seconds."""
        self.steps.append(Step("exited", "server", timeout=timeout))
        return self


# --------------------------------------------------------------------------------------------------------------
# Servers


def _server_command(name: str, port: int, workdir: Path, flags: Sequence[str]) -> list[str]:
    common = ["--port", str(port), "--listen", HOST, "--log-file", "none", "--job-handle-prefix", PREFIX, *flags]
    if name == "gearmand":
        return [
            require_program("gearmand"), *common,
            "--threads", "1",
            "--pid-file", str(workdir / f"gearmand-{port}.pid"),
            "--config-file", os.devnull,
        ]  # fmt: skip
    return [sys.executable, "-m", "geartrain", "server", "--store", "memory", *common]


def _answers_version(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as sock:
            sock.settimeout(2.0)
            sock.sendall(b"version\n")
            return sock.recv(100).startswith(b"OK ")
    except OSError:
        return False


def start_with_flags(name: str, workdir: Path, flags: Sequence[str], attempts: int = 3) -> GearmanServer:
    """Start `name` on a free loopback port with the common flags plus `flags`; wait until it answers `version`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT / "src"), env.get("PYTHONPATH", "")) if p)
    for attempt in range(1, attempts + 1):
        port = free_port()
        log_path = workdir / f"{name}-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                _server_command(name, port, workdir, flags),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=workdir,
                start_new_session=True,
            )
        server = GearmanServer(name, HOST, port, process, log_path)
        deadline = time.monotonic() + START_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            if _answers_version(port) and process.poll() is None:
                return server
            time.sleep(POLL_INTERVAL)
        server.stop()
        if attempt < attempts and "in use" in server.log_tail().lower():
            continue  # lost the race for the free port
        raise RuntimeError(f"{name} did not start (status {process.returncode}):\n{server.log_tail()}")
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------------------------
# Running a script


class Stop(Exception):
    """A read went wrong (timeout, unexpected close): the transcript ends here."""


class Conn:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=REPLY_TIMEOUT)
        self.buffer = b""
        self.eof = False

    def _fill(self, deadline: float) -> None:
        """Receive more bytes; raises TimeoutError at the deadline, sets `eof` when the server closed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 20)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
        self.buffer += chunk

    def take(self, size: int, deadline: float) -> bytes:
        while len(self.buffer) < size:
            if self.eof:
                raise EOFError
            self._fill(deadline)
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def line(self, deadline: float) -> bytes:
        while b"\n" not in self.buffer:
            if self.eof:
                raise EOFError
            self._fill(deadline)
        data, _, self.buffer = self.buffer.partition(b"\n")
        return data + b"\n"

    def drain(self, until: float) -> bytes:
        """Everything that arrives before `until` (or before the server closes)."""
        try:
            while not self.eof:
                self._fill(until)
        except TimeoutError:
            pass
        data, self.buffer = self.buffer, b""
        return data


def render_packet(raw: bytes) -> str:
    magic, ptype, size = _HEADER.unpack(raw[:12])
    body = raw[12:]
    try:
        name = T(ptype).name
    except ValueError:
        name = f"type{ptype}"
    extra = "" if magic == RES else f" magic={magic!r}"
    return f"{name}{extra} {body!r}" + ("" if size == len(body) else f" size={size}")


def render_stream(data: bytes) -> str:
    """Unrequested bytes, split into packets and text lines where they are complete."""
    parts: list[str] = []
    while data:
        if data[:1] == b"\0" and len(data) >= 12 and len(data) >= 12 + _HEADER.unpack(data[:12])[2]:
            end = 12 + _HEADER.unpack(data[:12])[2]
            parts.append(render_packet(data[:end]))
        elif data[:1] != b"\0" and b"\n" in data:
            end = data.index(b"\n") + 1
            parts.append(repr(data[:end]))
        else:
            end = len(data)
            parts.append(f"partial {data!r}")
        data = data[end:]
    return ", ".join(parts)


class Runner:
    """Plays a script against one server and records what it receives, normalised."""

    def __init__(self, server: GearmanServer) -> None:
        self.server = server
        self.conns: dict[str, Conn] = {}
        self.transcript: list[str] = []

    def conn(self, name: str) -> Conn:
        """The named connection, opened at its first use; a closed one stays closed (the script stops)."""
        if name not in self.conns:
            self.conns[name] = Conn(self.server.port)
        conn = self.conns[name]
        if conn.eof or conn.sock.fileno() < 0:
            self.transcript.append(f"{name} was closed: script stops")
            raise Stop
        return conn

    def normalise_line(self, line: bytes) -> bytes:
        if line == b"OK %d\n" % self.server.pid:
            return b"OK <pid>\n"
        return re.sub(rb"^OK 1\.1\.20\+[^\n]*\n$", b"OK 1.1.20+<build>\n", line)

    def read_listing(self, conn: Conn, deadline: float, workers: bool) -> bytes:
        lines: list[bytes] = []
        while True:
            line = conn.line(deadline)
            lines.append(self.normalise_line(line))
            if line == b".\n" or (len(lines) == 1 and line.startswith(b"ERR")):
                break
        if workers and lines[-1] == b".\n":
            lines = [*sorted(re.sub(rb"^\d+ ", b"<fd> ", line) for line in lines[:-1]), b".\n"]
        return b"".join(lines)

    def step(self, step: Step) -> None:
        record = self.transcript.append
        deadline = time.monotonic() + REPLY_TIMEOUT
        if step.kind == "close":
            self.conn(step.conn).sock.close()
            record(f"{step.conn} closes")
            return
        if step.kind == "exited":
            try:
                record(f"server exited with status {self.server.process.wait(step.timeout)}")
            except subprocess.TimeoutExpired:
                record("server still running")
            return
        conn = self.conn(step.conn)
        try:
            if step.kind == "send":
                data = step.data if step.make is None else step.make()
                record(f"{step.conn} >> {data!r}")
                conn.sock.sendall(data)
            elif step.kind == "packets":
                for _ in range(step.count):
                    header = conn.take(12, deadline)
                    size = _HEADER.unpack(header)[2]
                    record(f"{step.conn} << {render_packet(header + conn.take(size, deadline))}")
            elif step.kind == "lines":
                for _ in range(step.count):
                    record(f"{step.conn} << {self.normalise_line(conn.line(deadline))!r}")
            elif step.kind == "listing":
                record(f"{step.conn} << {self.read_listing(conn, deadline, step.workers)!r}")
            elif step.kind == "silent":
                data = conn.drain(time.monotonic() + step.timeout)
                seen = f"{step.conn} silent" if not data else f"{step.conn} << unrequested {render_stream(data)}"
                record(seen + (", then <closed by server>" if conn.eof else ""))
            elif step.kind == "closed":
                data = conn.drain(deadline)
                record(
                    f"{step.conn} << {render_stream(data) or 'nothing'}, then "
                    + ("<closed by server>" if conn.eof else "<still open>")
                )
            elif step.kind == "poll":
                while True:
                    conn.sock.sendall(step.data)
                    got = self.read_listing(conn, time.monotonic() + REPLY_TIMEOUT, step.workers)
                    done = got == step.want if step.exact else step.want in got
                    if done or time.monotonic() >= deadline:
                        break
                    time.sleep(POLL_INTERVAL)
                gave_up = "" if done else f" (gave up waiting for {step.want!r})"
                record(f"{step.conn} polled {step.data!r} -> {got!r}{gave_up}")
        except TimeoutError:
            record(f"{step.conn} << <timeout> after {conn.buffer!r} ({step.kind})")
            raise Stop from None
        except (EOFError, ConnectionError):
            record(f"{step.conn} << <closed by server> after {conn.buffer!r} ({step.kind})")
            raise Stop from None

    def run(self, script: Script) -> list[str]:
        try:
            for step in script.steps:
                self.step(step)
        except Stop:
            pass
        finally:
            for conn in self.conns.values():
                conn.sock.close()
        return self.transcript


def run_on(name: str, script: Script, workdir: Path) -> tuple[list[str], GearmanServer]:
    own = workdir / name
    own.mkdir(parents=True, exist_ok=True)
    server = start_with_flags(name, own, script.flags)
    try:
        return Runner(server).run(script), server
    finally:
        server.stop()


def run_both(script: Script, workdir: Path) -> dict[str, list[str]]:
    """The script against a fresh gearmand and a fresh geartrain, concurrently; their transcripts by name."""
    require_program("gearmand")
    with ThreadPoolExecutor(len(SERVERS)) as pool:
        futures = {name: pool.submit(run_on, name, script, workdir) for name in SERVERS}
        results = {name: future.result() for name, future in futures.items()}
    for name, (_, server) in results.items():
        status = server.process.returncode
        assert status in (0, -signal.SIGTERM), f"{name} exited with {status}:\n{server.log_tail()}"
    return {name: transcript for name, (transcript, _) in results.items()}


# --------------------------------------------------------------------------------------------------------------
# Scenarios compared byte for byte

SCENARIOS: dict[str, Callable[[], Script]] = {}


def scenario(build: Callable[[], Script]) -> Callable[[], Script]:
    SCENARIOS[build.__name__] = build
    return build


# ---- admin text protocol


@scenario
def admin_simple_commands() -> Script:
    s = Script()
    s.admin("a", b"version\n").admin("a", b"getpid\n").admin("a", b"verbose\n")
    s.admin("a", b"VERSION\r\n").admin("a", b"getpid extra tokens\r\n")
    s.admin_list("a", b"status\n").admin_list("a", b"prioritystatus\n").admin_list("a", b"workers\n")
    s.admin_list("a", b"show jobs\n").admin_list("a", b"show unique jobs\n")
    s.admin_list("a", b"STATUS extra\r\n").admin_list("a", b"Show Jobs\r\n")
    # Several commands in one write are answered in order.
    s.raw("a", b"version\ngetpid\r\nstatus\nverbose\n").lines("a", 2).listing("a").lines("a")
    return s


@scenario
def admin_error_lines() -> Script:
    s = Script()
    for line in (
        b"foo\n", b"\n", b"\r\n", b"show\n", b"cancel job\n", b"cancel foo bar\n", b"cancel job a b\n",
        b"show foo\n", b"show unique\n", b"show jobs extra\n", b"create\n", b"drop\n", b"maxqueue\n",
        b"cancel job nosuch\r\n", b"drop function nosuch\r\n", b"FOO bar\r\n",
    ):  # fmt: skip
        s.admin("a", line)
    s.sync("a")  # the connection is still usable, for binary too
    return s


@scenario
def admin_error_edges() -> Script:
    """Forms the reference does not list explicitly."""
    s = Script()
    for line in (
        b"create function\r\n", b"drop function\r\n", b"create foo bar\r\n", b"drop foo bar\r\n",
        b"cancel\n", b"show unique jobs extra\n", b"  version\n", b"version  \n", b"maxqueue nosuch x\r\n",
        b"status\r\r\n",
    ):  # fmt: skip
        s.admin("a", line)
    s.admin_list("a", b"status\n")
    return s


@scenario
def admin_create_drop_function_crlf() -> Script:
    s = Script()
    s.admin("a", b"create function foo\r\n").admin("a", b"create function Bar\r\n")
    s.admin("a", b"create function\tx\r\n")  # a tab is not a separator
    s.admin_list("a", b"status\n").admin_list("a", b"prioritystatus\n")
    s.admin("a", b"drop function FOO\r\n").admin("a", b"drop function foo\r\n")
    s.admin_list("a", b"status\n")
    return s


@scenario
def admin_drop_function_matching_two_names() -> Script:
    """`drop function` compares case-insensitively; here two functions match it."""
    s = Script()
    s.admin("a", b"create function Bar\r\n").admin("a", b"create function bar\r\n")
    s.admin_list("a", b"status\n")
    s.admin("a", b"drop function BAR\r\n").silent("a")
    s.admin_list("a", b"status\n")
    return s


@scenario
def admin_drop_function_busy() -> Script:
    s = Script()
    s.send("w", T.CAN_DO, b"f").sync("w")
    s.admin("a", b"drop function f\r\n")  # a worker has it
    s.admin_list("a", b"status\n")
    s.send("w", T.CANT_DO, b"f").sync("w")
    s.admin("a", b"drop function f\r\n").admin_list("a", b"status\n")
    return s


@scenario
def admin_drop_function_with_running_job() -> Script:
    s = Script()
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"x")
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB).send("w", T.CANT_DO, b"f").sync("w")
    s.admin_list("a", b"status\n")
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB).send("w", T.RESET_ABILITIES).sync("w")
    s.admin_list("a", b"status\n")
    return s


@scenario
def admin_maxqueue_forms_prioritystatus() -> Script:
    s = Script()
    s.admin("a", b"maxqueue nosuch 5\r\n").admin_list("a", b"status\n")  # does not create the function
    s.admin("a", b"create function mq\r\n")
    s.admin("a", b"maxqueue mq\r\n").admin("a", b"maxqueue mq 10\r\n").admin("a", b"maxqueue mq 0\n")
    s.admin("a", b"maxqueue mq -1\n")
    s.admin("a", b"maxqueue mq 1 1\r\n")  # HIGH 1, NORMAL 1, LOW unlimited
    s.request("c", T.SUBMIT_JOB_HIGH_BG, b"mq", b"", b"h1")
    s.request("c", T.SUBMIT_JOB_BG, b"mq", b"", b"n1")
    s.request("c", T.SUBMIT_JOB_HIGH_BG, b"mq", b"", b"h2")
    s.request("c", T.SUBMIT_JOB_LOW_BG, b"mq", b"", b"l1")
    s.request("c", T.SUBMIT_JOB_LOW_BG, b"mq", b"", b"l2")
    s.admin_list("a", b"prioritystatus\n")
    s.admin("a", b"maxqueue mq 5 5 5\r\n")
    s.request("c", T.SUBMIT_JOB_HIGH_BG, b"mq", b"", b"h3")
    s.request("c", T.SUBMIT_JOB_BG, b"mq", b"", b"n2")
    s.request("c", T.SUBMIT_JOB_LOW_BG, b"mq", b"", b"l3")
    s.admin("a", b"maxqueue mq 0 0 6\r\n")
    s.request("c", T.SUBMIT_JOB_LOW_BG, b"mq", b"", b"l4")
    s.request("c", T.SUBMIT_JOB_HIGH_BG, b"mq", b"", b"h4")
    s.admin("a", b"MAXQUEUE MQ 1\r\n")  # the function name is case-sensitive here
    s.request("c", T.SUBMIT_JOB_HIGH_BG, b"mq", b"", b"h5")
    s.admin_list("a", b"prioritystatus\n").admin_list("a", b"status\n")
    return s


@scenario
def admin_maxqueue_full() -> Script:
    s = Script()
    s.admin("a", b"create function f\r\n").admin("a", b"maxqueue f 1\r\n")
    s.request("c1", T.SUBMIT_JOB, b"f", b"u1", b"one")
    s.request("c1", T.SUBMIT_JOB, b"f", b"u2", b"two")
    s.request("c1", T.SUBMIT_JOB_BG, b"f", b"", b"three")
    s.request("c1", T.SUBMIT_JOB_HIGH, b"f", b"", b"four")
    s.request("c2", T.SUBMIT_JOB, b"f", b"u1", b"coalesced")  # an existing unique attaches, not a new job
    s.admin_list("a", b"status\n")
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB)
    s.request("c1", T.SUBMIT_JOB_LOW, b"f", b"u3", b"running counts too")
    s.admin("a", b"maxqueue f\r\n")
    s.request("c1", T.SUBMIT_JOB, b"f", b"u2", b"two again")
    s.admin_list("a", b"status\n")
    return s


@scenario
def admin_cancel_queued_job() -> Script:
    s = Script()
    s.request("c", T.SUBMIT_JOB, b"f", b"u1", b"fg")
    s.request("c2", T.SUBMIT_JOB_BG, b"f", b"u2", b"bg")
    s.admin("a", b"cancel job H:test:1\r\n")
    s.recv("c")  # the foreground client hears WORK_FAIL
    s.admin_list("a", b"status\n").admin_list("a", b"show unique jobs\n")
    s.admin("a", b"CANCEL JOB H:test:2\n").silent("c2")
    s.admin_list("a", b"status\n")
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB)  # both cancelled jobs are skipped
    s.admin_list("a", b"status\n").admin_list("a", b"show unique jobs\n")
    s.request("c", T.SUBMIT_JOB, b"f", b"u1", b"the unique is free again")
    return s


def _show_jobs_setup(s: Script) -> Script:
    s.request("c1", T.SUBMIT_JOB, b"f1", b"", b"a")
    s.request("c1", T.SUBMIT_JOB, b"f1", b"u1", b"b")
    s.request("c2", T.SUBMIT_JOB_HIGH, b"f2", b"uniq-2", b"c")
    return s


@scenario
def admin_show_jobs_three_fg_one_bg() -> Script:
    s = _show_jobs_setup(Script())
    s.request("c2", T.SUBMIT_JOB_LOW_BG, b"f1", b"bg-u", b"d")
    s.admin_list("a", b"show jobs\n").admin_list("a", b"show unique jobs\n")
    s.admin_list("a", b"status\n").admin_list("a", b"prioritystatus\n")
    s.send("w", T.CAN_DO, b"f1").request("w", T.GRAB_JOB)
    s.admin_list("a", b"show jobs\n").admin_list("a", b"status\n")
    return s


@scenario
def admin_show_jobs_foreground_only() -> Script:
    """Same without the background job (its last `show jobs` column has its own scenario) and without `show unique
    jobs` (whose row order has its own scenario)."""
    s = _show_jobs_setup(Script())
    s.request("c2", T.SUBMIT_JOB_LOW, b"f1", b"fg-u", b"d")
    s.admin_list("a", b"show jobs\n")
    s.admin_list("a", b"status\n").admin_list("a", b"prioritystatus\n")
    s.send("w", T.CAN_DO, b"f1").request("w", T.GRAB_JOB)
    s.admin_list("a", b"show jobs\n").admin_list("a", b"status\n")
    return s


@scenario
def admin_show_jobs_background_in_store_column() -> Script:
    """QUEUED_IN_PERSISTENT_STORE for background jobs with the default (builtin / memory) queue."""
    s = Script()
    s.request("c", T.SUBMIT_JOB_BG, b"f", b"u", b"bg")
    s.request("c", T.SUBMIT_JOB_HIGH_BG, b"f", b"", b"bg")
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"fg")
    s.admin_list("a", b"show jobs\n")
    return s


@scenario
def admin_status_row_order() -> Script:
    s = Script()
    for name in (b"alpha", b"beta", b"gamma", b"delta", b"f1", b"f2", b"f3", b"reverse", b"wc", b"x", b"ba"):
        s.admin("a", b"create function " + name + b"\r\n")
    s.send("w", T.CAN_DO, b"worker_fn").send("w", T.CAN_DO, b"f2").sync("w")
    s.request("c", T.SUBMIT_JOB, b"client_fn", b"", b"x")
    s.request("c", T.SUBMIT_JOB_LOW, b"f3", b"", b"x")
    s.admin_list("a", b"status\n").admin_list("a", b"prioritystatus\n")
    for n in range(20):
        s.request("c", T.SUBMIT_JOB, b"h%d" % n, b"u%d" % n, b"x")
    s.admin_list("a", b"status\n").admin_list("a", b"show jobs\n")
    return s


@scenario
def admin_show_unique_jobs_row_order() -> Script:
    """gearmand lists `show unique jobs` by bucket of the unique's hash (0 for an empty unique), newest first."""
    s = Script()
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"no unique")
    for n in range(12):
        s.request("c", T.SUBMIT_JOB, b"f", b"u%d" % n, b"x")
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"no unique either")
    s.request("c", T.SUBMIT_JOB, b"f", b"-", b"unique by payload")
    s.admin_list("a", b"show unique jobs\n")
    return s


@scenario
def admin_workers_listing() -> Script:
    s = Script()
    s.send("w1", T.SET_CLIENT_ID, b"worker-1").send("w1", T.CAN_DO, b"f1").send("w1", T.CAN_DO, b"f2").sync("w1")
    s.send("w2", T.CAN_DO, b"f").send("w2", T.CAN_DO, b"f").sync("w2")
    s.send("c", T.SET_CLIENT_ID, b"client id with spaces").sync("c")
    s.sync("idle")
    s.admin_list("a", b"workers\n").admin_list("a", b"status\n")
    s.send("w1", T.CANT_DO, b"f1").send("w1", T.CAN_DO, b"f3").send("w1", T.SET_CLIENT_ID, b"renamed").sync("w1")
    s.send("w2", T.RESET_ABILITIES).sync("w2")
    s.admin_list("a", b"workers\n").admin_list("a", b"status\n")
    s.close("w1")
    s.poll("a", b"workers\n", b"<fd> 127.0.0.1 - :\n" * 3 + b"<fd> 127.0.0.1 client id with spaces :\n.\n", exact=True)
    s.admin_list("a", b"status\n")
    return s


@scenario
def admin_workers_long_client_id() -> Script:
    s = Script()
    s.send("w", T.SET_CLIENT_ID, b"i" * 200).send("w", T.CAN_DO, b"f").sync("w")
    s.admin_list("a", b"workers\n")
    return s


@scenario
def admin_text_and_binary_mixed() -> Script:
    s = Script()
    s.raw("m", packet(T.ECHO_REQ, b"one") + b"version\n" + packet(T.ECHO_REQ, b"two") + b"status\n")
    s.recv("m").lines("m").recv("m").listing("m")
    return s


# ---- binary protocol basics


@scenario
def echo_with_nuls() -> Script:
    s = Script()
    s.request("c", T.ECHO_REQ, b"hello\0world")
    s.request("c", T.ECHO_REQ, b"")
    s.request("c", T.ECHO_REQ, b"\0\0\0")
    s.raw("c", packet(T.ECHO_REQ, b"a") + packet(T.ECHO_REQ, b"b\0") + packet(T.ECHO_REQ, b"c" * 70000)).recv("c", 3)
    return s


@scenario
def submit_job_created() -> Script:
    s = Script()
    for ptype in (T.SUBMIT_JOB, T.SUBMIT_JOB_BG, T.SUBMIT_JOB_HIGH, T.SUBMIT_JOB_HIGH_BG, T.SUBMIT_JOB_LOW,
                  T.SUBMIT_JOB_LOW_BG):  # fmt: skip
        s.request("c", ptype, b"f", b"", b"data-%d" % ptype)
    s.request("c", T.SUBMIT_JOB, b"f", b"u1", b"x")
    s.request("c", T.SUBMIT_JOB, b"f", b"u1", b"y")  # coalesced: same handle, no new number
    s.request("c", T.SUBMIT_JOB_BG, b"f", b"u1", b"z")
    s.request("c", T.SUBMIT_JOB_HIGH, b"f", b"u1", b"z")
    s.request("c", T.SUBMIT_JOB, b"g", b"u1", b"x")  # same unique, other function: a new job
    s.request("c", T.SUBMIT_JOB, b"f", b"U1", b"x")  # uniques are case-sensitive
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"")  # empty workload
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"a\0b\0c")  # NULs in the workload
    s.request("c", T.SUBMIT_JOB, b"f", b"u" * 63, b"63-byte unique")
    s.request("c", T.SUBMIT_JOB, b"f", b"v" * 65, b"too long")
    s.request("c", T.SUBMIT_JOB_BG, b"f", b"v" * 200, b"too long")
    s.request("c", T.SUBMIT_JOB, b"", b"", b"no function name")
    s.admin_list("a", b"status\n").admin_list("a", b"prioritystatus\n")
    # Pipelined submits are answered in order.
    s.raw("c", b"".join(packet(T.SUBMIT_JOB_LOW, b"p", b"", b"%d" % n) for n in range(5))).recv("c", 5)
    return s


@scenario
def submit_epoch_in_the_past() -> Script:
    s = Script()
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB)
    s.request("c", T.SUBMIT_JOB_EPOCH, b"f", b"e1", b"1000", b"past")
    s.request("c", T.SUBMIT_JOB_EPOCH, b"f", b"e2", b"notanumber", b"parses as 0")
    s.request("c", T.SUBMIT_JOB_EPOCH, b"f", b"e3", b"", b"empty time")
    s.request("c", T.SUBMIT_JOB_EPOCH, b"f", b"e4", b"12abc", b"leading digits")
    s.admin_list("a", b"status\n").admin_list("a", b"prioritystatus\n")
    for _ in range(5):
        s.request("w", T.GRAB_JOB_UNIQ)
    return s


@scenario
def submit_epoch_negative() -> Script:
    s = Script()
    s.request("c", T.SUBMIT_JOB_EPOCH, b"f", b"e1", b"-5", b"negative")
    s.admin_list("a", b"status\n")
    s.sync("c")
    return s


@scenario
def submit_epoch_in_the_future_is_counted() -> Script:
    """A future epoch job: counted in `status`, listed in `show jobs`, not handed out (no sleeper involved)."""
    s = Script()
    when = b"%d" % (int(time.time()) + 3600)
    s.request("c", T.SUBMIT_JOB_EPOCH, b"f", b"later", when, b"in an hour")
    s.admin_list("a", b"status\n").admin_list("a", b"prioritystatus\n").admin_list("a", b"show unique jobs\n")
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB).request("w", T.GRAB_JOB_ALL)
    s.request("c", T.GET_STATUS, handle(1)).request("c", T.GET_STATUS_UNIQUE, b"later")
    s.request("c2", T.SUBMIT_JOB, b"f", b"later", b"coalesces onto it")
    return s


@scenario
def submit_sched_rejected() -> Script:
    s = Script()
    s.request("c", T.SUBMIT_JOB_SCHED, b"f", b"u", b"1", b"2", b"3", b"4", b"5", b"data")
    s.admin_list("a", b"status\n").sync("c")
    return s


@scenario
def get_status_lifecycle() -> Script:
    s = Script()
    s.request("c", T.GET_STATUS, b"H:nosuch:1")
    s.request("c", T.GET_STATUS, b"")
    s.request("c", T.SUBMIT_JOB, b"f", b"u1", b"data")
    s.request("c", T.GET_STATUS, handle(1))
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB)
    s.request("c", T.GET_STATUS, handle(1))
    s.send("w", T.WORK_STATUS, handle(1), b"3", b"10").recv("c")
    s.request("c2", T.GET_STATUS, handle(1))
    s.send("w", T.WORK_STATUS, handle(1), b"abc", b"7x").recv("c")  # forwarded verbatim, read back with atoi
    s.request("c2", T.GET_STATUS, handle(1))
    s.send("w", T.WORK_STATUS, handle(1), b"4", b"").recv("c")
    s.request("c2", T.GET_STATUS, handle(1))
    s.send("w", T.WORK_COMPLETE, handle(1), b"done").recv("c")
    s.request("c2", T.GET_STATUS, handle(1))
    return s


@scenario
def get_status_numbers_out_of_int_range() -> Script:
    s = Script()
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"data")
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB)
    s.send("w", T.WORK_STATUS, handle(1), b"-2", b"4294967297").recv("c")
    s.request("c2", T.GET_STATUS, handle(1))
    return s


@scenario
def get_status_background_job() -> Script:
    s = Script()
    s.request("c", T.SUBMIT_JOB_BG, b"f", b"", b"bg")
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB)
    s.send("w", T.WORK_STATUS, handle(1), b"5", b"6").send("w", T.WORK_DATA, handle(1), b"nobody listens").sync("w")
    s.request("c", T.GET_STATUS, handle(1))
    s.send("w", T.WORK_WARNING, handle(1), b"w").send("w", T.WORK_COMPLETE, handle(1), b"done").sync("w")
    s.silent("c")
    s.request("c", T.GET_STATUS, handle(1))
    return s


@scenario
def get_status_unique() -> Script:
    s = Script()
    s.request("c1", T.GET_STATUS_UNIQUE, b"nosuch")
    s.request("c1", T.SUBMIT_JOB, b"f", b"u1", b"data")
    s.request("c3", T.GET_STATUS_UNIQUE, b"u1")
    s.request("c2", T.SUBMIT_JOB, b"f", b"u1", b"other")
    s.request("c3", T.GET_STATUS_UNIQUE, b"u1")
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB_UNIQ)
    s.send("w", T.WORK_STATUS, handle(1), b"3", b"10").recv("c1").recv("c2")
    s.request("c3", T.GET_STATUS_UNIQUE, b"u1")
    s.request("c3", T.GET_STATUS, handle(1))
    s.close("c2")
    s.poll("a", b"workers\n", b"<fd> 127.0.0.1 - :\n" * 3 + b"<fd> 127.0.0.1 - : f\n.\n", exact=True)
    s.request("c3", T.GET_STATUS_UNIQUE, b"u1")
    s.send("w", T.WORK_COMPLETE, handle(1), b"r").recv("c1")
    s.request("c3", T.GET_STATUS_UNIQUE, b"u1")
    s.request("c3", T.SUBMIT_JOB_BG, b"f", b"bgu", b"bg")
    s.request("c3", T.GET_STATUS_UNIQUE, b"bgu")
    s.request("c1", T.GET_STATUS_UNIQUE, b"")
    return s


@scenario
def get_status_unique_shared_by_two_functions() -> Script:
    s = Script()
    s.request("c1", T.SUBMIT_JOB_BG, b"f", b"shared", b"older, background")
    s.request("c2", T.SUBMIT_JOB, b"g", b"shared", b"newer, one foreground client")
    s.request("c3", T.GET_STATUS_UNIQUE, b"shared")
    return s


@scenario
def option_req() -> Script:
    s = Script()
    s.request("c", T.OPTION_REQ, b"exceptions")
    s.request("c", T.OPTION_REQ, b"EXCEPTIONS")
    s.request("c", T.OPTION_REQ, b"Exceptions")
    s.request("c", T.OPTION_REQ, b"foo")
    s.request("c", T.OPTION_REQ, b"")
    s.request("c", T.OPTION_REQ, b"x" * 70)
    s.sync("c")
    return s


@scenario
def option_req_with_nul() -> Script:
    s = Script()
    s.request("c", T.OPTION_REQ, b"exceptions\0x")
    s.sync("c")
    return s


# ---- workers: grabbing, sleeping, waking


@scenario
def grab_without_can_do() -> Script:
    s = Script()
    s.request("w", T.GRAB_JOB).request("w", T.GRAB_JOB_UNIQ).request("w", T.GRAB_JOB_ALL)
    s.send("w", T.PRE_SLEEP).silent("w")
    s.request("c", T.SUBMIT_JOB_BG, b"f", b"", b"x")
    s.silent("w")  # no CAN_DO: never woken
    s.request("w", T.GRAB_JOB)
    return s


@scenario
def pre_sleep_and_noop() -> Script:
    s = Script()
    s.send("w", T.CAN_DO, b"f").send("w", T.PRE_SLEEP).silent("w")
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"one")
    s.recv("w")  # NOOP
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"two")
    s.request("c", T.SUBMIT_JOB_BG, b"f", b"", b"three")
    s.silent("w")  # exactly one NOOP per sleep
    s.send("w", T.PRE_SLEEP).recv("w")  # a runnable job exists: NOOP at once
    s.send("w", T.PRE_SLEEP).recv("w")  # and again
    s.request("w", T.GRAB_JOB)
    s.send("w", T.PRE_SLEEP).recv("w")
    s.request("w", T.GRAB_JOB).request("w", T.GRAB_JOB).request("w", T.GRAB_JOB)
    s.send("w", T.PRE_SLEEP).silent("w")
    s.request("c", T.SUBMIT_JOB_BG, b"other", b"", b"x")
    s.silent("w")  # not a function of ours
    s.request("c", T.SUBMIT_JOB_LOW_BG, b"f", b"", b"x")
    s.recv("w")
    s.send("w", T.CANT_DO, b"f").send("w", T.PRE_SLEEP).silent("w")  # nothing we can do any more
    return s


@scenario
def noop_to_every_sleeper() -> Script:
    s = Script()
    for w in ("w1", "w2", "w3"):
        s.send(w, T.CAN_DO, b"f").send(w, T.PRE_SLEEP).sync(w)
    s.send("w4", T.CAN_DO, b"f").sync("w4")  # registered but not sleeping: no NOOP
    s.send("w5", T.CAN_DO, b"g").send("w5", T.PRE_SLEEP).sync("w5")  # asleep, other function
    s.request("c", T.SUBMIT_JOB_BG, b"f", b"", b"job0")
    s.recv("w1").recv("w2").recv("w3").silent("w4").silent("w5")
    s.request("c", T.SUBMIT_JOB_BG, b"f", b"", b"job1")
    s.silent("w1").silent("w2").silent("w3")
    return s


@scenario
def wakeup_rotation_w1() -> Script:
    """`-w 1`: one sleeper woken per job, the start point rotating (job0 -> w1, job1 -> w2, ...)."""
    s = Script(flags=("-w", "1"))
    workers = ("w1", "w2", "w3")
    for w in workers:
        s.send(w, T.CAN_DO, b"f").sync(w)
    for job in range(4):
        for w in workers:
            s.send(w, T.PRE_SLEEP).sync(w)
        s.request("c", T.SUBMIT_JOB_BG, b"f", b"", b"job%d" % job)
        woken = workers[job % 3]
        s.recv(woken)
        for w in workers:
            if w != woken:
                s.silent(w)
        s.request(woken, T.GRAB_JOB)
        for w in workers:
            if w != woken:
                s.request(w, T.GRAB_JOB)  # NO_JOB: back to awake for the next round
    return s


@scenario
def wakeup_rotation_w2() -> Script:
    s = Script(flags=("-w", "2"))
    for w in ("w1", "w2", "w3"):
        s.send(w, T.CAN_DO, b"f").send(w, T.PRE_SLEEP).sync(w)
    s.request("c", T.SUBMIT_JOB_BG, b"f", b"", b"job0")
    s.recv("w1").recv("w2").silent("w3")
    s.request("c", T.SUBMIT_JOB_BG, b"f", b"", b"job1")
    s.recv("w3").silent("w1").silent("w2")
    return s


# ---- assignment order


def _order_setup(s: Script) -> Script:
    for ptype, data in ((T.SUBMIT_JOB_LOW_BG, b"fa/low"), (T.SUBMIT_JOB_BG, b"fa/norm"),
                        (T.SUBMIT_JOB_HIGH_BG, b"fa/high"), (T.SUBMIT_JOB_HIGH_BG, b"fa/high2")):  # fmt: skip
        s.request("c", ptype, b"fa", b"", data)
    for ptype, data in ((T.SUBMIT_JOB_LOW_BG, b"fb/low"), (T.SUBMIT_JOB_BG, b"fb/norm"),
                        (T.SUBMIT_JOB_HIGH_BG, b"fb/high")):  # fmt: skip
        s.request("c", ptype, b"fb", b"", data)
    s.send("w", T.CAN_DO, b"fa").send("w", T.CAN_DO, b"fb")
    for _ in range(8):
        s.request("w", T.GRAB_JOB)
    return s


@scenario
def assignment_order_per_function() -> Script:
    return _order_setup(Script())


@scenario
def assignment_order_round_robin() -> Script:
    return _order_setup(Script(flags=("-R",)))


@scenario
def assignment_order_round_robin_alternating() -> Script:
    """gearmand's tests/round_robin.cc: jobs 0-9 alternating between two queues, expected order 1032547698."""
    s = Script(flags=("-R",))
    for n in range(10):
        s.request("c", T.SUBMIT_JOB_BG, b"q%d" % (n % 2), b"", b"%d" % n)
    s.send("w", T.CAN_DO, b"q0").send("w", T.CAN_DO, b"q1")
    for _ in range(11):
        s.request("w", T.GRAB_JOB)
    return s


@scenario
def assignment_order_duplicate_can_do() -> Script:
    s = Script()
    for f in (b"fa", b"fb", b"fc"):
        s.request("c", T.SUBMIT_JOB_BG, f, b"", f + b"/1").request("c", T.SUBMIT_JOB_BG, f, b"", f + b"/2")
    s.send("w", T.CAN_DO, b"fa").send("w", T.CAN_DO, b"fb").send("w", T.CAN_DO, b"fc").send("w", T.CAN_DO, b"fa")
    for _ in range(7):
        s.request("w", T.GRAB_JOB)
    return s


@scenario
def grab_variants_normal_and_reduce() -> Script:
    s = Script()
    s.request("c", T.SUBMIT_JOB, b"f", b"u1", b"plain1")
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"plain2")
    s.request("c", T.SUBMIT_JOB, b"f", b"u3", b"plain3")
    # libgearman sends 4 NUL-terminated fields: function, unique, reducer, aggregator (empty), then the data.
    s.request("c", T.SUBMIT_REDUCE_JOB, b"f", b"r1", b"reducer", b"", b"red1")
    s.request("c", T.SUBMIT_REDUCE_JOB, b"f", b"r2", b"reducer", b"agg", b"red2")
    s.request("c", T.SUBMIT_REDUCE_JOB_BACKGROUND, b"f", b"r3", b"reducer3", b"", b"red3")
    s.request("c", T.SUBMIT_REDUCE_JOB, b"f", b"", b"reducer", b"", b"red4 no unique")
    s.request("c", T.SUBMIT_REDUCE_JOB, b"f", b"r1", b"other", b"", b"coalesces onto r1")
    s.admin_list("a", b"prioritystatus\n")
    s.send("w", T.CAN_DO, b"f")
    s.request("w", T.GRAB_JOB).request("w", T.GRAB_JOB_UNIQ).request("w", T.GRAB_JOB_ALL)
    s.request("w", T.GRAB_JOB).request("w", T.GRAB_JOB_UNIQ).request("w", T.GRAB_JOB_ALL)
    s.request("w", T.GRAB_JOB_ALL).request("w", T.GRAB_JOB_ALL)
    for n in (1, 4, 5):
        s.send("w", T.WORK_COMPLETE, handle(n), b"r%d" % n).recv("c")
    return s


@scenario
def reduce_job_empty_reducer() -> Script:
    s = Script()
    s.request("c", T.SUBMIT_REDUCE_JOB, b"f", b"", b"", b"", b"empty reducer")
    s.request("c", T.SUBMIT_REDUCE_JOB_BACKGROUND, b"f", b"u", b"", b"", b"empty reducer, background")
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB_ALL).request("w", T.GRAB_JOB_ALL)
    return s


@scenario
def worker_holds_several_jobs() -> Script:
    s = Script()
    for n in range(3):
        s.request("c", T.SUBMIT_JOB, b"f", b"", b"%d" % n)
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB).request("w", T.GRAB_JOB).request("w", T.GRAB_JOB)
    s.admin_list("a", b"status\n")
    s.send("w", T.WORK_COMPLETE, handle(2), b"two").recv("c")
    s.send("w", T.WORK_DATA, handle(3), b"d3").send("w", T.WORK_COMPLETE, handle(1), b"one").recv("c", 2)
    s.send("w", T.WORK_FAIL, handle(3)).recv("c")
    s.admin_list("a", b"status\n")
    return s


# ---- coalescing


@scenario
def coalescing_foreground_clients() -> Script:
    s = Script()
    s.request("c1", T.SUBMIT_JOB, b"f", b"u1", b"data")
    s.request("c2", T.SUBMIT_JOB, b"f", b"u1", b"other-data")
    s.request("c3", T.SUBMIT_JOB_BG, b"f", b"u1", b"bg")
    s.admin_list("a", b"status\n")
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB_UNIQ)
    s.request("c4", T.SUBMIT_JOB_LOW, b"f", b"u1", b"while running")  # attaches to a running job too
    for ptype, args in (
        (T.WORK_STATUS, (b"1", b"4")), (T.WORK_DATA, (b"chunk",)), (T.WORK_WARNING, (b"careful",)),
        (T.WORK_COMPLETE, (b"result",)),
    ):  # fmt: skip
        s.send("w", ptype, handle(1), *args).recv("c1").recv("c2").recv("c4")
    s.silent("c3")
    s.request("c1", T.SUBMIT_JOB, b"f", b"u1", b"again")  # the unique is free again: a new job
    s.admin_list("a", b"status\n")
    return s


@scenario
def coalescing_work_fail() -> Script:
    s = Script()
    s.request("c1", T.SUBMIT_JOB, b"f", b"u1", b"data").request("c2", T.SUBMIT_JOB_HIGH, b"f", b"u1", b"x")
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB)
    s.send("w", T.WORK_FAIL, handle(1)).recv("c1").recv("c2")
    s.admin_list("a", b"status\n")
    return s


@scenario
def coalescing_dash_unique() -> Script:
    s = Script()
    s.request("c", T.SUBMIT_JOB, b"f", b"-", b"same payload")
    s.request("c", T.SUBMIT_JOB, b"f", b"-", b"same payload")
    s.request("c", T.SUBMIT_JOB, b"f", b"-", b"other payload")
    s.request("c", T.SUBMIT_JOB, b"g", b"-", b"same payload")
    s.request("c", T.SUBMIT_JOB_BG, b"f", b"-", b"other payload")
    s.request("c", T.SUBMIT_JOB, b"f", b"--", b"same payload")
    s.admin_list("a", b"show unique jobs\n")
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB_UNIQ).request("w", T.GRAB_JOB_UNIQ)
    s.request("c", T.GET_STATUS_UNIQUE, b"-")
    return s


@scenario
def coalescing_exception_forwarding() -> Script:
    s = Script()
    s.request("cx", T.OPTION_REQ, b"exceptions")
    s.request("cx", T.SUBMIT_JOB, b"f", b"u", b"x")
    s.request("cy", T.OPTION_REQ, b"Exceptions").request("cy", T.SUBMIT_JOB, b"f", b"u", b"y")
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB)
    s.send("w", T.WORK_EXCEPTION, handle(1), b"boom\0with nul").recv("cx").recv("cy")
    s.request("w", T.WORK_EXCEPTION, handle(1), b"again")  # the job is finished: JOB_NOT_FOUND
    s.admin_list("a", b"status\n")
    return s


@scenario
def exceptions_flag_forwards_to_all() -> Script:
    s = Script(flags=("--exceptions",))
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"x")
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB)
    s.send("w", T.WORK_EXCEPTION, handle(1), b"boom").recv("c")
    return s


# ---- errors


@scenario
def work_results_for_unknown_handles() -> Script:
    s = Script()
    h = b"H:test:99"
    s.request("w", T.WORK_COMPLETE, h, b"x")
    s.request("w", T.WORK_FAIL, h)
    s.request("w", T.WORK_STATUS, h, b"1", b"2")
    s.request("w", T.WORK_DATA, h, b"x")
    s.request("w", T.WORK_WARNING, h, b"x")
    s.request("w", T.WORK_EXCEPTION, h, b"x")
    s.request("w", T.WORK_COMPLETE, b"", b"")
    s.sync("w")
    return s


@scenario
def work_results_for_jobs_not_owned() -> Script:
    s = Script()
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"running")
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"queued")
    s.send("w1", T.CAN_DO, b"f").request("w1", T.GRAB_JOB)  # takes H:test:1
    for ptype, args in ((T.WORK_COMPLETE, (b"x",)), (T.WORK_FAIL, ()), (T.WORK_STATUS, (b"1", b"2")),
                        (T.WORK_DATA, (b"x",)), (T.WORK_WARNING, (b"x",)), (T.WORK_EXCEPTION, (b"x",))):  # fmt: skip
        s.request("w2", ptype, handle(1), *args)  # running, but on w1
        s.request("w2", ptype, handle(2), *args)  # queued, nobody's
    s.silent("c")
    s.send("w1", T.WORK_COMPLETE, handle(1), b"ok").recv("c")
    s.request("w1", T.WORK_COMPLETE, handle(1), b"twice")
    s.request("w1", T.WORK_EXCEPTION, handle(1), b"after complete")
    s.admin_list("a", b"status\n")
    return s


@scenario
def response_packets_sent_to_server() -> Script:
    s = Script()
    for ptype, args in (
        (T.UNUSED, ()), (T.NOOP, ()), (T.JOB_CREATED, (b"H:x:1",)), (T.NO_JOB, ()),
        (T.JOB_ASSIGN, (b"H:x:1", b"f", b"d")), (T.ECHO_RES, (b"x",)), (T.ERROR, (b"CODE", b"text")),
        (T.STATUS_RES, (b"H:x:1", b"1", b"0", b"0", b"0")), (T.ALL_YOURS, ()), (T.OPTION_RES, (b"exceptions",)),
        (T.JOB_ASSIGN_UNIQ, (b"H:x:1", b"f", b"u", b"d")),
        (T.SUBMIT_JOB_SCHED, (b"f", b"u", b"", b"", b"", b"", b"", b"d")),
        (T.JOB_ASSIGN_ALL, (b"H:x:1", b"f", b"u", b"r", b"d")),
        (T.STATUS_RES_UNIQUE, (b"u", b"1", b"0", b"0", b"0", b"0")),
    ):  # fmt: skip
        s.request("x", ptype, *args)
    s.sync("x")
    return s


@scenario
def response_magic_from_peer() -> Script:
    s = Script()
    s.raw("x", packet(T.ECHO_REQ, b"hello", magic=RES)).recv("x")
    s.raw("x", packet(T.SUBMIT_JOB, b"f", b"", b"x", magic=RES)).recv("x")
    s.raw("x", packet(T.NOOP, magic=RES)).recv("x")
    s.sync("x")
    s.admin_list("a", b"status\n")
    return s


@scenario
def size_zero_can_do_registers_empty_function() -> Script:
    s = Script()
    s.send("w", T.CAN_DO).sync("w")
    s.admin_list("a", b"status\n").admin_list("a", b"workers\n")
    s.request("c", T.SUBMIT_JOB, b"", b"", b"for the empty function")
    s.request("w", T.GRAB_JOB)
    return s


@scenario
def can_do_timeout_values() -> Script:
    s = Script()
    s.send("w1", T.CAN_DO_TIMEOUT, b"f", b"0").send("w1", T.CAN_DO_TIMEOUT, b"g", b"-1").sync("w1")
    s.admin_list("a", b"status\n").admin_list("a", b"workers\n")
    return s


@scenario
def can_do_timeout_not_a_number() -> Script:
    s = Script()
    s.send("w", T.CAN_DO_TIMEOUT, b"f", b"abc").silent("w")
    s.admin_list("a", b"status\n")
    return s


# ---- disconnects, retries, timeouts


@scenario
def worker_disconnect_requeues() -> Script:
    s = Script()
    s.request("c", T.SUBMIT_JOB, b"f", b"u", b"payload")
    s.send("w1", T.CAN_DO, b"f").request("w1", T.GRAB_JOB)
    s.send("w1", T.WORK_STATUS, handle(1), b"1", b"2").recv("c")
    s.send("w2", T.CAN_DO, b"f").send("w2", T.PRE_SLEEP).sync("w2")
    s.close("w1")
    s.recv("w2")  # NOOP: the job is back in the queue
    s.request("c2", T.GET_STATUS, handle(1)).request("c2", T.GET_STATUS_UNIQUE, b"u")  # progress reset
    s.admin_list("a", b"show jobs\n").admin_list("a", b"status\n")
    s.request("w2", T.GRAB_JOB_UNIQ)  # same handle
    s.send("w2", T.WORK_COMPLETE, handle(1), b"done").recv("c")
    s.admin_list("a", b"status\n")
    return s


@scenario
def worker_disconnect_requeues_at_tail() -> Script:
    s = Script()
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"first")
    s.send("w1", T.CAN_DO, b"f").request("w1", T.GRAB_JOB)
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"second")
    s.close("w1").poll("a", b"show jobs\n", b"H:test:1\t1\t0\t0\n")
    s.send("w2", T.CAN_DO, b"f").request("w2", T.GRAB_JOB).request("w2", T.GRAB_JOB)
    return s


@scenario
def worker_disconnect_with_two_jobs_requeue_order() -> Script:
    """One worker holds two jobs of the same function and priority when it disconnects."""
    s = Script()
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"first")
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"second")
    s.send("w1", T.CAN_DO, b"f").request("w1", T.GRAB_JOB).request("w1", T.GRAB_JOB)
    s.close("w1").poll("a", b"show jobs\n", b"H:test:2\t1\t0\t0\n")
    s.poll("a", b"show jobs\n", b"H:test:1\t1\t0\t0\n")
    s.send("w2", T.CAN_DO, b"f").request("w2", T.GRAB_JOB).request("w2", T.GRAB_JOB)
    return s


@scenario
def cant_do_and_reset_abilities_requeue() -> Script:
    s = Script()
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"one").request("c", T.SUBMIT_JOB, b"g", b"", b"two")
    s.send("w1", T.CAN_DO, b"f").send("w1", T.CAN_DO, b"g").request("w1", T.GRAB_JOB).request("w1", T.GRAB_JOB)
    s.send("w1", T.CANT_DO, b"f").sync("w1")
    s.admin_list("a", b"show jobs\n").admin_list("a", b"status\n")
    s.send("w1", T.RESET_ABILITIES).sync("w1")
    s.admin_list("a", b"show jobs\n").admin_list("a", b"status\n")
    s.request("w1", T.WORK_COMPLETE, handle(1), b"late")
    s.send("w2", T.CAN_DO, b"f").send("w2", T.CAN_DO, b"g").request("w2", T.GRAB_JOB).request("w2", T.GRAB_JOB)
    s.silent("c")
    return s


@scenario
def job_retries_drop() -> Script:
    """`-j 2`: a job handed out twice without a result is dropped; its foreground client gets WORK_FAIL."""
    s = Script(flags=("-j", "2"))
    s.request("c", T.SUBMIT_JOB, b"f", b"u", b"payload")
    s.send("w1", T.CAN_DO, b"f").request("w1", T.GRAB_JOB)
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"second")
    s.close("w1").poll("a", b"show jobs\n", b"H:test:1\t1\t0\t0\n")
    s.send("w2", T.CAN_DO, b"f").request("w2", T.GRAB_JOB).request("w2", T.GRAB_JOB)
    s.close("w2")
    s.recv("c")  # WORK_FAIL H:test:1 after its second assignment
    s.poll("a", b"show jobs\n", b"H:test:2\t1\t0\t0\n.\n", exact=True)
    s.admin_list("a", b"status\n")
    s.silent("c")
    s.send("w3", T.CAN_DO, b"f").request("w3", T.GRAB_JOB_UNIQ).request("w3", T.GRAB_JOB_UNIQ)
    s.request("c2", T.SUBMIT_JOB, b"f", b"u", b"the unique is free again")
    return s


@scenario
def job_retries_drop_background() -> Script:
    s = Script(flags=("-j", "1"))
    s.request("c", T.SUBMIT_JOB_BG, b"f", b"u", b"payload")
    s.send("w1", T.CAN_DO, b"f").request("w1", T.GRAB_JOB)
    s.close("w1").poll("a", b"status\n", b"f\t0\t0\t0\n")
    s.admin_list("a", b"show jobs\n")
    return s


@scenario
def job_retries_unlimited_count() -> Script:
    s = Script()
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"payload")
    for n in range(3):
        w = f"w{n}"
        s.send(w, T.CAN_DO, b"f").request(w, T.GRAB_JOB).close(w)
        s.poll("a", b"show jobs\n", b"H:test:1\t%d\t0\t0\n.\n" % (n + 1))
    s.silent("c")
    return s


@scenario
def client_disconnect_abandoned_job_skipped() -> Script:
    s = Script()
    s.request("c", T.SUBMIT_JOB, b"f", b"u", b"abandoned")
    s.request("c2", T.SUBMIT_JOB_HIGH, b"f", b"", b"kept")
    s.close("c")
    s.poll("a", b"show jobs\n", b"H:test:1\t0\t1\t0\n")
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB_UNIQ).request("w", T.GRAB_JOB_UNIQ)
    s.admin_list("a", b"show jobs\n").admin_list("a", b"status\n")
    return s


@scenario
def client_disconnect_running_job() -> Script:
    s = Script()
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"x")
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB)
    s.close("c")
    s.poll("a", b"show jobs\n", b"H:test:1\t0\t1\t0\n.\n")
    s.send("w", T.WORK_DATA, handle(1), b"d").send("w", T.WORK_COMPLETE, handle(1), b"r").sync("w")
    s.admin_list("a", b"show jobs\n").admin_list("a", b"status\n")
    return s


@scenario
def can_do_timeout_requeues() -> Script:
    s = Script()
    s.request("c", T.SUBMIT_JOB, b"f", b"u", b"slow")
    s.send("w1", T.CAN_DO_TIMEOUT, b"f", b"1").request("w1", T.GRAB_JOB)  # 1 ms is raised to 1000 ms
    s.admin_list("a", b"status\n")
    s.poll("a", b"show jobs\n", b"H:test:1\t1\t0\t0\n.\n")
    s.admin_list("a", b"status\n")
    s.request("w1", T.WORK_COMPLETE, handle(1), b"late")
    s.silent("c")
    s.request("w1", T.GRAB_JOB)
    s.send("w1", T.WORK_COMPLETE, handle(1), b"second try").recv("c")
    return s


# --------------------------------------------------------------------------------------------------------------
# The comparison


def _diff_hint(transcripts: dict[str, list[str]]) -> str:
    c, py = transcripts["gearmand"], transcripts["geartrain"]
    for index, (left, right) in enumerate(zip(c, py, strict=False)):
        if left != right:
            return f"first difference at step {index}:\n  gearmand : {left}\n  geartrain: {right}"
    return f"transcripts differ in length ({len(c)} vs {len(py)})"


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_same_bytes(name: str, tmp_path: Path) -> None:
    transcripts = run_both(SCENARIOS[name](), tmp_path)
    # A script that gearmand itself cannot get through is a bug in the script, not a finding.
    assert not [line for line in transcripts["gearmand"] if "<timeout>" in line or "gave up" in line], transcripts
    assert transcripts["geartrain"] == transcripts["gearmand"], _diff_hint(transcripts)


# --------------------------------------------------------------------------------------------------------------
# Deliberate differences (module docstring, items 1-17): each test asserts gearmand's defect and geartrain's
# documented behaviour, on the same script. Only what the connections receive is compared here.


def run_each(script: Script, tmp_path: Path) -> tuple[list[str], list[str]]:
    """(gearmand, geartrain) transcripts without the lines recording what was sent."""
    transcripts = run_both(script, tmp_path)
    gearmand, geartrain = ([line for line in transcripts[name] if " >> " not in line] for name in SERVERS)
    return gearmand, geartrain


def test_deliberate_exception_to_client_without_option(tmp_path: Path) -> None:
    """1. A WORK_EXCEPTION reaches a client that did not ask for exceptions as a WORK_FAIL: gearmand appends a NUL
    to the handle (libgearman then hangs), geartrain sends the plain handle."""
    s = Script()
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"x")
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB)
    s.send("w", T.WORK_EXCEPTION, handle(1), b"boom").recv("c")
    s.request("w", T.WORK_COMPLETE, handle(1), b"the job is finished either way")
    common = ["c << JOB_CREATED b'H:test:1'", "w << JOB_ASSIGN b'H:test:1\\x00f\\x00x'"]
    after = ["w << ERROR b'JOB_NOT_FOUND\\x00Job given in work result not found'"]
    gearmand, geartrain = run_each(s, tmp_path)
    assert gearmand == [*common, "c << WORK_FAIL b'H:test:1\\x00'", *after]
    assert geartrain == [*common, "c << WORK_FAIL b'H:test:1'", *after]


def test_deliberate_unique_of_64_bytes(tmp_path: Path) -> None:
    """2. A 64-byte unique is accepted by both. gearmand stores only 63 bytes (plus its NUL, which then goes out as
    the unique's 64th byte in JOB_ASSIGN_UNIQ) and no longer matches it for coalescing; geartrain keeps all 64."""
    s = Script()
    s.request("c", T.SUBMIT_JOB, b"f", b"u" * 64, b"x")
    s.admin_list("a", b"show unique jobs\n")
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB_UNIQ)
    s.request("c2", T.SUBMIT_JOB, b"f", b"u" * 64, b"coalesces")
    gearmand, geartrain = run_each(s, tmp_path)
    u63, u64 = "u" * 63, "u" * 64
    assert gearmand == [
        "c << JOB_CREATED b'H:test:1'",
        f"a << b'{u63}\\n.\\n'",
        f"w << JOB_ASSIGN_UNIQ b'H:test:1\\x00f\\x00{u63}\\x00\\x00x'",
        "c2 << JOB_CREATED b'H:test:2'",
    ]
    assert geartrain == [
        "c << JOB_CREATED b'H:test:1'",
        f"a << b'{u64}\\n.\\n'",
        f"w << JOB_ASSIGN_UNIQ b'H:test:1\\x00f\\x00{u64}\\x00x'",
        "c2 << JOB_CREATED b'H:test:1'",
    ]


def test_deliberate_create_function_bare_lf(tmp_path: Path) -> None:
    """3. `create function foo` ended by a bare LF: gearmand creates `fo`, geartrain `foo`."""
    s = Script()
    s.admin("a", b"create function foo\n").admin_list("a", b"status\n")
    gearmand, geartrain = run_each(s, tmp_path)
    assert gearmand == ["a << b'OK\\r\\n'", "a << b'fo\\t0\\t0\\t0\\n.\\n'"]
    assert geartrain == ["a << b'OK\\r\\n'", "a << b'foo\\t0\\t0\\t0\\n.\\n'"]


def test_deliberate_epoch_job_wakes_sleepers(tmp_path: Path) -> None:
    """4. An epoch job 2 s ahead, a worker asleep: gearmand NOOPs it at submit (its GRAB gets NO_JOB) and stays
    silent when the job comes due (the job waits for some other event); geartrain NOOPs only when it is due."""
    s = Script()
    s.send("w", T.CAN_DO, b"f").send("w", T.PRE_SLEEP).sync("w")
    s.send_later("c", lambda: packet(T.SUBMIT_JOB_EPOCH, b"f", b"soon", b"%d" % (time.time() + 2), b"due"))
    s.recv("c").silent("w").request("w", T.GRAB_JOB).send("w", T.PRE_SLEEP)
    s.silent("w", timeout=3.5)  # until well after the job came due
    s.request("w", T.GRAB_JOB)
    gearmand, geartrain = run_each(s, tmp_path)
    before = ["w << ECHO_RES b'sync'", "c << JOB_CREATED b'H:test:1'"]
    after = ["w << JOB_ASSIGN b'H:test:1\\x00f\\x00due'"]
    assert gearmand == [*before, "w << unrequested NOOP b''", "w << NO_JOB b''", "w silent", *after]
    assert geartrain == [*before, "w silent", "w << NO_JOB b''", "w << unrequested NOOP b''", *after]


def test_deliberate_background_job_kept_when_coalesced_client_leaves(tmp_path: Path) -> None:
    """5. A foreground client coalesces onto a background job and disconnects: gearmand flags the job as ignored
    and a worker never gets it; geartrain keeps it (and hands it out)."""
    s = Script()
    s.request("c1", T.SUBMIT_JOB_BG, b"f", b"u1", b"background")
    s.request("c2", T.SUBMIT_JOB, b"f", b"u1", b"foreground, coalesced")
    s.close("c2").poll("a", b"workers\n", b"<fd> 127.0.0.1 - :\n" * 2 + b".\n", exact=True)
    s.admin_list("a", b"status\n")
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB)
    gearmand, geartrain = run_each(s, tmp_path)
    before = [
        "c1 << JOB_CREATED b'H:test:1'",
        "c2 << JOB_CREATED b'H:test:1'",
        "c2 closes",
        "a polled b'workers\\n' -> b'<fd> 127.0.0.1 - :\\n<fd> 127.0.0.1 - :\\n.\\n'",
        "a << b'f\\t1\\t0\\t0\\n.\\n'",
    ]
    assert gearmand == [*before, "w << NO_JOB b''"]
    assert geartrain == [*before, "w << JOB_ASSIGN b'H:test:1\\x00f\\x00background'"]


def test_deliberate_packets_with_too_few_nuls(tmp_path: Path) -> None:
    """6. A size-0 SUBMIT_JOB: gearmand waits for NULs beyond the packet, swallows the next packet and closes;
    geartrain answers ERROR INVALID_PACKET and goes on. A SUBMIT_REDUCE_JOB with the 3 fields of the PROTOCOL
    document (no aggregator): gearmand waits for a 4th NUL; geartrain reads it as function, unique, reducer, data."""
    s = Script()
    s.send("x", T.SUBMIT_JOB).silent("x")
    s.send("y", T.SUBMIT_REDUCE_JOB, b"f", b"u", b"red", b"3 fields").silent("y")
    s.send("x", T.ECHO_REQ, b"still there?").silent("x")
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB_ALL)
    gearmand, geartrain = run_each(s, tmp_path)
    assert gearmand == ["x silent", "y silent", "x silent, then <closed by server>", "w << NO_JOB b''"]
    assert geartrain == [
        "x << unrequested ERROR b'INVALID_PACKET\\x00Too few arguments for SUBMIT_JOB'",
        "y << unrequested JOB_CREATED b'H:test:1'",
        "x << unrequested ECHO_RES b'still there?'",
        "w << JOB_ASSIGN_ALL b'H:test:1\\x00f\\x00u\\x00red\\x003 fields'",
    ]


def test_deliberate_wrong_magic(tmp_path: Path) -> None:
    """7. A header with magic `\\0XYZ`: gearmand closes without a word, geartrain sends ERROR INVALID_MAGIC first."""
    s = Script()
    s.raw("x", b"\0XYZ" + struct.pack(">II", T.ECHO_REQ, 2) + b"hi").closed("x")
    gearmand, geartrain = run_each(s, tmp_path)
    assert gearmand == ["x << nothing, then <closed by server>"]
    assert geartrain == ["x << ERROR b'INVALID_MAGIC\\x00Invalid magic in packet header', then <closed by server>"]


def test_deliberate_unknown_packet_type(tmp_path: Path) -> None:
    """8. Packet types 0 and 43: gearmand closes silently; geartrain answers ERROR INVALID_COMMAND and the
    connection keeps working."""
    s = Script()
    s.raw("x", packet(0, b"zero")).silent("x")
    s.raw("y", packet(43, b"forty-three")).silent("y")
    s.request("y", T.ECHO_REQ, b"still there?")
    gearmand, geartrain = run_each(s, tmp_path)
    assert gearmand == [
        "x silent, then <closed by server>",
        "y silent, then <closed by server>",
        "y was closed: script stops",
    ]
    assert geartrain == [
        "x << unrequested ERROR b'INVALID_COMMAND\\x00Unknown packet type 0'",
        "y << unrequested ERROR b'INVALID_COMMAND\\x00Unknown packet type 43'",
        "y << ECHO_RES b'still there?'",
    ]


def test_deliberate_too_many_admin_tokens(tmp_path: Path) -> None:
    """9. An admin line with 6 tokens: gearmand closes silently; geartrain says why, then closes."""
    s = Script()
    s.raw("a", b"a b c d e f\n").closed("a")
    gearmand, geartrain = run_each(s, tmp_path)
    assert gearmand == ["a << nothing, then <closed by server>"]
    assert geartrain == ["a << b'ERR INVALID_ARGUMENTS Too+many+arguments\\r\\n', then <closed by server>"]


@pytest.mark.parametrize("line", [b"shutdown\r\n", b"shutdown graceful\n", b"SHUTDOWN\n"])
def test_deliberate_shutdown(line: bytes, tmp_path: Path) -> None:
    """10. `shutdown [graceful]`: gearmand 1.1.20 no longer knows it; geartrain answers OK, closes and exits 0
    (with no jobs, graceful stops at once too)."""
    s = Script()
    s.admin("a", line).silent("a").exited(2.0)
    gearmand, geartrain = run_each(s, tmp_path)
    assert gearmand == [
        f"a << b'ERR UNKNOWN_COMMAND Unknown+server+command{line.split()[0].decode()}\\r\\n'",
        "a silent",
        "server still running",
    ]
    assert geartrain == ["a << b'OK\\r\\n'", "a silent, then <closed by server>", "server exited with status 0"]


def test_deliberate_drop_function_with_queued_job(tmp_path: Path) -> None:
    """11. `drop function g` while g's only job is queued (no worker, nothing running): gearmand drops the function
    and orphans the job; geartrain refuses and keeps both."""
    s = Script()
    s.request("c", T.SUBMIT_JOB_BG, b"g", b"", b"x")
    s.admin("a", b"drop function g\r\n")
    s.admin_list("a", b"status\n")
    gearmand, geartrain = run_each(s, tmp_path)
    assert gearmand == ["c << JOB_CREATED b'H:test:1'", "a << b'OK\\r\\n'", "a << b'.\\n'"]
    assert geartrain == [
        "c << JOB_CREATED b'H:test:1'",
        "a << b'ERR there are still connected workers or executing clients\\r\\n'",
        "a << b'g\\t1\\t0\\t0\\n.\\n'",
    ]


def test_deliberate_cancel_job_twice(tmp_path: Path) -> None:
    """12. A queued foreground job cancelled twice: both servers answer OK both times (the job is still known until
    a worker skips it); gearmand sends the client a second WORK_FAIL, geartrain only the first."""
    s = Script()
    s.request("c", T.SUBMIT_JOB, b"f", b"u1", b"fg")
    s.admin("a", b"cancel job H:test:1\r\n").recv("c")
    s.admin("a", b"cancel job H:test:1\r\n")
    s.silent("c")
    gearmand, geartrain = run_each(s, tmp_path)
    before = ["c << JOB_CREATED b'H:test:1'", "a << b'OK\\r\\n'", "c << WORK_FAIL b'H:test:1'", "a << b'OK\\r\\n'"]
    assert gearmand == [*before, "c << unrequested WORK_FAIL b'H:test:1'"]
    assert geartrain == [*before, "c silent"]


def test_deliberate_cancel_running_job(tmp_path: Path) -> None:
    """13. A running foreground job cancelled, then the worker reports on it: gearmand forwards WORK_STATUS and
    WORK_COMPLETE to the client that already got WORK_FAIL; geartrain accepts them without a word to anyone."""
    s = Script()
    s.request("c", T.SUBMIT_JOB, b"f", b"", b"fg")
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB)
    s.admin("a", b"cancel job H:test:1\r\n").recv("c")
    s.admin_list("a", b"status\n")
    s.send("w", T.WORK_STATUS, handle(1), b"1", b"2").send("w", T.WORK_COMPLETE, handle(1), b"late").sync("w")
    s.silent("c")
    s.admin_list("a", b"status\n")
    gearmand, geartrain = run_each(s, tmp_path)
    before = [
        "c << JOB_CREATED b'H:test:1'",
        "w << JOB_ASSIGN b'H:test:1\\x00f\\x00fg'",
        "a << b'OK\\r\\n'",
        "c << WORK_FAIL b'H:test:1'",
        "a << b'f\\t1\\t1\\t1\\n.\\n'",
        "w << ECHO_RES b'sync'",
    ]
    after = ["a << b'f\\t0\\t0\\t1\\n.\\n'"]
    forwarded = "c << unrequested WORK_STATUS b'H:test:1\\x001\\x002', WORK_COMPLETE b'H:test:1\\x00late'"
    assert gearmand == [*before, forwarded, *after]
    assert geartrain == [*before, "c silent", *after]


def test_deliberate_epoch_overflowing(tmp_path: Path) -> None:
    """14. A SUBMIT_JOB_EPOCH time beyond 64 bits: gearmand hangs up without a word; geartrain answers
    ERROR INVALID_ARGUMENT, creates no job and the connection keeps working."""
    s = Script()
    s.send("c", T.SUBMIT_JOB_EPOCH, b"f", b"e1", b"99999999999999999999", b"overflows strtoll")
    s.silent("c")
    s.admin_list("a", b"status\n")
    s.request("c", T.ECHO_REQ, b"still there?")
    gearmand, geartrain = run_each(s, tmp_path)
    assert gearmand == ["c silent, then <closed by server>", "a << b'.\\n'", "c was closed: script stops"]
    assert geartrain == [
        "c << unrequested ERROR b'INVALID_ARGUMENT\\x00SUBMIT_JOB_EPOCH time out of range'",
        "a << b'.\\n'",
        "c << ECHO_RES b'still there?'",
    ]


def test_deliberate_reduce_job_length_checks(tmp_path: Path) -> None:
    """15. SUBMIT_REDUCE_JOB with a 65-byte reducer, then with a 65-byte unique: gearmand checks the reducer's
    length (its error text still says "Unique"), so it rejects the first and accepts the second; geartrain checks the
    unique's, so it accepts the first and rejects the second."""
    s = Script()
    s.request("c", T.SUBMIT_REDUCE_JOB, b"f", b"u", b"r" * 65, b"", b"long reducer")
    s.request("c", T.SUBMIT_REDUCE_JOB, b"f", b"v" * 65, b"r", b"", b"long unique")
    s.sync("c")
    gearmand, geartrain = run_each(s, tmp_path)
    too_large = "c << ERROR b'ARGUMENT_TOO_LARGE\\x00Unique value too large'"
    created, sync = "c << JOB_CREATED b'H:test:1'", "c << ECHO_RES b'sync'"
    assert gearmand == [too_large, created, sync]
    assert geartrain == [created, too_large, sync]


def test_deliberate_abandoned_job_unique_status(tmp_path: Path) -> None:
    """16. The only (foreground) client of a queued job leaves: the job stays queued on both, flagged as ignored, and
    its handle is still known; geartrain frees its unique at once (GET_STATUS_UNIQUE: unknown), gearmand keeps it
    known until a worker skips the job."""
    s = Script()
    s.request("c", T.SUBMIT_JOB, b"f", b"u", b"abandoned")
    s.close("c")
    s.poll("a", b"show jobs\n", b"H:test:1\t0\t1\t0\n")
    s.admin_list("a", b"status\n")
    s.request("c2", T.GET_STATUS, handle(1)).request("c2", T.GET_STATUS_UNIQUE, b"u")
    gearmand, geartrain = run_each(s, tmp_path)
    before = [
        "c << JOB_CREATED b'H:test:1'",
        "c closes",
        "a polled b'show jobs\\n' -> b'H:test:1\\t0\\t1\\t0\\n.\\n'",
        "a << b'f\\t1\\t0\\t0\\n.\\n'",
        "c2 << STATUS_RES b'H:test:1\\x001\\x000\\x000\\x000'",
    ]
    assert gearmand == [*before, "c2 << STATUS_RES_UNIQUE b'u\\x001\\x000\\x000\\x000\\x000'"]
    assert geartrain == [*before, "c2 << STATUS_RES_UNIQUE b'u\\x000\\x000\\x000\\x000\\x000'"]


def test_deliberate_abandoned_job_unique_reused(tmp_path: Path) -> None:
    """17. A new submit with the unique of a queued job whose only client left: gearmand attaches it to the abandoned
    job, which a worker then skips (NO_JOB), so the new client never hears anything more; geartrain creates a new job
    and the worker gets it."""
    s = Script()
    s.request("c", T.SUBMIT_JOB, b"f", b"u", b"abandoned")
    s.close("c")
    s.poll("a", b"show jobs\n", b"H:test:1\t0\t1\t0\n")
    s.request("c2", T.SUBMIT_JOB, b"f", b"u", b"same unique")
    s.admin_list("a", b"show jobs\n")
    s.send("w", T.CAN_DO, b"f").request("w", T.GRAB_JOB_UNIQ)
    s.admin_list("a", b"status\n")
    s.silent("c2")
    gearmand, geartrain = run_each(s, tmp_path)
    before = [
        "c << JOB_CREATED b'H:test:1'",
        "c closes",
        "a polled b'show jobs\\n' -> b'H:test:1\\t0\\t1\\t0\\n.\\n'",
    ]
    assert gearmand == [
        *before,
        "c2 << JOB_CREATED b'H:test:1'",
        "a << b'H:test:1\\t0\\t1\\t0\\n.\\n'",
        "w << NO_JOB b''",
        "a << b'f\\t0\\t0\\t1\\n.\\n'",
        "c2 silent",
    ]
    assert geartrain == [
        *before,
        "c2 << JOB_CREATED b'H:test:2'",
        "a << b'H:test:1\\t0\\t1\\t0\\nH:test:2\\t0\\t0\\t0\\n.\\n'",
        "w << JOB_ASSIGN_UNIQ b'H:test:2\\x00f\\x00u\\x00same unique'",
        "a << b'f\\t1\\t1\\t1\\n.\\n'",
        "c2 silent",
    ]
