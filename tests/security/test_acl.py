"""Access control against a live server: certificate names and secrets as identities, per-function permissions
for submit / work / admin read / admin write, clear refusals, and the count of them."""

from __future__ import annotations

import asyncio
import socket

import pytest
from tlshelpers import Pki, tls_settings

from geartrain import AdminClient, Client, Worker
from geartrain.errors import AdminError, PermissionDenied
from geartrain.security.policy import secret_digest

IO_TIMEOUT = 10.0
FRONTEND_SECRET = "correct horse battery staple"

ACL = f"""
[secrets]
frontend = "{secret_digest(FRONTEND_SECRET)}"
batch = "plain:batch-secret"
ops = "plain:ops-secret"

[[allow]]
who = ["anonymous"]
actions = ["submit"]
functions = ["public.*"]

[[allow]]
who = ["frontend", "*.example.com"]
actions = ["submit"]
functions = ["reverse"]

[[allow]]
who = ["batch"]
actions = ["work"]
functions = ["reverse", "public.*"]

[[allow]]
who = ["ops"]
actions = ["admin_read", "admin_write"]
functions = ["*"]

[[allow]]
who = ["web1.example.com"]
actions = ["admin_read"]
functions = ["reverse"]
"""


async def _worker(address: str, secret: str | None, **options: object) -> tuple[Worker, asyncio.Task[None]]:
    worker = Worker(address, secret=secret, **options)  # type: ignore[arg-type]
    worker.register("reverse", lambda job: job.data[::-1])
    worker.register("public.upper", lambda job: job.data.upper())
    return worker, asyncio.ensure_future(worker.run())


async def _wait_for_workers(admin: AdminClient, function: str, count: int) -> None:
    while True:
        rows = {row.name: row.workers for row in await admin.status()}
        if rows.get(function, 0) == count:
            return
        await asyncio.sleep(0.02)


async def test_secrets_grant_submit_and_work(secure_server) -> None:
    server = secure_server(acl=ACL)
    worker, task = await _worker(server.address, "batch-secret")
    try:
        async with Client(server.address, secret=FRONTEND_SECRET) as client:
            assert await client.do("reverse", b"abc") == b"cba"
            assert await client.do("public.upper", b"abc") == b"ABC"  # what anonymous may, everyone may
        async with Client(server.address) as anonymous:
            assert await anonymous.do("public.upper", b"x") == b"X"
            with pytest.raises(PermissionDenied, match="submit on function 'reverse' is not allowed for anonymous"):
                await anonymous.do("reverse", b"abc")
            assert await anonymous.echo(b"still connected") == b"still connected"
    finally:
        worker.stop(graceful=False)
        await task
    assert server.denials() == {"submit": 1}


async def test_a_worker_without_permission_is_not_registered(secure_server) -> None:
    server = secure_server(acl=ACL)
    worker, task = await _worker(server.address, FRONTEND_SECRET)  # frontend may submit, not work
    try:
        async with Client(server.address, secret=FRONTEND_SECRET) as client:
            await client.submit("reverse", b"abc", background=True)
        async with AdminClient(server.address, secret="batch-secret") as admin:
            with pytest.raises(AdminError, match="PERMISSION_DENIED"):
                await admin.status()  # batch has no admin rights either
        async with AdminClient(server.address, secret="ops-secret") as ops:
            (row,) = [row for row in await ops.status() if row.name == "reverse"]
            assert (row.total, row.workers) == (1, 0)  # queued, and nobody may work it
    finally:
        worker.stop(graceful=False)
        await task
    assert server.denials()["work"] == 2  # CAN_DO reverse and CAN_DO public.upper


def _raw_exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
        return b"".join(chunks)


def _packet(ptype: int, *args: bytes) -> bytes:
    body = b"\0".join(args)
    return b"\0REQ" + ptype.to_bytes(4, "big") + len(body).to_bytes(4, "big") + body


