"""A real geartrain server over real sockets: bad input, big payloads, timers, shutdown."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable

import pytest

from geartrain.protocol.codec import LARGE_PACKET, encode_request
from geartrain.protocol.packets import PacketType
from geartrain.server.config import ServerConfig
from inprocess import InProcessServer, make_config
from servers import GearmanSocket, admin_raw, wait_until

P = PacketType


def _closed(sock: GearmanSocket, timeout: float = 5.0) -> bool:
    """True once the server has closed the connection (reads what is left first)."""
    sock.sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not sock.sock.recv(65536):
                return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
    return False


def _queued_job(server: InProcessServer, function: bytes = b"f") -> tuple[GearmanSocket, str]:
    client = GearmanSocket(server.address)
    handle = client.submit(function.decode(), b"payload", unique="u1", ptype=P.SUBMIT_JOB_BG)
    return client, handle


class TestBadInput:
    """Malformed input gets an ERROR (or a closed connection) and disturbs nothing else."""

    def test_unknown_type_gets_error_and_connection_stays_usable(self, server: InProcessServer) -> None:
        with GearmanSocket(server.address) as sock:
            sock.sock.sendall(struct.pack(">4sII", b"\0REQ", 77, 3) + b"abc")
            error = sock.expect(P.ERROR)
            assert error.args == [b"INVALID_COMMAND", b"Unknown packet type 77"]
            sock.sync()

    def test_response_magic_gets_invalid_magic(self, server: InProcessServer) -> None:
        with GearmanSocket(server.address) as sock:
            sock.sock.sendall(struct.pack(">4sII", b"\0RES", P.ECHO_REQ, 2) + b"hi")
            assert sock.expect(P.ERROR).args == [b"INVALID_MAGIC", b"Request magic expected"]
            sock.sync()

    def test_too_few_arguments_gets_invalid_packet(self, server: InProcessServer) -> None:
        with GearmanSocket(server.address) as sock:
            sock.sock.sendall(struct.pack(">4sII", b"\0REQ", P.SUBMIT_JOB, 5) + b"f\0abc")
            assert sock.expect(P.ERROR).args == [b"INVALID_PACKET", b"Too few arguments for SUBMIT_JOB"]
            sock.sync()

    def test_garbage_magic_gets_error_then_close(self, server: InProcessServer) -> None:
        with GearmanSocket(server.address) as sock:
            sock.sock.sendall(b"\0XYZ" + bytes(8))
            assert sock.expect(P.ERROR).args[0] == b"INVALID_MAGIC"
            assert _closed(sock)

    def test_oversize_packet_is_refused_before_its_body(self, server_factory: Callable[..., InProcessServer]) -> None:
        config = ServerConfig(hosts=("127.0.0.1",), port=0, max_packet_size=1024, engine=make_config().engine)
        server = server_factory(config=config)
        with GearmanSocket(server.address) as sock:
            # Only the header is sent: the server must not wait for (or allocate) 1 GiB.
            sock.sock.sendall(struct.pack(">4sII", b"\0REQ", P.SUBMIT_JOB_BG, 1 << 30))
            assert sock.expect(P.ERROR).args[0] == b"ARGUMENT_TOO_LARGE"
            assert _closed(sock)

    def test_endless_admin_line_is_cut_off(self, server: InProcessServer) -> None:
        with GearmanSocket(server.address) as sock:
            sock.sock.sendall(b"x" * 20000)
            assert _closed(sock)

    def test_bad_connections_do_not_disturb_others(self, server: InProcessServer) -> None:
        client, handle = _queued_job(server)
        worker = GearmanSocket(server.address)
        worker.send(P.CAN_DO, b"f")
        for garbage in (b"\0XYZ" + bytes(8), struct.pack(">4sII", b"\0REQ", 0, 0), b"\xff" * 9000, b"a b c d e f\n"):
            with GearmanSocket(server.address) as bad:
                bad.sock.sendall(garbage)
                _closed(bad, timeout=1.0)
        assert worker.request(P.GRAB_JOB, reply=P.JOB_ASSIGN).args == [handle.encode(), b"f", b"payload"]
        client.sync()
        worker.close()
        client.close()


class TestPayloads:
    def test_8_mib_payload_and_every_byte_value(self, server: InProcessServer) -> None:
        payload = bytes(range(256)) * (8 * 1024 * 1024 // 256)
        with GearmanSocket(server.address, timeout=30) as client, GearmanSocket(server.address, timeout=30) as worker:
            worker.send(P.CAN_DO, b"big")
            handle = client.submit("big", payload)
            job = worker.request(P.GRAB_JOB, reply=P.JOB_ASSIGN)
            assert job.args == [handle.encode(), b"big", payload]
            worker.send(P.WORK_COMPLETE, handle.encode(), payload[::-1])
            done = client.expect(P.WORK_COMPLETE)
            assert done.args == [handle.encode(), payload[::-1]]

    def test_large_packets_back_to_back_with_small_ones_between(self, server: InProcessServer) -> None:
        """Large packets are read in place (server/connection.py LargePacketReader): the reads must stop at each
        one's end, whatever follows in the stream, and hand the connection back for the small ones."""
        payloads = [bytes([n + 1]) * size for n, size in enumerate((LARGE_PACKET, 3 * LARGE_PACKET + 7, 2 << 20))]
        stream = b"".join(
            encode_request(P.ECHO_REQ, payload) + encode_request(P.ECHO_REQ, b"small %d" % n)
            for n, payload in enumerate(payloads)
        )
        with GearmanSocket(server.address, timeout=30) as sock:
            sock.sock.sendall(stream + encode_request(P.ECHO_REQ, b"end"))
            for n, payload in enumerate(payloads):
                assert sock.expect(P.ECHO_RES).body == payload
                assert sock.expect(P.ECHO_RES).body == b"small %d" % n
            assert sock.expect(P.ECHO_RES).body == b"end"

    def test_echo_with_nul_bytes(self, server: InProcessServer) -> None:
        with GearmanSocket(server.address) as sock:
            assert sock.request(P.ECHO_REQ, b"hello\0world", reply=P.ECHO_RES).body == b"hello\0world"

    def test_one_thousand_functions(self, server: InProcessServer) -> None:
        names = [f"fn-{i}".encode() for i in range(1000)]
        with GearmanSocket(server.address) as worker, GearmanSocket(server.address) as client:
            for name in names:
                worker.send(P.CAN_DO, name)
            for name in names:
                client.send(P.SUBMIT_JOB_BG, name, b"", b"x")
            for _ in names:
                client.expect(P.JOB_CREATED)
            status = admin_raw(server.address, "status")
            rows = {line.split(b"\t")[0]: line.split(b"\t")[1:] for line in status.split(b"\n") if b"\t" in line}
            assert len(rows) == 1000
            assert all(rows[name] == [b"1", b"0", b"1"] for name in names)
            grabbed = set()
            for _ in names:
                grabbed.add(worker.request(P.GRAB_JOB, reply=P.JOB_ASSIGN).args[1])
            assert grabbed == set(names)


