"""A real `geartrain server` process with its HTTP listener, both on ports the kernel picked (port 0)."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from servers import HOST, REPO_ROOT, START_TIMEOUT, STOP_TIMEOUT, wait_until

LISTENING = re.compile(r"\[geartrain\.(server|http)\] (?:HTTP )?listening on \('127\.0\.0\.1', (\d+)\)")


@dataclass
class HttpServer:
    """A running server: ``address`` is the Gearman port, ``http_port`` the HTTP one."""

    process: subprocess.Popen[bytes]
    port: int
    http_port: int
    log_path: Path

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One request on a fresh connection: (status, headers, body)."""
        connection = http.client.HTTPConnection(HOST, self.http_port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def get_json(self, path: str) -> object:
        status, _, body = self.request("GET", path)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def post_json(self, path: str, data: object | None = None, expect: int = 200) -> object:
        body = None if data is None else json.dumps(data).encode()
        status, _, reply = self.request("POST", path, body, {"Content-Type": "application/json"})
        assert status == expect, (path, status, reply)
        return json.loads(reply)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_http_server(workdir: Path, *extra: str) -> HttpServer:
    """Start `geartrain server` with ``--http-port 0`` and read both ports from its log."""
    log_path = workdir / f"server-{time.monotonic_ns()}.log"
    command = [
        sys.executable, "-m", "geartrain", "server",
        "--listen", HOST, "--port", "0",
        "--http-listen", HOST, "--http-port", "0",
        "--verbose", "INFO",
        *(extra or ("--store", "memory")),
    ]  # fmt: skip
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT / "src"), env.get("PYTHONPATH", "")) if p)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir
        )

    def ports() -> dict[str, int] | None:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{log_path.read_text()}")
        found = {kind: int(port) for kind, port in LISTENING.findall(log_path.read_text(errors="replace"))}
        return found if len(found) == 2 else None

    try:
        found = wait_until(ports, START_TIMEOUT, "the server to log both listening ports")
    except AssertionError:
        process.kill()
        process.wait()
        raise
    return HttpServer(process, found["server"], found["http"], log_path)
