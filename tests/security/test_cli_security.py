"""The security flags end to end: `geartrain server --ssl ... --acl-file`, and our tools over TLS with secrets and
client certificates (`geartrain submit/work/admin`, `gearman -S`, `gearadmin -S`)."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tlshelpers import Pki, ServerProcess, read_until_closed, tool

RUN_TIMEOUT = 30.0

ACL = """
[secrets]
batch = "plain:batch-secret"
frontend = "plain:frontend-secret"

[[allow]]
who = ["batch"]
actions = ["work"]
functions = ["upper"]

[[allow]]
who = ["frontend"]
actions = ["submit"]
functions = ["upper"]

[[allow]]
who = ["ops"]
actions = ["admin_read", "admin_write"]
"""


@pytest.fixture
def tls_server(pki: Pki, tmp_path: Path) -> Iterator[ServerProcess]:
    acl = tmp_path / "acl.toml"
    acl.write_text(ACL)
    server = ServerProcess(
        tmp_path,
        "--ssl",
        "--ssl-certificate", str(pki.server.certificate),
        "--ssl-key", str(pki.server.key),
        "--ssl-ca-file", str(pki.ca_file),
        "--acl-file", str(acl),
    )  # fmt: skip
    yield server
    server.stop()


def _secret_file(tmp_path: Path, secret: str) -> str:
    path = tmp_path / f"{secret}.txt"
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return str(path)


def _run(
    command: list[str], env: dict[str, str] | None = None, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GEARMAN", "GEARTRAIN_"))}
    return subprocess.run(
        command, input=stdin, capture_output=True, timeout=RUN_TIMEOUT, env={**environment, **(env or {})}
    )


def test_tools_over_tls_with_secrets_and_certificates(tls_server: ServerProcess, pki: Pki, tmp_path: Path) -> None:
    tls = ["--ssl", "--ssl-ca-file", str(pki.ca_file)]
    worker = subprocess.Popen(
        [tool("geartrain"), "work", "-s", tls_server.address, *tls, "--secret-file",
         _secret_file(tmp_path, "batch-secret"), "-c", "2", "upper", "--", "tr", "a-z", "A-Z"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        submitted = _run(
            [tool("geartrain"), "submit", "-s", tls_server.address, *tls, "--secret-file",
             _secret_file(tmp_path, "frontend-secret"), "upper", "hello"],
        )  # fmt: skip
        assert (submitted.returncode, submitted.stdout) == (0, b"HELLO"), submitted
        # libgearman's variables configure -S; GEARTRAIN_SECRET is the secret.
        via_gearman = _run(
            [tool("gearman"), "-S", "-h", "127.0.0.1", "-p", str(tls_server.port), "-f", "upper", "again"],
            env={"GEARMAND_CA_CERTIFICATE": str(pki.ca_file), "GEARTRAIN_SECRET": "frontend-secret"},
        )
        assert (via_gearman.returncode, via_gearman.stdout) == (0, b"AGAIN"), via_gearman
        assert worker.wait(RUN_TIMEOUT) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        assert worker.stdout is not None and worker.stderr is not None
        worker.stdout.close()
        worker.stderr.close()

    # The ops certificate may read and write admin state; gearadmin -S takes it from GEARMAN_CLIENT_PEM/KEY.
    ops_env = {
        "GEARMAND_CA_CERTIFICATE": str(pki.ca_file),
        "GEARMAN_CLIENT_PEM": str(pki.ops.certificate),
        "GEARMAN_CLIENT_KEY": str(pki.ops.key),
    }
    status = _run([tool("gearadmin"), "-S", "-h", "127.0.0.1", "-p", str(tls_server.port), "--status"], env=ops_env)
    assert status.returncode == 0 and b"upper\t0\t0\t0\n" in status.stdout, status
    created = _run(
        [tool("geartrain"), "admin", "-s", tls_server.address, *tls, "--ssl-certificate", str(pki.ops.certificate),
         "--ssl-key", str(pki.ops.key), "create-function", "made-by-ops"],
    )  # fmt: skip
    assert created.returncode == 0, created
    top = _run(
        [tool("geartrain"), "top", "-s", tls_server.address, *tls, "--ssl-certificate", str(pki.ops.certificate),
         "--ssl-key", str(pki.ops.key), "--once"],
    )  # fmt: skip
    assert top.returncode == 0 and b"made-by-ops" in top.stdout, top


def test_tools_report_refusals(tls_server: ServerProcess, pki: Pki, tmp_path: Path) -> None:
    ca = {"GEARMAND_CA_CERTIFICATE": str(pki.ca_file)}
    no_secret = _run([tool("gearman"), "-S", "-h", "127.0.0.1", "-p", str(tls_server.port), "-f", "upper", "x"], ca)
    assert no_secret.returncode == 2, no_secret
    assert b"submit on function 'upper' is not allowed for anonymous" in no_secret.stderr
    wrong = _run(
        [tool("geartrain"), "submit", "-s", tls_server.address, "--ssl", "--ssl-ca-file", str(pki.ca_file),
         "--secret-file", _secret_file(tmp_path, "guess"), "upper", "x"],
    )  # fmt: skip
    assert wrong.returncode == 2 and b"Unknown secret" in wrong.stderr, wrong
    admin = _run([tool("gearadmin"), "-S", "-h", "127.0.0.1", "-p", str(tls_server.port), "--workers"], ca)
    assert admin.returncode == 0  # as the C tool: an ERR answer is still an answer
    assert admin.stderr == b"Error: PERMISSION_DENIED workers+on+the+server+is+not+allowed+for+anonymous\r\n"
    shut = _run([tool("gearadmin"), "-S", "-h", "127.0.0.1", "-p", str(tls_server.port), "--shutdown"], ca)
    assert b"PERMISSION_DENIED" in shut.stderr, shut
    assert tls_server.process.poll() is None
    assert "access denied: shutdown on the server for anonymous" in tls_server.log()


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [
        (["--ssl", "--ssl-certificate", "/nonexistent/server.pem"], "cannot set up TLS: /nonexistent/server.pem"),
        (["--ssl-key", "k.pem"], "need --ssl"),
        (["--acl-file", "/nonexistent/acl.toml"], "cannot read the ACL file /nonexistent/acl.toml"),
    ],
)
def test_server_refuses_bad_security_flags(flags: list[str], complaint: str) -> None:
    result = _run([sys.executable, "-m", "geartrain", "server", "--port", "0", "--store", "memory", *flags])
    assert result.returncode == 2 and complaint in result.stderr.decode(), result


def test_help_lists_the_security_flags() -> None:
    text = _run([sys.executable, "-m", "geartrain", "server", "--help"]).stdout.decode()
    for flag in ("--ssl", "--ssl-certificate", "--ssl-key", "--ssl-ca-file", "--ssl-verify-client",
                 "--ssl-handshake-timeout", "--acl-file", "--allow-remote-admin"):  # fmt: skip
        assert flag in text


def _tls_only_server(pki: Pki, tmp_path: Path, *flags: str) -> ServerProcess:
    """The real server on TLS with the test PKI's certificate, no client certificates asked."""
    certificate = ("--ssl-certificate", str(pki.server.certificate), "--ssl-key", str(pki.server.key))
    return ServerProcess(tmp_path, "--ssl", *certificate, *flags)


