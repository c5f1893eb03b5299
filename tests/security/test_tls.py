"""TLS on the Gearman port: our client, worker and admin client over TLS, Python's ssl module as a third-party
client, client certificates, and handshakes that stall without holding anyone else up."""

from __future__ import annotations

import asyncio
import socket
import ssl

import pytest
from tlshelpers import Pki, read_until_closed, tls_settings

from geartrain import AdminClient, Client, Worker
from geartrain.errors import ConnectionLost, NoServersAvailable

IO_TIMEOUT = 10.0


async def _serve_reverse(worker: Worker) -> asyncio.Task[None]:
    worker.register("reverse", lambda job: job.data[::-1])
    return asyncio.ensure_future(worker.run())


async def test_client_and_worker_over_tls(secure_server, pki: Pki) -> None:
    server = secure_server(tls=tls_settings(pki))
    worker = Worker(server.address, tls=pki.client_context())
    task = await _serve_reverse(worker)
    try:
        async with Client(server.address, tls=pki.client_context()) as client:
            assert await client.do("reverse", b"Hello World!") == b"!dlroW olleH"
        async with AdminClient(server.address, tls=pki.client_context()) as admin:
            (row,) = [row for row in await admin.status() if row.name == "reverse"]
            assert row.workers == 1
    finally:
        worker.stop(graceful=False)
        await task


def test_python_ssl_module_speaks_binary_and_admin(secure_server, pki: Pki) -> None:
    """A client built on nothing but Python's ssl module: an ECHO packet, then an admin line, on one TLS stream."""
    server = secure_server(tls=tls_settings(pki))
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT)
    with raw, context.wrap_socket(raw, server_hostname="localhost") as stream:
        assert stream.version() in ("TLSv1.2", "TLSv1.3")
        stream.sendall(b"\0REQ" + (16).to_bytes(4, "big") + (5).to_bytes(4, "big") + b"hello")
        assert _read_exactly(stream, 17) == b"\0RES" + (17).to_bytes(4, "big") + (5).to_bytes(4, "big") + b"hello"
        stream.sendall(b"version\r\n")
        assert _read_line(stream).startswith(b"OK ")


def test_a_large_packet_over_tls_then_more(secure_server, pki: Pki) -> None:
    """A large packet is read in place on a TLS stream too (server/connection.py LargePacketReader)."""
    server = secure_server(tls=tls_settings(pki))
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    payload = bytes(range(256)) * (3 << 12)  # 3 MiB, over LARGE_PACKET
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT)
    with raw, context.wrap_socket(raw, server_hostname="localhost") as stream:
        echo = b"\0REQ" + (16).to_bytes(4, "big") + len(payload).to_bytes(4, "big") + payload
        stream.sendall(echo + b"version\r\n")
        reply = b"\0RES" + (17).to_bytes(4, "big") + len(payload).to_bytes(4, "big") + payload
        assert _read_exactly(stream, len(reply)) == reply
        assert _read_line(stream).startswith(b"OK ")


def test_plain_tcp_gets_no_gearman_answer(secure_server, pki: Pki) -> None:
    """A client that does not speak TLS cannot talk Gearman to a TLS port: its bytes are no handshake."""
    server = secure_server(tls=tls_settings(pki))
    with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as sock:
        sock.sendall(b"version\r\n")
        received = read_until_closed(sock)
    assert not received.startswith(b"OK")


async def test_our_client_refuses_a_server_its_ca_did_not_sign(secure_server, pki: Pki, tmp_path) -> None:
    from pki import TestAuthority

    other = TestAuthority(tmp_path / "elsewhere", "unrelated CA")
    server = secure_server(tls=tls_settings(pki))
    from geartrain.security.tls import client_context

    async with Client(server.address, tls=client_context(ca_file=str(other.ca_file))) as client:
        with pytest.raises(NoServersAvailable, match="CERTIFICATE_VERIFY_FAILED"):
            await client.echo(b"x")


@pytest.mark.parametrize(("certificate", "accepted"), [("ops", True), (None, False), ("intruder", False)])
async def test_required_client_certificates(secure_server, pki: Pki, certificate: str | None, accepted: bool) -> None:
    server = secure_server(tls=tls_settings(pki, verify_client="required"))
    files = getattr(pki, certificate) if certificate else None
    async with AdminClient(server.address, tls=pki.client_context(files)) as admin:
        if accepted:
            assert (await admin.version()).startswith("1.1.20")
        else:
            # TLS 1.3 finishes the client's side of the handshake before the server checks the certificate, so the
            # refusal may surface at the first read rather than at connect: either way, no answer comes.
            with pytest.raises(ConnectionLost):
                await admin.version()


def test_stalled_handshakes_block_nobody_and_time_out(secure_server, pki: Pki) -> None:
    """Connections that open TCP and then send nothing (or half a ClientHello) do not delay other TLS clients,
    and the server closes them once the handshake timeout has passed."""
    server = secure_server(tls=tls_settings(pki, handshake_timeout=1.0))
    stalled = [socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) for _ in range(3)]
    half = socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT)
    half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # the start of a ClientHello, then nothing
    stalled.append(half)
    try:
        context = ssl.create_default_context(cafile=str(pki.ca_file))
        for _ in range(5):  # served while the stalled handshakes are pending
            raw = socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT)
            with raw, context.wrap_socket(raw, server_hostname="localhost") as stream:
                stream.sendall(b"version\r\n")
                assert _read_line(stream).startswith(b"OK ")
        for sock in stalled:
            assert read_until_closed(sock) == b""  # closed by the server, nothing sent
    finally:
        for sock in stalled:
            sock.close()


# ---------------------------------------------------------------------------------------------------------------


def _read_exactly(stream: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = stream.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _read_line(stream: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = stream.recv(1)
        if not chunk:
            break
        data += chunk
    return data
