"""The HTTP listener's own limits: a cap on its connections, and a deadline for each request to arrive whole."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from geartrain.server.config import ServerConfig
from inprocess import InProcessServer


@pytest.fixture
def server() -> Iterator[InProcessServer]:
    running = InProcessServer(ServerConfig(port=0, http_port=0)).start()
    yield running
    running.stop()


def _http(server: InProcessServer) -> socket.socket:
    assert server.node.http is not None
    return socket.create_connection(("127.0.0.1", server.node.http.port), timeout=10)


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_connections_beyond_the_cap_get_503(server: InProcessServer) -> None:
    listener = server.node.http
    assert listener is not None
    listener.max_connections = 2
    held = [_http(server) for _ in range(2)]
    try:
        for sock in held:  # both served: the cap counts open connections, not these requests
            sock.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
        with _http(server) as third:
            assert _read_all(third).startswith(b"HTTP/1.1 503 ")
        assert listener.refused == 1
    finally:
        for sock in held:
            sock.close()


def test_a_request_that_does_not_arrive_in_time_is_answered_408(server: InProcessServer) -> None:
    listener = server.node.http
    assert listener is not None
    listener.request_timeout = 0.3
    with _http(server) as slow, _http(server) as idle, _http(server) as kept_alive:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x")  # the head never ends (a byte at a time, say)
        kept_alive.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
        assert kept_alive.recv(4096).startswith(b"HTTP/1.1 200 ")  # then idle on keep-alive
        started = time.monotonic()
        assert _read_all(slow).startswith(b"HTTP/1.1 408 ")
        assert _read_all(idle) == b""  # never sent anything: closed without a word
        assert _read_all(kept_alive) == b""  # idle after its response: closed as well
        # The sweep scheduled at start looks after 5 s (a quarter of the timeout, at most 5 s), then every 75 ms.
        assert time.monotonic() - started < 10
