"""Test harness helpers: run a Gearman server as a subprocess, talk to it in admin text and raw binary packets.

Deliberately independent of the `geartrain` package: the same code drives the C gearmand, so a bug in our codec
cannot hide itself by being used on both sides of a test.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import TypeVar

import pytest

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 20.0  # seconds for a server to accept connections and answer `version`
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL
IO_TIMEOUT = 10.0  # default for every socket read in the tests
POLL_INTERVAL = 0.02

T = TypeVar("T")


# --------------------------------------------------------------------------------------------------------------
# Third-party programs: skip locally when missing, fail in CI (project standard).


def _first_executable(*candidates: str) -> str | None:
    for name in candidates:
        found = shutil.which(name) or (name if os.path.isabs(name) and os.access(name, os.X_OK) else None)
        if found:
            return found
    return None


def _probe(cmd: Sequence[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=30, stdin=subprocess.DEVNULL).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _c_program(name: str, directory: str) -> str | None:
    """The C program from Debian's package, never geartrain's entry point of the same name (which a venv on
    PATH would find first): these tests exist to check geartrain against the real thing."""
    path = os.path.join(directory, name)
    return path if os.access(path, os.X_OK) else None


def _find_gearmand() -> tuple[str | None, str]:
    return _c_program("gearmand", "/usr/sbin"), "gearmand (Debian package gearman-job-server)"


def _find_php_gearman() -> tuple[str | None, str]:
    php = _first_executable("php")
    ok = php is not None and _probe([php, "-r", 'exit(extension_loaded("gearman") ? 0 : 1);'])
    return (php if ok else None), "php with the gearman extension (Debian packages php-cli php-gearman)"


def _find_perl_gearman() -> tuple[str | None, str]:
    perl = _first_executable("perl")
    ok = perl is not None and _probe([perl, "-MGearman::Client", "-MGearman::Worker", "-MJSON::PP", "-e", "1"])
    return (perl if ok else None), "perl with Gearman::Client (Debian package libgearman-client-perl)"


_PROGRAMS: dict[str, Callable[[], tuple[str | None, str]]] = {
    "gearmand": _find_gearmand,
    "gearman": lambda: (_c_program("gearman", "/usr/bin"), "gearman CLI (Debian package gearman-tools)"),
    "gearadmin": lambda: (_c_program("gearadmin", "/usr/bin"), "gearadmin (Debian package gearman-tools)"),
    "php-gearman": _find_php_gearman,
    "perl-gearman": _find_perl_gearman,
}


@functools.cache
def _locate(name: str) -> tuple[str | None, str]:
    return _PROGRAMS[name]()


def require_program(name: str) -> str:
    """Return the executable for `name`; skip the test if it is missing, or fail when `CI` is set.

    Names: gearmand, gearman, gearadmin, php-gearman (returns php), perl-gearman (returns perl).
    """
    path, what = _locate(name)
    if path is not None:
        return path
    reason = f"{name} not available: needs {what}"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so a missing program is an error)", pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------------------------------------------
# Polling with a deadline: tests never sleep a fixed time waiting for something.


def wait_until(predicate: Callable[[], T | None], timeout: float = IO_TIMEOUT, message: str = "condition") -> T:
    """Call `predicate` until it returns something truthy and return that; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {message}; last value {result!r}")
        time.sleep(POLL_INTERVAL)


# --------------------------------------------------------------------------------------------------------------
# Server subprocesses.


