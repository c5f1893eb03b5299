"""Real server processes on one store: the second is refused, a killed one's store is taken over at once, the
default SQLite file is per port (issue 14's defect: two servers on one host shared queue.db and ran jobs twice)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from databases import BACKENDS, SERVER_STORES, Backend, postgres_raw, require_service
from geartrain.cli.store_args import default_queue_file
from geartrain.protocol.packets import PacketType as P
from geartrain.store.holder import RENEWAL, Holder
from servers import GearmanSocket, admin_raw, free_port, wait_until


class Server:
    """``geartrain server`` on a free port; ``env`` adds to the environment."""

    def __init__(self, *flags: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "geartrain", "server", "--port", str(self.port), "--verbose", "WARNING"]
        self.proc = subprocess.Popen(
            [*command, *flags],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
            text=True,
        )

    def wait_ready(self) -> Server:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.stderr()}")
            try:
                return admin_raw(self.address, "version", timeout=1).startswith(b"OK")
            except OSError:
                return False

        wait_until(ready, timeout=60, message="server start")
        return self

    def wait_exit(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout)

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture(params=["sqlite", *SERVER_STORES])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    name: str = request.param
    if name in SERVER_STORES:
        require_service(name)
    yield from BACKENDS[name](tmp_path)


def submit_background(address: str, function: bytes, uniques: list[bytes]) -> None:
    with GearmanSocket(address) as client:
        for unique in uniques:
            client.send(P.SUBMIT_JOB_BG, function, unique, b"payload")
            assert client.recv().type == P.JOB_CREATED


def queued(address: str, function: str) -> int:
    for line in admin_raw(address, "status").decode().splitlines():
        fields = line.split("\t")
        if fields[0] == function:
            return int(fields[1])
    return 0


def test_a_second_server_on_the_same_store_exits_with_one_line(shared: Backend) -> None:
    first = Server("--store", shared.url).wait_ready()
    try:
        second = Server("--store", shared.url)
        assert second.wait_exit() == 1
        lines = second.stderr().strip().splitlines()
        assert len(lines) == 1, lines
        assert "is held by another server" in lines[0]
        assert f"node {first.proc.pid}" not in lines[0]  # the node is host:port, the pid is named apart
        assert f":{first.port} (pid {first.proc.pid} on " in lines[0]
        assert queued(first.address, "f") == 0  # the first one is unharmed
    finally:
        first.stop()


def test_a_killed_servers_store_is_taken_over_at_once_with_its_jobs(shared: Backend) -> None:
    first = Server("--store", shared.url).wait_ready()
    submit_background(first.address, b"f", [b"a", b"b", b"c"])
    first.proc.kill()
    first.proc.wait(10)
    second = Server("--store", shared.url).wait_ready()  # not after the lease: the holder's process is gone
    try:
        assert queued(second.address, "f") == 3
    finally:
        second.stop()


def test_two_servers_with_the_default_store_keep_their_own_jobs(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path)}
    one, two = Server(env=env).wait_ready(), Server(env=env).wait_ready()
    try:
        submit_background(one.address, b"f", [b"1", b"2", b"3"])
        submit_background(two.address, b"f", [b"4"])
    finally:
        one.stop()
        two.stop()
    assert sorted(p.name for p in (tmp_path / "geartrain").glob("*.db")) == sorted(
        [f"queue-{one.port}.db", f"queue-{two.port}.db"]
    )
    again = Server("--port", str(one.port), env=env)  # the later --port wins
    again.port, again.address = one.port, one.address
    again.wait_ready()
    try:
        assert queued(one.address, "f") == 3
    finally:
        again.stop()


def test_the_file_of_earlier_versions_stays_the_default_on_4730(tmp_path: Path) -> None:
    assert default_queue_file(tmp_path, 4730) == tmp_path / "queue-4730.db"
    (tmp_path / "queue.db").touch()
    assert default_queue_file(tmp_path, 4730) == tmp_path / "queue.db"
    assert default_queue_file(tmp_path, 4731) == tmp_path / "queue-4731.db"
    (tmp_path / "queue-4730.db").touch()
    assert default_queue_file(tmp_path, 4730) == tmp_path / "queue-4730.db"


def test_a_server_whose_hold_is_taken_stops(tmp_path: Path) -> None:
    require_service("postgres")
    backend = next(BACKENDS["postgres"](tmp_path))
    server = Server("--store", backend.url).wait_ready()
    try:
        with postgres_raw() as conn:
            conn.execute(
                "UPDATE geartrain_owner SET holder = %s WHERE queue = %s",
                (Holder("intruder:4730", host="elsewhere").encode(), backend.table),
            )
        assert server.wait_exit(timeout=RENEWAL * 3) == 1
        assert "another server has taken it" in server.stderr()
    finally:
        server.stop()
