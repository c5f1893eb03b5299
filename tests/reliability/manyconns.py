"""Open many connections to a server and check that every one of them is served (ECHO round trip each).

Used by tests/reliability/test_limits.py (10,000 connections) and benchmarks/reliability.py.
"""

from __future__ import annotations

import selectors
import socket
import struct
import time
from dataclasses import dataclass

from servers import PacketType, encode_req

_HEADER = struct.Struct(">4sII")


@dataclass
class HeldConnections:
    sockets: list[socket.socket]
    open_seconds: float
    echo_seconds: float = 0.0
    answered: int = 0

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


def open_connections(host: str, port: int, count: int) -> HeldConnections:
    started = time.monotonic()
    sockets = []
    try:
        for _ in range(count):
            sockets.append(socket.create_connection((host, port), timeout=30))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return HeldConnections(sockets, time.monotonic() - started)


def echo_on_every_connection(held: HeldConnections, timeout: float = 60) -> int:
    """Send one ECHO_REQ on each connection, then wait for every ECHO_RES; returns how many came back whole.

    A connection the server closed or answered otherwise is not counted.
    """
    started = time.monotonic()
    expected = {}
    selector = selectors.DefaultSelector()
    for number, sock in enumerate(held.sockets):
        token = b"%d" % number
        sock.sendall(encode_req(PacketType.ECHO_REQ, token))
        reply = _HEADER.pack(b"\0RES", PacketType.ECHO_RES, len(token)) + token
        expected[sock] = [reply, b""]
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    answered = 0
    deadline = time.monotonic() + timeout
    try:
        while expected and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                reply, got = expected[sock]
                try:
                    chunk = sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                got += chunk
                if not chunk or len(got) >= len(reply):
                    answered += got == reply
                    selector.unregister(sock)
                    del expected[sock]
                else:
                    expected[sock][1] = got
    finally:
        selector.close()
        for sock in held.sockets:
            sock.setblocking(True)
    held.echo_seconds = time.monotonic() - started
    held.answered = answered
    return answered
