"""The first hour: a server that cannot start, and a tool that cannot do its work, say why in one line.

Every case runs the real entry point (the venv's ``geartrain``, ``gearmand``, ``gearman``, ``gearadmin``) as a
process and checks: a non-zero exit status, exactly one line on stderr, and no Python traceback anywhere. The
server's start and stop lines at the default log level are checked at the end.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clitools import environment, ours

from servers import HOST, GearmanSocket, PacketType, free_port, wait_until

RUN_TIMEOUT = 30.0
# A store on a closed port is refused at once: a start that takes longer is waiting on a timeout, itself a problem.
FAST = 8.0


def run(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ours(name), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=environment(),
    )


def one_line(result: subprocess.CompletedProcess[str], status: int | None = None) -> str:
    """The single stderr line of a failed run (checked: non-zero status, one line, no traceback)."""
    assert "Traceback" not in result.stderr + result.stdout, result
    assert result.returncode != 0, result
    if status is not None:
        assert result.returncode == status, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def not_toml(tmp_path: Path) -> Path:
    path = tmp_path / "broken.toml"
    path.write_text("[allow\nx = \n")
    return path


SERVER = ("server", "--store", "memory", "--listen", HOST)


# ---------------------------------------------------------------------------------------------- ports and addresses


@pytest.mark.parametrize("entry", ["geartrain", "gearmand"])
def test_port_in_use(entry: str, busy_port: int) -> None:
    args = [*SERVER, "--port", str(busy_port)] if entry == "geartrain" else ["-L", HOST, "-p", str(busy_port)]
    line = one_line(run(entry, *args), 1)
    prog = "geartrain server" if entry == "geartrain" else "gearmand"
    assert line == (
        f"{prog}: cannot listen on {HOST}:{busy_port}: address already in use "
        "(is another gearmand or geartrain running? see docs/troubleshooting.md)"
    )


@pytest.mark.parametrize("port_flag", ["--port", "--http-port"])
def test_a_port_in_use_is_reported_before_the_store_is_replayed(port_flag: str, busy_port: int, tmp_path: Path) -> None:
    """The ports are checked before the replay (which may take minutes): the store is neither read nor held."""
    queue = tmp_path / "queue.db"
    ports = {"--port": "0", "--http-port": "0", port_flag: str(busy_port)}
    args = ["server", "--listen", HOST, "--store", f"sqlite://{queue}", "--verbose", "INFO"]
    result = run("geartrain", *args, *(item for pair in ports.items() for item in pair))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result
    assert f"{busy_port}" in result.stderr.splitlines()[-1] and "address already in use" in result.stderr
    assert "replay" not in result.stderr and not queue.exists(), result.stderr  # the store was never opened


def test_http_port_in_use(busy_port: int) -> None:
    line = one_line(run("geartrain", *SERVER, "--port", "0", "--http-port", str(busy_port)), 1)
    assert line.startswith(f"geartrain server: cannot listen on 127.0.0.1:{busy_port} for HTTP: address already in use")


def test_port_in_use_with_tls(busy_port: int, tmp_path: Path) -> None:
    openssl = shutil.which("openssl") or pytest.skip("needs the openssl program")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=RUN_TIMEOUT,
    )  # fmt: skip
    tls = ["--ssl", "--ssl-certificate", str(cert), "--ssl-key", str(key)]
    line = one_line(run("geartrain", *SERVER, "--port", str(busy_port), *tls), 1)
    assert f"cannot listen on {HOST}:{busy_port}: address already in use" in line


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("999.1.1.1", "no such host or address"),
        ("nosuchhost.invalid", "no such host or address"),
        ("192.0.2.1", "no such address on this host"),  # TEST-NET-1: never an address of this host
    ],
)
def test_bad_listen_address(address: str, reason: str) -> None:
    line = one_line(run("geartrain", "server", "--store", "memory", "--port", "0", "--listen", address), 1)
    assert line.startswith(f"geartrain server: cannot listen on {address}:0: {reason}"), line


def test_privileged_port_without_privileges() -> None:
    """As a user who may not bind ports below 1024 (root runs the server as nobody through setpriv)."""
    lowest = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
    if lowest.exists() and int(lowest.read_text()) <= 1:
        pytest.skip("every port may be bound without privileges on this host")
    prefix: list[str] = []
    if os.getuid() == 0:
        setpriv = shutil.which("setpriv") or pytest.skip("needs setpriv (util-linux) to drop root")
        prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
    result = subprocess.run(
        [*prefix, *ours("geartrain"), *SERVER, "--port", "1"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=environment(),
    )
    if os.getuid() == 0 and "Permission denied" in result.stderr and "geartrain server:" not in result.stderr:
        pytest.skip(f"nobody cannot run this venv's geartrain: {result.stderr.strip()}")
    line = one_line(result, 1)
    assert line == (
        f"geartrain server: cannot listen on {HOST}:1: permission denied "
        "(ports below 1024 need root or the CAP_NET_BIND_SERVICE capability)"
    )


@pytest.mark.parametrize("flag", ["--port", "--http-port"])
def test_port_out_of_range(flag: str) -> None:
    line = one_line(run("geartrain", *SERVER, flag, "70000"), 2)
    assert "invalid port 70000: ports are 0 to 65535" in line


# ---------------------------------------------------------------------------------------------- files


def test_unreadable_tls_certificate(tmp_path: Path) -> None:
    line = one_line(run("geartrain", *SERVER, "--port", "0", "--ssl", "--ssl-certificate", str(tmp_path / "no.pem")), 2)
    assert line == f"geartrain server: cannot set up TLS: {tmp_path / 'no.pem'}: the certificate cannot be read"


def test_tls_certificate_that_is_not_pem(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    line = one_line(
        run("gearmand", "-L", HOST, "-p", "0", "--ssl", "--ssl-certificate", str(junk), "--ssl-key", str(junk))
    )
    assert line == f"gearmand: cannot set up TLS: {junk}: no PEM certificate in it"


@pytest.mark.parametrize("kind", ["--acl-file", "--policy-file"])
def test_missing_or_broken_policy_files(kind: str, tmp_path: Path, not_toml: Path) -> None:
    missing = one_line(run("geartrain", *SERVER, "--port", "0", kind, str(tmp_path / "none.toml")), 2)
    assert str(tmp_path / "none.toml") in missing and "No such file or directory" in missing
    broken = one_line(run("geartrain", *SERVER, "--port", "0", kind, str(not_toml)), 2)
    assert f"{not_toml}: not valid TOML: " in broken


@pytest.mark.parametrize(("flag", "what"), [("-P", "write the pid file"), ("-l", "open the log file")])
def test_pid_or_log_file_not_writable(flag: str, what: str, tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "x"
    line = one_line(run("geartrain", *SERVER, "--port", "0", flag, str(path)), 1)
    assert line == f"geartrain server: cannot {what} {path}: No such file or directory"


def test_a_failed_start_leaves_another_servers_pid_file_alone(busy_port: int, tmp_path: Path) -> None:
    pid_file = tmp_path / "server.pid"
    pid_file.write_text("12345\n")
    one_line(run("geartrain", *SERVER, "--port", str(busy_port), "-P", str(pid_file)), 1)
    assert pid_file.read_text() == "12345\n"


# ---------------------------------------------------------------------------------------------- stores


def test_unknown_store() -> None:
    line = one_line(run("geartrain", "server", "--port", "0", "--store", "foo://x"), 2)
    assert line.startswith("geartrain server: unknown store 'foo://x'")


def test_sqlite_store_that_cannot_be_created(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    line = one_line(run("geartrain", "server", "--port", "0", "--store", f"sqlite://{not_a_dir}/queue.db"), 1)
    assert line.startswith(f"geartrain server: sqlite://{not_a_dir}/queue.db: "), line


@pytest.mark.parametrize(
    ("driver", "url"),
    [
        ("psycopg", "postgresql://gearman:secret@127.0.0.1:{port}/test"),
        ("pymysql", "mysql://root:secret@127.0.0.1:{port}/test"),
        ("redis", "redis://:secret@127.0.0.1:{port}"),
    ],
    ids=["postgresql", "mysql", "redis"],
)
def test_unreachable_store_fails_fast_without_its_password(driver: str, url: str) -> None:
    pytest.importorskip(driver)
    port = free_port()  # nothing listens: refused at once
    started = time.monotonic()
    line = one_line(run("geartrain", *SERVER, "--port", "0", "--store", url.format(port=port)), 1)
    assert time.monotonic() - started < FAST, "a refused connection should not wait for a timeout"
    assert f"127.0.0.1:{port}" in line and "refused" in line.lower(), line
    assert "secret" not in line


def test_a_store_held_by_another_server_names_it(tmp_path: Path) -> None:
    store = f"sqlite://{tmp_path / 'queue.db'}"
    first = LoggingServer(tmp_path / "first.log", "--store", store)
    try:
        line = one_line(run("geartrain", *SERVER, "--port", "0", "--store", store), 1)
        assert line.startswith(f"geartrain server: {store} is held by another server: "), line
    finally:
        first.stop()


# ---------------------------------------------------------------------------------------------- flags and process


@pytest.mark.parametrize("entry", ["geartrain", "gearmand"])
def test_unknown_flag_is_one_line(entry: str) -> None:
    args = ("server", "--bogus") if entry == "geartrain" else ("--bogus",)
    line = one_line(run(entry, *args), 2)
    assert line.endswith(
        "error: unrecognized arguments: --bogus (see "
        + ("geartrain server" if entry == "geartrain" else "gearmand")
        + " --help)"
    )


def test_bad_environment_setting() -> None:
    result = subprocess.run(
        [*ours("geartrain"), "server", "--check-args"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=environment({"GEARTRAIN_BACKLOG": "many"}),
    )
    assert "GEARTRAIN_BACKLOG='many'" in one_line(result, 2)


def test_unknown_user() -> None:
    line = one_line(run("geartrain", *SERVER, "--port", "0", "-u", "no-such-user-here"))
    assert line == "geartrain server: cannot switch to user 'no-such-user-here': no such user"


def test_daemon_reports_a_failed_start(busy_port: int) -> None:
    """-d: the first process waits for the detached server's start, and passes on its line and status."""
    line = one_line(run("geartrain", *SERVER, "--port", str(busy_port), "-d"), 1)
    assert f"cannot listen on {HOST}:{busy_port}: address already in use" in line


