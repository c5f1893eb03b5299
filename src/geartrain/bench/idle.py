"""Many idle connections held open in the calling process: the file-descriptor limit, and source addresses.

Each idle connection costs one descriptor here and one in the server, so both are bounded by ``RLIMIT_NOFILE``;
:func:`raise_open_files` lifts the soft limit to the hard one (a process without ``CAP_SYS_RESOURCE`` cannot go
further), and servers started afterwards inherit it. One (source address, destination) pair offers only the
ephemeral port range (about 28,000 ports by default), so the connections are spread over several loopback source
addresses (127.0.0.2, 127.0.0.3, ...), with the port picked at connect time (``IP_BIND_ADDRESS_NO_PORT``).
"""

from __future__ import annotations

import resource
import socket

import geartrain.bench.packets as packets

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux; the constant since Python 3.12
PER_SOURCE = 20_000  # connections per source address, well inside the default ephemeral range
BATCH = 32  # connections opened before their echoes are awaited: no more than a default listen backlog


def raise_open_files() -> tuple[int, int]:
    """Lift the soft ``RLIMIT_NOFILE`` to the hard limit; returns the (soft, hard) limits now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _connect_from(address: tuple[str, int], source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
        sock.settimeout(30)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def open_idle(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` connections to a loopback server, each proven alive by one ECHO_REQ (opened in batches of
    :data:`BATCH`, so the accept queue never overflows and no SYN waits a second for its retry)."""
    echo = packets.request(packets.ECHO_REQ, b"idle")
    reply = packets.response_header(packets.ECHO_RES, 4) + b"idle"
    address = (host, port)
    socks: list[socket.socket] = []
    try:
        for first in range(0, count, BATCH):
            opened = []
            for number in range(first, min(first + BATCH, count)):
                source = f"127.0.0.{2 + number // PER_SOURCE}"
                opened.append(_connect_from(address, source))
            for sock in opened:
                sock.sendall(echo)
            socks.extend(opened)
            for sock in opened:
                data = b""
                while len(data) < len(reply):
                    chunk = sock.recv(len(reply) - len(data))
                    if not chunk:
                        raise ConnectionError(f"the server closed idle connection {len(socks)} of {count}")
                    data += chunk
                if data != reply:
                    raise ConnectionError("an idle connection got a wrong ECHO_RES")
    except BaseException:
        close_all(socks)
        raise
    return socks


def still_open(socks: list[socket.socket]) -> int:
    """How many of ``socks`` the server has not closed (nothing to read and no end of stream)."""
    alive = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            alive += sock.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    return alive


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()
