"""In-process peers (an HTTP submission, a cluster relay) are handed what a client hears as packets, never encoded:
the same packets, in the same order, as a socket client decodes from its bytes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conversation import Conversation, Reply

from geartrain.errors import ErrorCode
from geartrain.protocol.codec import LARGE_PACKET, Decoder
from geartrain.protocol.packets import RES, Packet, PacketType
from geartrain.server.core.config import EngineConfig
from geartrain.server.core.operations import set_max_queue
from geartrain.server.core.peers import Peer, PendingAck

P = PacketType
Scenario = Callable[[Conversation, Peer], None]


def heard(peer: Peer) -> list[Reply]:
    """What ``peer`` was sent, read as its kind of peer reads it (and its outbox cleared)."""
    if not peer.in_process:
        decoded = Decoder(accept=RES, admin=False).feed(peer.take_output())
        assert not peer.outbox
        return [(P(packet.type), packet.args) for packet in decoded if isinstance(packet, Packet)]
    for item in peer.outbox:
        data = item.data if isinstance(item, PendingAck) else item
        assert not isinstance(data, bytes) or data == b"", f"encoded output for an in-process peer: {data!r}"
    packets = peer.take_packets()
    assert not peer.outbox
    assert all(isinstance(packet, Packet) for packet in packets)
    return [(P(packet.type), packet.args) for packet in packets]


def client_hears(scenario: Scenario, in_process: bool, config: EngineConfig | None = None) -> list[Reply]:
    talk = Conversation(config)
    client = talk.connect()
    client.in_process = in_process
    scenario(talk, client)
    return heard(client)


def same_for_both(scenario: Scenario, config: EngineConfig | None = None) -> list[Reply]:
    by_socket = client_hears(scenario, False, config)
    assert client_hears(scenario, True, config) == by_socket
    return by_socket


def run_job(talk: Conversation, client: Peer, *results: tuple[int, bytes]) -> bytes:
    """A foreground job of ``client`` run by a new worker, which sends ``results`` (type, data) in order."""
    talk.send(client, P.SUBMIT_JOB, b"f", b"", b"work")
    worker = talk.worker(b"f")
    handle = talk.grab_handle(worker)
    for ptype, data in results:
        if ptype == P.WORK_STATUS:
            talk.send(worker, ptype, handle, b"1", b"2")
        elif ptype == P.WORK_FAIL:
            talk.send(worker, ptype, handle)
        else:
            talk.send(worker, ptype, handle, data)
    return handle


def test_a_job_s_packets_reach_the_client_in_order() -> None:
    handle = b"H:test:1"
    big = b"x" * LARGE_PACKET  # queued apart from its head for a socket, never copied

    def scenario(talk: Conversation, client: Peer) -> None:
        steps = [(P.WORK_DATA, b"d"), (P.WORK_WARNING, b"w"), (P.WORK_STATUS, b""), (P.WORK_DATA, big)]
        run_job(talk, client, *steps, (P.WORK_COMPLETE, big))

    assert same_for_both(scenario) == [
        (P.JOB_CREATED, (handle,)),
        (P.WORK_DATA, (handle, b"d")),
        (P.WORK_WARNING, (handle, b"w")),
        (P.WORK_STATUS, (handle, b"1", b"2")),
        (P.WORK_DATA, (handle, big)),
        (P.WORK_COMPLETE, (handle, big)),
    ]


@pytest.mark.parametrize("exceptions", [False, True])
def test_a_failure_and_an_exception(exceptions: bool) -> None:
    def scenario(talk: Conversation, client: Peer) -> None:
        client.exceptions = exceptions  # OPTION_REQ "exceptions" (an HTTP submission's peer has it set)
        run_job(talk, client, (P.WORK_EXCEPTION, b"boom"))
        run_job(talk, client, (P.WORK_FAIL, b""))

    ending = (P.WORK_EXCEPTION, (b"H:test:1", b"boom")) if exceptions else (P.WORK_FAIL, (b"H:test:1",))
    assert same_for_both(scenario) == [
        (P.JOB_CREATED, (b"H:test:1",)),
        ending,
        (P.JOB_CREATED, (b"H:test:2",)),
        (P.WORK_FAIL, (b"H:test:2",)),
    ]


def test_refusals_are_errors() -> None:
    def scenario(talk: Conversation, client: Peer) -> None:
        talk.send(client, P.SUBMIT_JOB, b"f", b"u" * 100, b"")  # a unique over 64 bytes
        talk.send(client, P.SUBMIT_JOB_BG, b"f", b"", b"queued")
        set_max_queue(talk.engine, b"f", [1, 1, 1])
        talk.send(client, P.SUBMIT_JOB_BG, b"f", b"", b"over the limit")
        talk.send(client, P.SUBMIT_JOB_EPOCH, b"f", b"", b"9" * 30, b"")
        talk.send(client, P.JOB_CREATED, b"H:x:1")  # a server's packet, not a client's
        talk.engine.begin_drain(hold_queued=False)
        talk.send(client, P.SUBMIT_JOB, b"g", b"", b"")

    def error(code: str, text: str) -> Reply:
        return (P.ERROR, (code.encode(), text.encode()))

    assert same_for_both(scenario) == [
        error(ErrorCode.ARGUMENT_TOO_LARGE, "Unique value too large"),
        (P.JOB_CREATED, (b"H:test:1",)),
        error(ErrorCode.QUEUE_ERROR, "Job queue is full"),
        error(ErrorCode.INVALID_ARGUMENT, "SUBMIT_JOB_EPOCH time out of range"),
        error(ErrorCode.INVALID_COMMAND, "Command not expected"),
        error(ErrorCode.QUEUE_ERROR, "Server is shutting down (graceful drain): job not accepted"),
    ]


def test_a_cancelled_job_fails_for_its_client() -> None:
    def scenario(talk: Conversation, client: Peer) -> None:
        talk.send(client, P.SUBMIT_JOB, b"f", b"", b"")
        assert talk.engine.cancel(b"H:test:1")

    assert same_for_both(scenario) == [(P.JOB_CREATED, (b"H:test:1",)), (P.WORK_FAIL, (b"H:test:1",))]


def test_a_job_created_waiting_for_the_store_is_a_packet_once_stored_or_an_error_if_not() -> None:
    def scenario(talk: Conversation, client: Peer) -> None:
        talk.send(client, P.SUBMIT_JOB_BG, b"f", b"a", b"")
        if not client.in_process:
            talk.send(client, P.ECHO_REQ, b"behind the JOB_CREATED")
        # The reply waits for the store, and what follows it waits behind.
        assert (client.take_packets() if client.in_process else client.take_buffers()) == []
        batch = talk.engine.take_store_batch()
        assert batch is not None
        talk.engine.store_committed(batch, talk.now)
        talk.send(client, P.SUBMIT_JOB_BG, b"f", b"b", b"")
        batch = talk.engine.take_store_batch()
        assert batch is not None
        talk.engine.store_failed(batch, "the disk is full")

    by_socket = client_hears(scenario, False, EngineConfig(handle_prefix=b"H:test", persistent=True))
    assert by_socket == [
        (P.JOB_CREATED, (b"H:test:1",)),
        (P.ECHO_RES, (b"behind the JOB_CREATED",)),
        (P.ERROR, (b"QUEUE_ERROR", b"Job not stored: the disk is full")),
    ]
    in_process = client_hears(scenario, True, EngineConfig(handle_prefix=b"H:test", persistent=True))
    assert in_process == [by_socket[0], by_socket[2]]  # an in-process peer sends no ECHO_REQ
