"""Capacity on a real server process: 10,000 connections held (and one more refused), the queued-bytes cap from
the command line, and a client that never reads cut at --max-unsent while the server's memory stays bounded."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from manyconns import echo_on_every_connection, open_connections
from serverproc import ServerProcess, raise_open_files

from geartrain.protocol.packets import PacketType as P
from servers import GearmanSocket, admin, admin_raw, encode_req, parse_status, wait_until

CONNECTIONS = 10_000
MIB = 1024 * 1024


def _closed_by_server(sock: socket.socket, timeout: float = 10) -> bytes:
    """Read until the server closes; returns what it sent first."""
    sock.settimeout(timeout)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


# ---------------------------------------------------------------------------------------------- connections


def test_ten_thousand_connections_are_held_and_one_more_is_refused(tmp_path: Path) -> None:
    needed = CONNECTIONS + 200
    if raise_open_files(needed) < needed:
        message = f"needs an open-file limit of {needed} (ulimit -Hn is lower)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # Room for the held connections plus the test's own client and worker; the admin checks come and go.
    limit = CONNECTIONS + 2
    server = ServerProcess(tmp_path / "server.log", "--store", "memory", "--max-connections", str(limit), "-b", "4096")
    try:
        held = open_connections("127.0.0.1", server.port, CONNECTIONS)
        try:
            assert echo_on_every_connection(held) == CONNECTIONS
            rss = server.rss_kib()
            with GearmanSocket(server.address) as client, GearmanSocket(server.address) as worker:
                worker.send(P.CAN_DO, b"f")
                handle = client.submit("f", b"still served")
                assert worker.request(P.GRAB_JOB, reply=P.JOB_ASSIGN).args[0] == handle.encode()
                with socket.create_connection(("127.0.0.1", server.port), timeout=10) as extra:
                    refusal = _closed_by_server(extra)
                    assert b"Too many connections" in refusal
                worker.send(P.WORK_COMPLETE, handle.encode(), b"ok")
                assert client.expect(P.WORK_COMPLETE).args == [handle.encode(), b"ok"]
            print(
                f"{CONNECTIONS} connections: opened in {held.open_seconds:.1f}s, "
                f"all echoed in {held.echo_seconds:.1f}s, server RSS {rss // 1024} MiB"
            )
        finally:
            held.close()
        assert admin_raw(server.address, "version").startswith(b"OK")  # the slots came back
        assert "refused a connection" in server.log()
    finally:
        assert server.stop() == 0, server.log()


def test_queued_bytes_cap_from_the_command_line(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server.log", "--store", "memory", "--max-queued-bytes", "1k")
    try:
        with GearmanSocket(server.address) as client:
            client.submit("f", b"x" * 600, ptype=P.SUBMIT_JOB_BG)
            client.send(P.SUBMIT_JOB_BG, b"g", b"", b"y" * 600)
            error = client.expect(P.ERROR)
            assert error.args[0] == b"QUEUE_ERROR" and b"--max-queued-bytes" in error.args[1]
            client.submit("g", b"y" * 400, ptype=P.SUBMIT_JOB_BG)
    finally:
        assert server.stop() == 0


# ---------------------------------------------------------------------------------------------- slow readers


def test_a_client_that_never_reads_its_results_is_cut_and_the_server_stays_small(tmp_path: Path) -> None:
    """A worker sends it results much faster than it reads them (never): past --max-unsent it is cut, the server's
    memory grows by about the cap rather than by everything it was sent, and other clients get their results."""
    result = b"r" * MIB
    jobs = 300
    server = ServerProcess(
        tmp_path / "server.log", "--store", "memory", "--max-unsent", "8m", "--output-high-water", "1m"
    )
    try:
        before = server.rss_kib()
        with socket.create_connection(("127.0.0.1", server.port)) as slow, GearmanSocket(server.address) as bystander:
            slow.sendall(b"".join(encode_req(P.SUBMIT_JOB, b"big", b"", b"%d" % i) for i in range(jobs)))
            wait_until(
                lambda: (
                    (row := parse_status(admin(server.address, "status")).get("big")) is not None and row.total == jobs
                )
            )
            handle = bystander.submit("big", b"mine")
            peak = _serve_until_empty(server, result)
            assert bystander.expect(P.WORK_COMPLETE, timeout=60).args == [handle.encode(), result]
            received = _read_until_closed(slow)
        grown = peak - before
        print(f"slow reader cut after {received // MIB} MiB; server RSS peak +{grown // 1024} MiB for {jobs} MiB sent")
        assert received < jobs * MIB // 4
        assert grown < 150 * 1024, f"server grew by {grown} KiB"
        assert "exceed --max-unsent" in server.log()
        assert server.alive()
    finally:
        assert server.stop() == 0, server.log()


def _serve_until_empty(server: ServerProcess, result: bytes) -> int:
    """One worker answering every job of ``big`` with ``result`` until none is left; returns the server's peak RSS
    (KiB) seen between jobs."""
    peak = 0
    with GearmanSocket(server.address, timeout=60) as worker:
        worker.send(P.CAN_DO, b"big")
        while True:
            worker.send(P.GRAB_JOB)
            reply = worker.recv()
            if reply.type == P.NO_JOB:
                return peak
            assert reply.type == P.JOB_ASSIGN, reply
            worker.send(P.WORK_COMPLETE, reply.args[0], result)
            peak = max(peak, server.rss_kib())


def _read_until_closed(sock: socket.socket) -> int:
    """Bytes read before the server's close (or reset) shows."""
    sock.settimeout(30)
    received = 0
    try:
        while chunk := sock.recv(MIB):
            received += len(chunk)
    except ConnectionResetError:
        pass
    return received
