"""Helpers of the TLS and access-control tests: the test PKI's files, and an in-process server with security
settings on its own loop thread (tests/inprocess.py's, started at once)."""

from __future__ import annotations

import os
import re
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pki import CertFiles

from geartrain.security.tls import TlsServerSettings, client_context
from geartrain.server.config import ServerConfig
from inprocess import InProcessServer

START_TIMEOUT = 20.0


@dataclass(frozen=True)
class Pki:
    """Files of the test PKI: the trusted CA, the server's certificate, clients signed by the trusted CA
    (``ops``, ``web1``) and one signed by a CA the server does not trust (``intruder``)."""

    ca_file: Path
    server: CertFiles
    ops: CertFiles
    web1: CertFiles
    intruder: CertFiles

    def client_context(self, who: CertFiles | None = None) -> ssl.SSLContext:
        if who is None:
            return client_context(ca_file=str(self.ca_file))
        return client_context(ca_file=str(self.ca_file), certificate=str(who.certificate), key=str(who.key))


class SecureServer(InProcessServer):
    """An :class:`InProcessServer` with security settings, started as it is made; ``address`` is 127.0.0.1:PORT."""

    def __init__(self, config: ServerConfig) -> None:
        super().__init__(config)
        self.start()

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def http_port(self) -> int:
        assert self.node.http is not None
        return self.node.http.port

    def denials(self) -> dict[str, int]:
        return dict(self.server.access.denials)


def tls_settings(pki: Pki, verify_client: str = "optional", handshake_timeout: float = 10.0) -> TlsServerSettings:
    return TlsServerSettings(
        certificate=str(pki.server.certificate),
        key=str(pki.server.key),
        ca_file=str(pki.ca_file),
        verify_client=verify_client,
        handshake_timeout=handshake_timeout,
    )


class ServerProcess:
    """``geartrain server`` as a subprocess on a free port (read from its log, so TLS servers need no ping)."""

    def __init__(self, workdir: Path, *flags: str, env: dict[str, str] | None = None) -> None:
        self.log_path = workdir / "server.log"
        command = [sys.executable, "-m", "geartrain", "server", "--listen", "127.0.0.1", "--port", "0"]
        command += ["--store", "memory", "--verbose", "INFO", "--log-file", str(self.log_path), *flags]
        environment = {**os.environ, **(env or {})}
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment)
        self.port = self._wait_for_port()

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = self.log_path.read_text() if self.log_path.exists() else ""
            found = re.search(r"listening on \('127\.0\.0\.1', (\d+)\)", text)
            if found:
                return int(found.group(1))
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        stderr = self.process.stderr.read().decode() if self.process.stderr else ""
        raise AssertionError(f"server did not start: {stderr}{self.log()}")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stderr:
            self.process.stderr.close()


def tool(name: str) -> str:
    """Our entry point ``name`` (next to the test interpreter), never libgearman's program of that name."""
    return str(Path(sys.executable).parent / name)


def read_until_closed(sock: socket.socket, deadline: float = 10.0) -> bytes:
    """Everything the peer sends until it closes (a reset counts as closed); fails if it never does."""
    end = time.monotonic() + deadline
    data = b""
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            return data
        except TimeoutError:
            break
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"the server did not close the connection within {deadline}s")