def _version_over_tls(pki: Pki, port: int) -> bytes:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    with raw, context.wrap_socket(raw, server_hostname="localhost") as stream:
        stream.sendall(b"version\r\n")
        return stream.recv(100)


def test_stalled_handshake_on_the_real_server(pki: Pki, tmp_path: Path) -> None:
    """The CLI server (on uvloop when installed): a TCP connection that never starts its handshake is closed after
    --ssl-handshake-timeout, and TLS clients are served meanwhile."""
    server = _tls_only_server(pki, tmp_path, "--ssl-handshake-timeout", "1")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as stalled:
            for _ in range(3):
                assert _version_over_tls(pki, server.port).startswith(b"OK ")
            assert read_until_closed(stalled) == b""
    finally:
        server.stop()


def test_connections_in_their_handshake_count_against_max_connections(pki: Pki, tmp_path: Path) -> None:
    """Sockets that never finish (or start) their TLS handshake hold places under --max-connections: beyond it a
    new connection is closed at once instead of holding a socket until its handshake times out, and the places
    come back when those handshakes end."""
    server = _tls_only_server(pki, tmp_path, "--ssl-handshake-timeout", "5", "--max-connections", "2")
    try:
        stalled = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(2)]
        time.sleep(0.3)  # both accepted and in their handshakes
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as third:
            assert read_until_closed(third) == b""  # no place for it: closed, not left to time out
        assert time.monotonic() - started < 3
        assert "refused a connection before its TLS handshake" in server.log()
        for sock in stalled:
            sock.close()  # their handshakes fail, and their places come back
        deadline = time.monotonic() + 10
        while True:
            try:
                assert _version_over_tls(pki, server.port).startswith(b"OK ")
                break
            except (ssl.SSLError, ConnectionError):
                assert time.monotonic() < deadline, "the places of the abandoned handshakes never came back"
                time.sleep(0.1)
        assert time.monotonic() - started < 5  # well before the handshake timeout: the closed ones were noticed
    finally:
        server.stop()


