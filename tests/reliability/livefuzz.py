"""Random and mutated input against a live server, while a well-behaved client is served on its own connection.

Used by tests/reliability/test_fuzz_live.py (a short run) and benchmarks/reliability.py (a long one).
"""

from __future__ import annotations

import random
import socket
import time
from dataclasses import dataclass

from hostile import hostile_input
from servers import GearmanSocket, PacketType, admin_raw

P = PacketType
KEPT_FUNCTION = "kept"
CHECK_EVERY = 100  # inputs between two checks of the well-behaved client


@dataclass
class FuzzReport:
    inputs: int = 0
    bytes_sent: int = 0
    closed_by_server: int = 0
    good_round_trips: int = 0
    slowest_round_trip: float = 0.0


class _Fuzzer:
    """One hostile connection; reconnects when the server closes it (as it should after fatal input)."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.sock = self._connect()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=5)
        sock.setblocking(False)
        return sock

    def send(self, data: bytes) -> bool:
        """Send ``data`` and read away what the server said; ``False`` if the server closed the connection."""
        try:
            self._send_all(data)
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return self._reconnect()
        except BlockingIOError:
            return True
        except OSError:
            return self._reconnect()

    def _send_all(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + 5
        while view:
            try:
                view = view[self.sock.send(view) :]
            except BlockingIOError:
                # The server stopped reading from us (it waits for a packet body, or paused us): fine, drop the rest.
                if time.monotonic() > deadline:
                    return
                self._drain()

    def _drain(self) -> None:
        try:
            while self.sock.recv(65536):
                pass
        except BlockingIOError:
            time.sleep(0.001)

    def restart(self) -> None:
        self.sock.close()
        self.sock = self._connect()

    def _reconnect(self) -> bool:
        self.sock.close()
        self.sock = self._connect()
        return False

    def close(self) -> None:
        self.sock.close()


def queue_kept_jobs(address: str, count: int) -> list[bytes]:
    """Background jobs that must come through the fuzzing untouched; returns their workloads."""
    workloads = [f"kept-{i}".encode() for i in range(count)]
    with GearmanSocket(address) as client:
        for data in workloads:
            client.submit(KEPT_FUNCTION, data, ptype=P.SUBMIT_JOB_BG)
    return workloads


def take_kept_jobs(address: str, count: int) -> list[bytes]:
    with GearmanSocket(address) as worker:
        worker.send(P.CAN_DO, KEPT_FUNCTION.encode())
        taken = []
        for _ in range(count):
            handle, _, data = worker.request(P.GRAB_JOB, reply=P.JOB_ASSIGN).args
            taken.append(data)
            worker.send(P.WORK_COMPLETE, handle, b"")
        worker.request(P.GRAB_JOB, reply=P.NO_JOB)
    return taken


def fuzz(address: str, inputs: int, seed: int, connections: int = 4) -> FuzzReport:
    """Send ``inputs`` hostile inputs over ``connections`` connections; check a good client every CHECK_EVERY.

    Raises AssertionError if the good client is not answered correctly (a 10 s socket timeout bounds each check).
    """
    rng = random.Random(seed)
    host, port = address.rsplit(":", 1)
    report = FuzzReport()
    fuzzers = [_Fuzzer((host, int(port))) for _ in range(connections)]
    try:
        with GearmanSocket(address) as good:
            for number in range(inputs):
                data = hostile_input(rng)
                if b"shutdown" in data.lower():
                    continue  # a valid admin command that stops the server is not a crash
                fuzzer = rng.choice(fuzzers)
                if not fuzzer.send(data):
                    report.closed_by_server += 1
                elif rng.random() < 0.03:
                    fuzzer.restart()  # a fresh stream now and then, so input is not all swallowed as one body
                report.inputs += 1
                report.bytes_sent += len(data)
                if number % CHECK_EVERY == 0:
                    started = time.monotonic()
                    token = f"still served {number}".encode()
                    assert good.request(P.ECHO_REQ, token, reply=P.ECHO_RES).body == token
                    report.good_round_trips += 1
                    report.slowest_round_trip = max(report.slowest_round_trip, time.monotonic() - started)
    finally:
        for fuzzer in fuzzers:
            fuzzer.close()
    assert admin_raw(address, "version").startswith(b"OK")
    return report
