"""PHP's pecl gearman and TLS: Debian's libgearman is built without TLS, so PHP cannot talk to a TLS port
directly; through a local TLS tunnel (socat) it can. Both are checked against a real TLS server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tlshelpers import Pki, ServerProcess, tool

from servers import free_port, require_program, wait_until

pytestmark = pytest.mark.interop
RUN_TIMEOUT = 30.0

PHP_DO = """
$client = new GearmanClient();
try {
    $client->addServer("127.0.0.1", (int) $argv[1]);
    $client->setTimeout(5000);
    $result = $client->doNormal("upper", "php over tls");
    echo json_encode(["result" => $result, "rc" => $client->returnCode()]);
} catch (GearmanException $e) {
    echo json_encode(["exception" => $e->getMessage()]);
}
"""


def _socat() -> str:
    found = shutil.which("socat")
    if found:
        return found
    reason = "socat not available: needs Debian package socat"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so a missing program is an error)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def tls_server_with_worker(pki: Pki, tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path, "--ssl", "--ssl-certificate", str(pki.server.certificate), "--ssl-key", str(pki.server.key)
    )
    worker = subprocess.Popen(
        [tool("geartrain"), "work", "-s", server.address, "--ssl", "--ssl-ca-file", str(pki.ca_file),
         "upper", "--", "tr", "a-z", "A-Z"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield server
    finally:
        worker.kill()
        worker.wait()
        server.stop()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _php(php: str, port: int) -> str:
    result = subprocess.run(
        [php, "-r", PHP_DO, "--", str(port)], capture_output=True, timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL
    )
    return result.stdout.decode()


def test_php_cannot_speak_tls_directly(tls_server_with_worker: ServerProcess) -> None:
    php = require_program("php-gearman")
    answer = _php(php, tls_server_with_worker.port)
    # libgearman sends its first packet in clear: the TLS server takes it for a bad handshake and hangs up.
    assert '"exception"' in answer or '"rc":0' not in answer, answer
    assert "PHP OVER TLS" not in answer, answer


def test_php_through_a_local_tls_tunnel(tls_server_with_worker: ServerProcess, pki: Pki) -> None:
    php = require_program("php-gearman")
    port = free_port()
    tunnel = subprocess.Popen(
        [_socat(), f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
         f"OPENSSL:127.0.0.1:{tls_server_with_worker.port},cafile={pki.ca_file},commonname=localhost"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: _listening(port), message="socat listening")
        answer = _php(php, port)
        assert '"result":"PHP OVER TLS"' in answer and '"rc":0' in answer, answer
    finally:
        tunnel.kill()
        tunnel.wait()