def test_gearmand_environment_names_the_certificate(pki: Pki, tmp_path: Path) -> None:
    """As gearmand: GEARMAND_SERVER_PEM / GEARMAND_SERVER_KEY / GEARMAND_CA_CERTIFICATE stand in for the flags, and
    a CA file turns on optional client certificates."""
    env = {
        "GEARMAND_SERVER_PEM": str(pki.server.certificate),
        "GEARMAND_SERVER_KEY": str(pki.server.key),
        "GEARMAND_CA_CERTIFICATE": str(pki.ca_file),
    }
    acl = tmp_path / "acl.toml"
    acl.write_text(ACL)
    server = ServerProcess(tmp_path, "--ssl", "--acl-file", str(acl), env=env)
    try:
        command = [tool("geartrain"), "admin", "-s", server.address, "--ssl", "--ssl-ca-file", str(pki.ca_file)]
        ops = ["--ssl-certificate", str(pki.ops.certificate), "--ssl-key", str(pki.ops.key)]
        as_ops = _run([*command, *ops, "status"])
        assert as_ops.returncode == 0, as_ops  # the certificate was asked for, checked, and named "ops"
        anonymous = _run([*command, "status"])
        assert anonymous.returncode == 1 and b"PERMISSION_DENIED" in anonymous.stderr, anonymous
    finally:
        server.stop()


def test_manager_python_worker_takes_tls_and_secret_from_its_environment(
    tls_server: ServerProcess, pki: Pki, tmp_path: Path
) -> None:
    """A `geartrain manager` Python group's process (geartrain.manager.child): GEARTRAIN_SSL, the CA variable and
    GEARTRAIN_SECRET, set in the group's `env` or the manager's environment."""
    jobs_dir = Path(__file__).resolve().parent.parent / "manager"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GEARMAN", "GEARTRAIN_"))},
        "GEARTRAIN_SSL": "1",
        "GEARMAND_CA_CERTIFICATE": str(pki.ca_file),
        "GEARTRAIN_SECRET": "batch-secret",
        "PYTHONPATH": os.pathsep.join([str(jobs_dir), os.environ.get("PYTHONPATH", "")]),
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "geartrain.manager.child", "--server", tls_server.address, "--callable", "jobs:reverse",
         "--function", "upper", "--recycle-jobs", "1"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        submitted = _run(
            [tool("geartrain"), "submit", "-s", tls_server.address, "--ssl", "--ssl-ca-file", str(pki.ca_file),
             "--secret-file", _secret_file(tmp_path, "frontend-secret"), "upper", "olleh"],
        )  # fmt: skip
        assert (submitted.returncode, submitted.stdout) == (0, b"hello"), submitted
        assert child.wait(RUN_TIMEOUT) == 0  # recycled after its one job
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        assert child.stderr is not None
        child.stderr.close()


def _submit_bg(port: int, function: bytes) -> bytes:
    """One SUBMIT_JOB_BG on a fresh plain connection: JOB_CREATED, or ERROR and its code."""
    body = function + b"\0\0work"
    with socket.create_connection(("127.0.0.1", port), timeout=RUN_TIMEOUT) as sock:
        sock.sendall(b"\0REQ" + (18).to_bytes(4, "big") + len(body).to_bytes(4, "big") + body)
        reply = b""
        while len(reply) < 12 or len(reply) < 12 + int.from_bytes(reply[8:12], "big"):
            chunk = sock.recv(4096)
            assert chunk, "the server closed the connection"
            reply += chunk
    if int.from_bytes(reply[4:8], "big") == 8:
        return b"JOB_CREATED"
    assert int.from_bytes(reply[4:8], "big") == 19, reply
    return b"ERROR " + reply[12:].split(b"\0")[0]


def _policy_for_anonymous(functions: str) -> str:
    return f'[[allow]]\nwho = ["anonymous"]\nactions = ["submit"]\nfunctions = ["{functions}"]\n'


def _hang_up_and_wait(server: ServerProcess, line: str, seen: int) -> None:
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + RUN_TIMEOUT
    while server.log().count(line) <= seen:
        assert time.monotonic() < deadline, f"no {line!r} in the log:\n{server.log()}"
        time.sleep(0.02)


def test_sighup_reloads_the_acl_file_and_keeps_the_old_policy_when_the_new_one_is_broken(tmp_path: Path) -> None:
    acl = tmp_path / "acl.toml"
    acl.write_text(_policy_for_anonymous("a.*"))
    server = ServerProcess(tmp_path, "--acl-file", str(acl))
    try:
        assert _submit_bg(server.port, b"a.one") == b"JOB_CREATED"
        assert _submit_bg(server.port, b"b.one") == b"ERROR PERMISSION_DENIED"
        acl.write_text(_policy_for_anonymous("b.*"))
        _hang_up_and_wait(server, "access control: reloaded", 0)
        assert _submit_bg(server.port, b"b.two") == b"JOB_CREATED"
        assert _submit_bg(server.port, b"a.two") == b"ERROR PERMISSION_DENIED"  # the cached yes went with the file
        acl.write_text("[[allow]]\nwho = [")  # half-written: must not open or close anything
        _hang_up_and_wait(server, "kept the policy in force", 0)
        assert _submit_bg(server.port, b"b.three") == b"JOB_CREATED"
        assert _submit_bg(server.port, b"a.three") == b"ERROR PERMISSION_DENIED"
        assert server.process.poll() is None
    finally:
        server.stop()