def free_port() -> int:
    """A port the kernel just considered free on 127.0.0.1 (a race remains; start_server retries on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def geartrain_command(port: int, workdir: Path) -> list[str]:
    return [sys.executable, "-m", "geartrain", "server", "--listen", HOST, "--port", str(port), "--store", "memory"]


def gearmand_command(port: int, workdir: Path) -> list[str]:
    return [
        require_program("gearmand"),
        "--port", str(port),
        "--listen", HOST,
        "--log-file", "none",
        "--threads", "1",
        "--pid-file", str(workdir / f"gearmand-{port}.pid"),
        # An explicit empty config file, so a stray /etc/gearmand.conf cannot change what we test.
        "--config-file", os.devnull,
    ]  # fmt: skip


SERVER_COMMANDS: dict[str, Callable[[int, Path], list[str]]] = {
    "geartrain": geartrain_command,
    "gearmand": gearmand_command,
}


class ServerStartError(RuntimeError):
    pass


@dataclass
class GearmanServer:
    """A running server subprocess. `address` is "127.0.0.1:PORT"."""

    name: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it has not exited within STOP_TIMEOUT; returns the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        return self.process.returncode


def _server_env() -> dict[str, str]:
    # Let `python -m geartrain` work from a plain checkout too (outside the editable venv install).
    env = dict(os.environ)
    src = str(REPO_ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    return env


def _answers_version(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as sock:
            sock.settimeout(2.0)
            sock.sendall(b"version\n")
            return bool(_LineReader(sock).readline())
    except OSError:
        return False


def _wait_ready(server: GearmanServer, deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerStartError(
                f"{server.name} exited with status {server.process.returncode} before accepting connections:\n"
                f"{server.log_tail()}"
            )
        if _answers_version(server.port):
            # Another process could own the port (free_port race): make sure ours is still alive.
            if server.process.poll() is None:
                return
            continue
        time.sleep(POLL_INTERVAL)
    raise ServerStartError(f"{server.name} did not answer `version` within {START_TIMEOUT}s:\n{server.log_tail()}")


def start_server(name: str, workdir: Path, attempts: int = 3) -> GearmanServer:
    """Start implementation `name` on a free loopback port and wait until it answers the admin `version`."""
    command_for = SERVER_COMMANDS[name]
    for attempt in range(1, attempts + 1):
        port = free_port()
        command = command_for(port, workdir)
        log_path = workdir / f"{name}-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_server_env(),
                cwd=workdir,
                start_new_session=True,  # a Ctrl-C in the terminal must not reach the server before teardown
            )
        server = GearmanServer(name, HOST, port, process, log_path)
        try:
            _wait_ready(server, time.monotonic() + START_TIMEOUT)
            return server
        except ServerStartError:
            server.stop()
            # Only a lost race for the port is worth another try; anything else is a real failure.
            if attempt < attempts and "in use" in server.log_tail().lower():
                continue
            raise
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------------------------
# Admin text protocol.

LISTING_COMMANDS = (
    "status",
    "prioritystatus",
    "workers",
    "show jobs",
    "show unique jobs",
    "status cluster",
    "paused",
    "cron list",
)


class _LineReader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def readline(self) -> bytes:
        """One line including its `\\n`; b"" if the peer closed first."""
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                line, self.buffer = self.buffer, b""
                return line
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"


def admin_raw(address: str | GearmanServer, command: str, timeout: float = IO_TIMEOUT) -> bytes:
    """Send one admin text line and return the complete reply as bytes.

    Listings (`status`, `workers`, `show jobs`, ...) are read up to their `.` line; everything else is one line
    (`OK ...`, `ERR ...`). An `ERR` line also ends a listing command.
    """
    host, port = _split_address(address)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(command.encode() + b"\n")
        reader = _LineReader(sock)
        words = command.lower().split()
        is_listing = " ".join(words) in LISTING_COMMANDS or words[:2] == ["dead", "list"]
        reply = b""
        while True:
            line = reader.readline()
            if not line:
                raise ConnectionError(f"server closed the connection after {reply!r} (command {command!r})")
            reply += line
            if not is_listing or line.rstrip(b"\r\n") == b"." or (line.startswith(b"ERR") and reply == line):
                return reply


def admin(address: str | GearmanServer, command: str, timeout: float = IO_TIMEOUT) -> str:
    """admin_raw() decoded (bytes beyond UTF-8 are kept via surrogateescape)."""
    return admin_raw(address, command, timeout).decode("utf-8", "surrogateescape")


def listing_lines(text: str) -> list[str]:
    """The rows of a listing (admin reply or gearadmin output) without the final `.` line."""
    lines = text.replace("\r\n", "\n").split("\n")
    if "." not in lines:
        raise AssertionError(f"listing has no terminating '.' line: {text!r}")
    return lines[: lines.index(".")]


@dataclass(frozen=True)
class StatusRow:
    total: int
    running: int
    workers: int


def parse_status(text: str) -> dict[str, StatusRow]:
    """`status` listing -> {function: StatusRow}. Rows are FUNCTION\\tTOTAL\\tRUNNING\\tWORKERS."""
    rows: dict[str, StatusRow] = {}
    for line in listing_lines(text):
        name, total, running, workers = line.split("\t")
        rows[name] = StatusRow(int(total), int(running), int(workers))
    return rows


def status_of(server: GearmanServer, function: str) -> StatusRow | None:
    return parse_status(admin(server, "status")).get(function)


def _split_address(address: str | GearmanServer) -> tuple[str, int]:
    if isinstance(address, GearmanServer):
        return address.host, address.port
    host, _, port = address.rpartition(":")
    return host, int(port)


# --------------------------------------------------------------------------------------------------------------
# Binary protocol: just enough to play client or worker by hand.


class PacketType(IntEnum):
    CAN_DO = 1
    CANT_DO = 2
    RESET_ABILITIES = 3
    PRE_SLEEP = 4
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
    GRAB_JOB_ALL = 39
    JOB_ASSIGN_ALL = 40
    GET_STATUS_UNIQUE = 41
    STATUS_RES_UNIQUE = 42


# How many arguments each server-sent packet carries; the last one runs to the end of the body.
_RES_ARG_COUNT: dict[int, int] = {
    PacketType.NOOP: 0,
    PacketType.NO_JOB: 0,
    PacketType.JOB_CREATED: 1,
    PacketType.JOB_ASSIGN: 3,
    PacketType.JOB_ASSIGN_UNIQ: 4,
    PacketType.JOB_ASSIGN_ALL: 5,
    PacketType.WORK_STATUS: 3,
    PacketType.WORK_COMPLETE: 2,
    PacketType.WORK_FAIL: 1,
    PacketType.WORK_DATA: 2,
    PacketType.WORK_WARNING: 2,
    PacketType.WORK_EXCEPTION: 2,
    PacketType.ECHO_RES: 1,
    PacketType.ERROR: 2,
    PacketType.STATUS_RES: 5,
    PacketType.OPTION_RES: 1,
    PacketType.STATUS_RES_UNIQUE: 6,
}

_HEADER = struct.Struct(">4sII")
REQ_MAGIC = b"\0REQ"
RES_MAGIC = b"\0RES"


def encode_req(ptype: int, *args: bytes) -> bytes:
    """A request packet: magic, type, body size (big-endian), then the NUL-joined arguments."""
    body = b"\0".join(args)
    return _HEADER.pack(REQ_MAGIC, ptype, len(body)) + body


@dataclass(frozen=True)
class Packet:
    magic: bytes
    type: int
    body: bytes

    @property
    def args(self) -> list[bytes]:
        count = _RES_ARG_COUNT.get(self.type, 1)
        if count == 0:
            return []
        return self.body.split(b"\0", count - 1)

    def __str__(self) -> str:
        try:
            name = PacketType(self.type).name
        except ValueError:
            name = str(self.type)
        return f"{name}{self.args!r}"


class GearmanSocket:
    """One raw binary connection to a server, usable as client, worker or both."""

    def __init__(self, address: str | GearmanServer, timeout: float = IO_TIMEOUT) -> None:
        self.sock = socket.create_connection(_split_address(address), timeout=timeout)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self._buffer = b""

    def __enter__(self) -> GearmanSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, ptype: int, *args: bytes) -> None:
        self.sock.sendall(encode_req(ptype, *args))

    def _read_exact(self, size: int) -> bytes:
        while len(self._buffer) < size:
            chunk = self.sock.recv(max(65536, size - len(self._buffer)))
            if not chunk:
                raise ConnectionError(f"server closed the connection ({len(self._buffer)}/{size} bytes read)")
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def recv(self, timeout: float | None = None) -> Packet:
        """Read one response packet (raises TimeoutError after `timeout`, default the socket's)."""
        self.sock.settimeout(self.timeout if timeout is None else max(timeout, 0.001))
        try:
            magic, ptype, size = _HEADER.unpack(self._read_exact(_HEADER.size))
            if magic != RES_MAGIC:
                raise AssertionError(f"bad response magic {magic!r}")
            return Packet(magic, ptype, self._read_exact(size))
        finally:
            self.sock.settimeout(self.timeout)

    def expect(self, ptype: int, timeout: float | None = None) -> Packet:
        packet = self.recv(timeout)
        if packet.type != ptype:
            raise AssertionError(f"expected {PacketType(ptype).name}, got {packet}")
        return packet

    def request(self, ptype: int, *args: bytes, reply: int) -> Packet:
        self.send(ptype, *args)
        return self.expect(reply)

    def sync(self) -> None:
        """Round-trip an ECHO so that everything sent before has been processed by the server."""
        token = os.urandom(8).hex().encode()
        packet = self.request(PacketType.ECHO_REQ, token, reply=PacketType.ECHO_RES)
        assert packet.body == token, packet

    # Client side ------------------------------------------------------------------------------------------

    def submit(self, function: str, data: bytes, unique: str = "", ptype: int = PacketType.SUBMIT_JOB) -> str:
        """Submit a job and return its handle (JOB_CREATED)."""
        created = self.request(ptype, function.encode(), unique.encode(), data, reply=PacketType.JOB_CREATED)
        return created.body.decode()

    # Worker side ------------------------------------------------------------------------------------------

    def grab(self, timeout: float = IO_TIMEOUT, ptype: int = PacketType.GRAB_JOB) -> Packet:
        """Sleep until the server has a job for us and grab it: PRE_SLEEP, wait NOOP, GRAB, retry on NO_JOB."""
        deadline = time.monotonic() + timeout
        while True:
            self.send(PacketType.PRE_SLEEP)
            self.expect(PacketType.NOOP, timeout=deadline - time.monotonic())
            self.send(ptype)
            packet = self.recv(timeout=deadline - time.monotonic())
            # A NOOP can overtake: the server may wake us twice before we grab.
            while packet.type == PacketType.NOOP:
                packet = self.recv(timeout=deadline - time.monotonic())
            if packet.type != PacketType.NO_JOB:
                return packet
            if time.monotonic() >= deadline:
                raise TimeoutError("no job assigned before the deadline")


# The "chatty" task of the interop scripts (tests/interop/scripts), as a client's callbacks see it: its packets in the
# order the worker sent them, as (kind, data, numerator, denominator).
CHATTY_CALLBACK_EVENTS = [
    ("data", "data-1", None, None),
    ("status", "", 1, 3),
    ("warning", "warning-1", None, None),
    ("status", "", 2, 3),
    ("data", "data-2", None, None),
    ("complete", "done:task-chatty", None, None),
]


def chatty_events(events: list[dict[str, object]]) -> list[tuple[object, ...]]:
    """The chatty task's events (after its creation) from a PHP client script's event list."""
    return [
        (e["kind"], e["data"], e.get("numerator"), e.get("denominator"))
        for e in events
        if e["task"] == "chatty" and e["kind"] != "created"
    ]