class TestTimers:
    def test_epoch_job_wakes_a_sleeping_worker_on_time(self, server: InProcessServer) -> None:
        with GearmanSocket(server.address) as worker, GearmanSocket(server.address) as client:
            worker.send(P.CAN_DO, b"later")
            worker.send(P.PRE_SLEEP)
            worker.sync()
            when = int(time.time()) + 2
            client.request(P.SUBMIT_JOB_EPOCH, b"later", b"", str(when).encode(), b"x", reply=P.JOB_CREATED)
            # gearmand 1.1.20 never wakes the worker; geartrain sends NOOP once the time comes (not before).
            worker.expect(P.NOOP, timeout=5)
            assert time.time() >= when
            assert worker.request(P.GRAB_JOB, reply=P.JOB_ASSIGN).args[1:] == [b"later", b"x"]

    def test_worker_timeout_requeues_to_another_worker(self, server: InProcessServer) -> None:
        with (
            GearmanSocket(server.address) as slow,
            GearmanSocket(server.address) as fast,
            GearmanSocket(server.address) as client,
        ):
            slow.send(P.CAN_DO_TIMEOUT, b"t", b"1000")
            handle = client.submit("t", b"data")
            assert slow.request(P.GRAB_JOB, reply=P.JOB_ASSIGN).args[0] == handle.encode()
            fast.send(P.CAN_DO, b"t")
            job = fast.grab(timeout=5)
            assert job.args[0] == handle.encode()
            slow.send(P.WORK_COMPLETE, handle.encode(), b"late")
            assert slow.expect(P.ERROR).args == [b"JOB_NOT_FOUND", b"Job given in work result not found"]
            fast.send(P.WORK_COMPLETE, handle.encode(), b"ok")
            assert client.expect(P.WORK_COMPLETE).args == [handle.encode(), b"ok"]