def test_refusals_on_the_wire(secure_server) -> None:
    """What a third-party client sees: ERROR packets with code PERMISSION_DENIED, admin ERR lines; `version` open."""
    server = secure_server(acl=ACL)
    reply = _raw_exchange(server.port, _packet(7, b"reverse", b"", b"data") + b"version\r\nstatus\r\n")
    expected_error = b"PERMISSION_DENIED\0submit on function 'reverse' is not allowed for anonymous"
    assert reply.startswith(b"\0RES" + (19).to_bytes(4, "big") + len(expected_error).to_bytes(4, "big"))
    assert expected_error in reply
    text = reply[12 + len(expected_error) :]
    assert text.startswith(b"OK 1.1.20")
    assert text.endswith(b"ERR PERMISSION_DENIED status+on+the+server+is+not+allowed+for+anonymous\r\n")
    # A wrong secret is refused and the connection closed: each guess costs a connection.
    reply = _raw_exchange(server.port, _packet(26, b"auth=guess") + _packet(16, b"after"))
    assert reply == b"\0RES" + (19).to_bytes(4, "big") + (32).to_bytes(4, "big") + b"PERMISSION_DENIED\0Unknown secret"
    assert server.denials() == {"submit": 1, "admin_read": 1, "auth": 1}


async def test_client_learns_its_secret_was_refused(secure_server) -> None:
    server = secure_server(acl=ACL)
    async with Client(server.address, secret="wrong") as client:
        with pytest.raises(PermissionDenied, match="Unknown secret"):
            await client.do("public.upper", b"x")


async def test_secret_is_harmless_without_access_control(secure_server) -> None:
    server = secure_server()
    async with Client(server.address, secret=FRONTEND_SECRET) as client:
        assert await client.echo(b"ok") == b"ok"
    async with AdminClient(server.address, secret=FRONTEND_SECRET) as admin:
        assert await admin.status() == []


async def test_certificate_names_are_identities(secure_server, pki: Pki) -> None:
    server = secure_server(tls=tls_settings(pki), acl=ACL)
    worker, task = await _worker(server.address, "batch-secret", tls=pki.client_context())
    try:
        async with AdminClient(server.address, tls=pki.client_context(pki.ops)) as ops:
            await _wait_for_workers(ops, "reverse", 1)
            await ops.create_function("scratch")
            await ops.drop_function("scratch")
        # web1's certificate: a SAN matching "*.example.com" grants submit; admin read only on "reverse".
        async with Client(server.address, tls=pki.client_context(pki.web1)) as web1:
            assert await web1.do("reverse", b"tls") == b"slt"
        async with AdminClient(server.address, tls=pki.client_context(pki.web1)) as web1_admin:
            with pytest.raises(AdminError, match=r"status on the server is not allowed for web1\.example\.com"):
                await web1_admin.status()
            with pytest.raises(AdminError, match="PERMISSION_DENIED"):
                await web1_admin.create_function("reverse")
        # No certificate over TLS: anonymous.
        async with AdminClient(server.address, tls=pki.client_context()) as anonymous:
            with pytest.raises(AdminError, match="for anonymous"):
                await anonymous.workers()
    finally:
        worker.stop(graceful=False)
        await task


async def test_admin_write_needs_the_functions_grant(secure_server, pki: Pki) -> None:
    acl = ACL + '\n[[allow]]\nwho = ["web1.example.com"]\nactions = ["admin_write"]\nfunctions = ["reverse"]\n'
    server = secure_server(tls=tls_settings(pki), acl=acl)
    async with Client(server.address, tls=pki.client_context(pki.web1)) as web1:
        job = await web1.submit("reverse", b"queued", background=True)
    async with AdminClient(server.address, tls=pki.client_context(pki.web1)) as web1_admin:
        assert await web1_admin.cancel_job(job.handle)
        with pytest.raises(AdminError, match="shutdown on the server is not allowed"):
            await web1_admin.shutdown()
    assert server.denials() == {"admin_write": 1}


def test_a_server_without_an_acl_file_has_nothing_to_reload(secure_server) -> None:
    server = secure_server(acl=ACL)  # a policy given in code, not read from a file: nothing to read again
    assert server.server.reload_acl() is False
    open_server = secure_server()
    with pytest.raises(ValueError, match="--acl-file"):
        open_server.server.access.reload(server.server.access.policy)