def test_traceback_only_at_debug(busy_port: int) -> None:
    result = run("geartrain", *SERVER, "--port", str(busy_port), "--verbose", "DEBUG")
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"geartrain server: cannot listen on {HOST}:{busy_port}")


# ---------------------------------------------------------------------------------------------- the tools


def test_client_tools_with_no_server() -> None:
    port = str(free_port())
    address = f"127.0.0.1:{port}"
    assert address in one_line(run("geartrain", "submit", "-s", address, "f", "x"), 2)
    assert address in one_line(run("geartrain", "admin", "-s", address, "status"), 2)
    assert address in one_line(run("geartrain", "bench", "round-trip", "-a", address, "--smoke"), 2)
    assert address in one_line(run("gearman", "-h", "127.0.0.1", "-p", port, "-f", "x", "data"), 2)
    assert one_line(run("gearadmin", "-h", "127.0.0.1", "-p", port, "--status"), 1) == (
        f"Error: cannot connect to {address}: Connection refused"
    )


def test_client_tools_with_bad_input(tmp_path: Path, not_toml: Path) -> None:
    missing = str(tmp_path / "missing")
    assert "cannot read the secret file" in one_line(run("geartrain", "submit", "--secret-file", missing, "f", "x"), 2)
    assert "cannot set up TLS" in one_line(run("geartrain", "admin", "-S", "--ssl-ca-file", missing, "status"), 2)
    assert "--timeout must be more than 0" in one_line(run("geartrain", "submit", "-t", "-5", "f", "x"), 2)
    assert "invalid job server address" in one_line(run("geartrain", "submit", "-s", "h:port", "f", "x"), 2)
    assert "unrecognized arguments" in one_line(run("geartrain", "admin", "status", "--bogus"), 2)
    assert "invalid choice" in one_line(run("geartrain", "admin", "no-such-command"), 2)
    assert "required" in one_line(run("geartrain", "work"), 2)
    assert "not valid TOML" in one_line(run("geartrain", "manager", str(not_toml)), 2)
    assert "No such file" in one_line(run("geartrain", "manager", missing), 2)
    assert "unknown command" in one_line(run("geartrain", "no-such-command"), 2)


