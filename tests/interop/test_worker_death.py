"""A worker that dies holding a foreground job: the server must requeue it (same handle) for the next worker."""

from __future__ import annotations

import pytest
from programs import Children, gearman_cmd

from servers import GearmanServer, GearmanSocket, PacketType, StatusRow, status_of, wait_until

pytestmark = pytest.mark.interop


def grab_and_die(server: GearmanServer, function: bytes) -> tuple[bytes, bytes]:
    """A raw worker takes one job, reports progress, and closes its socket without finishing; (handle, data)."""
    with GearmanSocket(server) as doomed:
        doomed.send(PacketType.CAN_DO, function)
        handle, got_function, data = doomed.grab().args
        assert got_function == function
        doomed.send(PacketType.WORK_STATUS, handle, b"1", b"2")
        doomed.sync()
    # Back in the queue, unassigned, and no worker left for it.
    wait_until(lambda: status_of(server, function.decode()) == StatusRow(1, 0, 0), message="the job to be requeued")
    return handle, data


def finish(server: GearmanServer, function: bytes, handle: bytes, data: bytes, result: bytes) -> None:
    with GearmanSocket(server) as rescuer:
        rescuer.send(PacketType.CAN_DO, function)
        assert rescuer.grab().args == [handle, function, data]
        rescuer.send(PacketType.WORK_COMPLETE, handle, result)
        rescuer.sync()


def test_raw_client_gets_result_from_second_worker(gearman_server: GearmanServer) -> None:
    with GearmanSocket(gearman_server) as client:
        handle = client.submit("fragile", b"payload").encode()
        assert grab_and_die(gearman_server, b"fragile") == (handle, b"payload")
        finish(gearman_server, b"fragile", handle, b"payload", b"survived")
        assert client.expect(PacketType.WORK_STATUS).args == [handle, b"1", b"2"]
        assert client.expect(PacketType.WORK_COMPLETE).args == [handle, b"survived"]


def test_gearman_cli_client_gets_result_from_second_worker(gearman_server: GearmanServer, children: Children) -> None:
    client = children.spawn("client", gearman_cmd(gearman_server, "-f", "fragile_cli", "payload"))
    handle, data = grab_and_die(gearman_server, b"fragile_cli")
    assert data == b"payload"
    finish(gearman_server, b"fragile_cli", handle, data, b"survived")
    assert client.wait() == 0, client.stderr
    # The CLI prints WORK_STATUS as "N% Complete" after the raw result (stdio buffering, see reference §6.1).
    assert "survived" in client.stdout
    assert "50% Complete" in client.stdout
