"""Connection limits on an in-process server: connections refused past the maximum, silent connections closed,
and a peer that stops reading slowed down (the server stops reading from it) instead of buffered."""

from __future__ import annotations

import select
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from geartrain.cli.server_args import build_parser, config_from_args, parse_args
from geartrain.protocol.packets import PacketType as P
from geartrain.server.config import LimitsConfig, ServerConfig
from geartrain.server.core.config import EngineConfig
from servers import GearmanSocket, encode_req

MIB = 1024 * 1024


# The `server_factory` fixture (tests/integration/conftest.py) starts an in-process server from a config; it is
# used through the fixture, not imported, since several test directories have a conftest module.
ServerFactory = Callable[..., Any]


def _limited(**limits: object) -> ServerConfig:
    engine = EngineConfig(handle_prefix=b"H:test")
    return ServerConfig(hosts=("127.0.0.1",), port=0, engine=engine, limits=replace(LimitsConfig(), **limits))  # type: ignore[arg-type]


def _closed_by_server(sock: socket.socket, timeout: float = 10) -> bytes:
    """Read until the server closes; returns what it sent first."""
    sock.settimeout(timeout)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_max_connections_refuses_with_an_error_and_counts(server_factory: ServerFactory) -> None:
    server = server_factory(config=_limited(max_connections=2))
    with GearmanSocket(server.address) as first, GearmanSocket(server.address) as second:
        first.sync()
        second.sync()
        with socket.create_connection(("127.0.0.1", server.server.port), timeout=10) as third:
            assert b"Too many connections" in _closed_by_server(third)
        assert server.server.guard.refused == 1
        first.sync()
    with GearmanSocket(server.address) as again:  # a freed slot is usable
        again.sync()


def test_a_connection_that_sends_nothing_valid_is_closed_after_the_idle_timeout(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(config=_limited(idle_timeout=0.3))
    with (
        GearmanSocket(server.address) as talkative,
        socket.create_connection(("127.0.0.1", server.server.port)) as silent,
        socket.create_connection(("127.0.0.1", server.server.port)) as babbling,
    ):
        talkative.sync()
        babbling.sendall(encode_req(99, b"unknown packet type"))  # well framed, not valid: an ERROR, no credit
        assert _closed_by_server(silent) == b""
        assert b"INVALID_COMMAND" in _closed_by_server(babbling)
        talkative.sync()  # one valid packet is enough to stay
        assert server.server.guard.closed_idle == 2


def test_a_client_that_stops_reading_is_slowed_down_not_buffered(
    server_factory: ServerFactory,
) -> None:
    """It pipelines echoes without reading the answers: the server stops reading from it once the answers pile
    up, so what it can push in is bounded by the high-water mark and the kernel's buffers, not by its appetite."""
    server = server_factory(config=_limited(output_high_water=256 * 1024, max_unsent=0))
    request = encode_req(P.ECHO_REQ, b"e" * 1000)
    with GearmanSocket(server.address) as flooder, GearmanSocket(server.address) as bystander:
        flooder.sock.setblocking(False)
        sent = 0
        while sent < 256 * MIB:
            try:
                # Always go on from where the last partial send stopped, so the stream stays well framed.
                sent += flooder.sock.send(request[sent % len(request) :])
            except BlockingIOError:
                if not select.select([], [flooder.sock], [], 1.0)[1]:
                    break  # the server has stopped taking its bytes
        assert sent < 64 * MIB, f"{sent} bytes went in without a reply being read"
        assert server.server.guard.paused > 0
        bystander.sync()  # others are served meanwhile
        # Once it reads again it gets every answer, in order. It reads on a thread while it sends the rest of a
        # packet cut short: the server reads nothing more until the flooder has read.
        flooder.sock.settimeout(30)
        sent_packets, partial = divmod(sent, len(request))
        sent_packets += 1 if partial else 0
        answer = b"\0RES" + struct.pack(">II", P.ECHO_RES, 1000) + b"e" * 1000
        received = bytearray()

        def read_answers() -> None:
            while len(received) < len(answer) * sent_packets and (chunk := flooder.sock.recv(1 << 20)):
                received.extend(chunk)

        reader = threading.Thread(target=read_answers)
        reader.start()
        if partial:
            flooder.sock.sendall(request[partial:])
        reader.join(60)
        assert bytes(received) == answer * sent_packets


def test_accepted_sockets_get_tcp_keepalive_by_default(server_factory: ServerFactory) -> None:
    server = server_factory(config=_limited())
    with GearmanSocket(server.address) as client:
        client.sync()
        (connection,) = server.server.connections.values()
        sock = connection._transport.get_extra_info("socket")  # type: ignore[union-attr]
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 10
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 6


def test_limit_flags_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    def config(*argv: str) -> ServerConfig:
        parser = build_parser("geartrain server", gearmand_defaults=False)
        return config_from_args(parse_args(parser, argv), gearmand_defaults=False)

    default = config()
    assert default.limits == LimitsConfig()
    assert default.engine.max_queued_bytes == 1024**3
    assert (default.sigterm, default.drain_timeout, default.keepalive.enabled) == ("immediate", 30.0, True)
    flags = config(
        "--max-connections", "5", "--max-unsent", "2m", "--output-high-water", "64k", "--max-queued-bytes", "2g",
        "--idle-timeout", "7", "--sigterm", "graceful", "--drain-timeout", "0", "--no-keepalive",
    )  # fmt: skip
    assert flags.limits == LimitsConfig(
        max_connections=5, output_high_water=64 * 1024, max_unsent=2 * MIB, idle_timeout=7
    )
    assert (flags.engine.max_queued_bytes, flags.sigterm, flags.drain_timeout) == (2 * 1024**3, "graceful", 0.0)
    assert not flags.keepalive.enabled
    monkeypatch.setenv("GEARTRAIN_MAX_CONNECTIONS", "9")
    monkeypatch.setenv("GEARTRAIN_KEEPALIVE", "0")
    monkeypatch.setenv("GEARTRAIN_SIGTERM", "graceful")
    from_env = config()
    assert (from_env.limits.max_connections, from_env.keepalive.enabled, from_env.sigterm) == (9, False, "graceful")
    assert config("--max-connections", "10").limits.max_connections == 10  # the command line wins