class TestShutdown:
    def test_admin_shutdown_stops_the_server(self, server: InProcessServer) -> None:
        assert admin_raw(server.address, "shutdown") == b"OK\r\n"
        wait_until(lambda: server.stopped, timeout=5, message="server stop")

    def test_graceful_shutdown_waits_for_jobs(self, server: InProcessServer) -> None:
        client, handle = _queued_job(server)
        worker = GearmanSocket(server.address)
        worker.send(P.CAN_DO, b"f")
        assert admin_raw(server.address, "shutdown graceful") == b"OK\r\n"
        # New connections are refused, existing ones keep working until the last job is done.
        wait_until(lambda: _refused(server.address), timeout=5, message="listener closed")
        assert not server.stopped
        assert worker.request(P.GRAB_JOB, reply=P.JOB_ASSIGN).args[0] == handle.encode()
        worker.send(P.WORK_COMPLETE, handle.encode(), b"")
        wait_until(lambda: server.stopped, timeout=5, message="server stop after the last job")
        worker.close()
        client.close()


def _refused(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return True
    return False


def test_text_and_binary_mixed_on_one_connection(server: InProcessServer) -> None:
    with GearmanSocket(server.address) as sock:
        sock.sock.sendall(b"version\n" + struct.pack(">4sII", b"\0REQ", P.ECHO_REQ, 2) + b"hi" + b"getpid\r\n")
        expected_text = b"OK 1.1.20+geartrain"
        data = b""
        deadline = time.monotonic() + 5
        while data.count(b"\n") < 2 and time.monotonic() < deadline:
            data += sock.sock.recv(65536)
        assert data.startswith(expected_text)
        assert b"\0RES" + struct.pack(">II", P.ECHO_RES, 2) + b"hi" in data


@pytest.mark.parametrize("retries", [1, 2])
def test_job_retries_drop_a_job_after_n_lost_assignments(
    server_factory: Callable[..., InProcessServer], retries: int
) -> None:
    server = server_factory(job_retries=retries)
    with GearmanSocket(server.address) as client:
        handle = client.submit("r", b"x")
        for _ in range(retries):
            with GearmanSocket(server.address) as worker:
                worker.send(P.CAN_DO, b"r")
                assert worker.request(P.GRAB_JOB, reply=P.JOB_ASSIGN).args[0] == handle.encode()
        failed = client.expect(P.WORK_FAIL)
        assert failed.body == handle.encode()


def test_an_internal_error_costs_only_its_connection(server: InProcessServer) -> None:
    """A bug in a handler (simulated) closes that connection with SERVER_ERROR; the server and others go on."""
    engine = server.server.engine

    def broken(peer: object, args: tuple[bytes, ...], now: float) -> None:
        raise RuntimeError("simulated bug")

    engine.handlers[PacketType.OPTION_REQ] = broken  # only this test's server is affected
    with GearmanSocket(server.address) as bystander, GearmanSocket(server.address) as victim:
        bystander.sync()
        victim.send(PacketType.OPTION_REQ, b"exceptions")
        assert victim.expect(PacketType.ERROR).args[0] == b"SERVER_ERROR"
        assert _closed(victim)
        bystander.sync()
        assert bystander.request(PacketType.ECHO_REQ, b"still here", reply=PacketType.ECHO_RES).body == b"still here"