# ---------------------------------------------------------------------------------------------- start and stop lines

LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+) \(Gearman\), 127\.0\.0\.1:(\d+) \(HTTP\)")


class LoggingServer:
    """``geartrain server`` at the default log level, its stderr in a file."""

    def __init__(self, log: Path, *flags: str) -> None:
        self.log = log
        with log.open("w") as stream:
            self.proc = subprocess.Popen(
                [*ours("geartrain"), *SERVER, "--port", "0", "--http-port", "0", *flags],
                stdin=subprocess.DEVNULL,
                stdout=stream,
                stderr=stream,
            )
        found = wait_until(self._listening, timeout=20, message="the server's listening line")
        self.port = int(found.group(1))

    def _listening(self) -> re.Match[str] | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited {self.proc.returncode}: {self.text()}")
        return LISTENING.search(self.text())

    def text(self) -> str:
        return self.log.read_text()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def _messages(text: str) -> list[str]:
    """The messages of the log lines (after ``[logger]``), each checked to come from the start/stop logger."""
    lines = text.splitlines()
    assert all("[geartrain.server.announce] " in line for line in lines), text
    return [line.split("] ", 1)[1] for line in lines]


def test_start_and_stop_lines_at_the_default_level(tmp_path: Path) -> None:
    store = f"sqlite://{tmp_path / 'queue.db'}"
    server = LoggingServer(tmp_path / "first.log", "--store", store)
    with GearmanSocket(f"{HOST}:{server.port}") as client:
        client.submit("later", b"x", ptype=PacketType.SUBMIT_JOB_BG)
    assert server.stop() == 0
    first = _messages(server.text())
    assert re.fullmatch(
        r"geartrain \S+ started: pid \d+, event loop (uvloop \S+|asyncio), (compiled \(mypyc\)|pure Python)", first[0]
    ), first
    assert LISTENING.fullmatch(first[1]), first
    assert first[2:] == [
        f"store: {store}, 0 jobs replayed",
        f"stopped (SIGTERM): 1 job left queued; 1 background job stay in {store}",
    ]
    again = LoggingServer(tmp_path / "second.log", "--store", store)
    assert again.stop(signal.SIGINT) == 0
    assert _messages(again.text())[2:] == [
        f"store: {store}, 1 job replayed",
        f"stopped (SIGINT): 1 job left queued; 1 background job stay in {store}",
    ]


def test_memory_queue_drain_and_policy_lines(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("")
    server = LoggingServer(tmp_path / "server.log", "--policy-file", str(policy))
    assert server.stop(signal.SIGUSR1) == 0
    assert _messages(server.text())[2:] == [
        "queue: memory only (queued jobs are lost at a stop; --store keeps background jobs)",
        f"policies: job life cycle {policy}",
        "stopped (SIGUSR1, graceful): no jobs left queued",
    ]


def test_verbose_critical_silences_the_start_lines(tmp_path: Path) -> None:
    log, pid_file = tmp_path / "server.log", tmp_path / "server.pid"
    with log.open("w") as stream:
        proc = subprocess.Popen(
            [*ours("geartrain"), *SERVER, "--port", "0", "--verbose", "CRITICAL", "-P", str(pid_file)],
            stdin=subprocess.DEVNULL,
            stdout=stream,
            stderr=stream,
        )
    try:  # the pid file is written once a signal stops the server cleanly
        wait_until(lambda: proc.poll() is not None or pid_file.exists(), timeout=20, message="the pid file")
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
    assert log.read_text() == ""
