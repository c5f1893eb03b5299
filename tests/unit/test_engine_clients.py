"""Client-side rules: disconnects (§3.8), exceptions (§3.7), options, status queries, echo, and the ERROR
packets of §1.2."""

from __future__ import annotations

import pytest
from conversation import (
    NO_JOB,
    NOT_EXPECTED,
    NOT_FOUND_DATA,
    NOT_FOUND_EXCEPTION,
    NOT_FOUND_RESULT,
    Conversation,
    error,
    raw_output,
)

from geartrain.errors import ProtocolError
from geartrain.protocol.codec import Decoder, encode
from geartrain.protocol.packets import ARG_COUNT, REQ, RES, PacketType
from geartrain.server.core.config import EngineConfig

P = PacketType

# ---------------------------------------------------------------------------------------------------- disconnects


def test_queued_job_of_a_departed_client_is_skipped(conv: Conversation) -> None:
    leaving, staying, admin = conv.connect(), conv.connect(), conv.connect()
    abandoned = conv.submit(leaving, b"f", b"u", b"abandoned")
    wanted = conv.submit(staying, b"f", b"", b"wanted")
    conv.disconnect(leaving)
    # Still listed (IGNORE=1) and counted until a worker's GRAB reaches it.
    assert sorted(conv.admin(admin, b"show jobs").split(b"\n")) == sorted(
        [abandoned + b"\t0\t1\t0", wanted + b"\t0\t0\t0", b".", b""]
    )
    assert conv.admin(admin, b"status") == b"f\t2\t0\t0\n.\n"
    worker = conv.worker(b"f")
    assert conv.grab(worker) == (P.JOB_ASSIGN, (wanted, b"f", b"wanted"))
    assert abandoned not in conv.engine.jobs
    assert conv.admin(admin, b"show jobs") == wanted + b"\t0\t0\t0\n.\n"
    assert conv.grab(worker) == NO_JOB


def test_a_queue_of_only_abandoned_jobs_gives_no_job(conv: Conversation) -> None:
    client = conv.connect()
    for number in range(3):
        conv.submit(client, b"f", b"", b"%d" % number)
    conv.disconnect(client)
    worker = conv.worker(b"f")
    assert conv.ask(worker, P.PRE_SLEEP) == []  # abandoned jobs are not worth a wake-up
    assert conv.grab(worker) == NO_JOB
    assert conv.engine.jobs == {}


def test_the_unique_of_an_abandoned_job_is_free_at_once(conv: Conversation) -> None:
    leaving, client = conv.connect(), conv.connect()
    abandoned = conv.submit(leaving, b"f", b"u", b"old")
    conv.disconnect(leaving)
    fresh = conv.submit(client, b"f", b"u", b"new")
    assert fresh != abandoned
    assert conv.grab(conv.worker(b"f")) == (P.JOB_ASSIGN, (fresh, b"f", b"new"))


def test_running_job_of_a_departed_client_completes_silently(conv: Conversation) -> None:
    client, worker = conv.connect(), conv.worker(b"f")
    handle = conv.submit(client, b"f", b"", b"x")
    conv.grab(worker)
    conv.disconnect(client)
    assert client.outbox == []
    assert conv.ask(worker, P.WORK_STATUS, handle, b"1", b"2") == []
    assert conv.ask(worker, P.WORK_DATA, handle, b"d") == []
    assert conv.ask(worker, P.WORK_COMPLETE, handle, b"r") == []
    assert conv.engine.jobs == {}
    assert client.outbox == []


def test_disconnect_twice_is_harmless(conv: Conversation) -> None:
    client = conv.connect()
    conv.submit(client, b"f", b"", b"x")
    conv.disconnect(client)
    conv.disconnect(client)
    assert conv.grab(conv.worker(b"f")) == NO_JOB


# ---------------------------------------------------------------------------------------------------- exceptions


def test_work_exception_goes_only_to_clients_that_asked(conv: Conversation) -> None:
    asked, plain, worker = conv.connect(), conv.connect(), conv.worker(b"f")
    assert conv.ask(asked, P.OPTION_REQ, b"Exceptions") == [(P.OPTION_RES, (b"Exceptions",))]
    handle = conv.submit(asked, b"f", b"u", b"x")
    assert conv.submit(plain, b"f", b"u", b"x") == handle
    conv.grab(worker)
    assert conv.ask(worker, P.WORK_EXCEPTION, handle, b"boom\0details") == []
    assert conv.replies(asked) == [(P.WORK_EXCEPTION, (handle, b"boom\0details"))]
    # A plain WORK_FAIL: exactly the handle (gearmand adds a NUL that hangs libgearman clients).
    assert raw_output(plain) == b"\0RES\0\0\0\x0e" + len(handle).to_bytes(4, "big") + handle
    assert conv.engine.jobs == {}
    assert conv.ask(worker, P.WORK_EXCEPTION, handle, b"again") == [NOT_FOUND_EXCEPTION]


@pytest.mark.parametrize("name", [b"exceptions", b"EXCEPTIONS", b"eXcEpTiOnS"])
def test_option_exceptions_is_case_insensitive_and_echoed_as_sent(conv: Conversation, name: bytes) -> None:
    client = conv.connect()
    assert conv.ask(client, P.OPTION_REQ, name) == [(P.OPTION_RES, (name,))]


@pytest.mark.parametrize("name", [b"foo", b"", b"exception", b"exceptionsx", b"x" * 100])
def test_unknown_option(conv: Conversation, name: bytes) -> None:
    client = conv.connect()
    assert conv.ask(client, P.OPTION_REQ, name) == [error("UNKNOWN_OPTION", "Server does not recognize given option")]


def test_server_wide_exceptions_reach_every_client() -> None:
    conv = Conversation(EngineConfig(exceptions=True))
    c1, c2, worker = conv.connect(), conv.connect(), conv.worker(b"f")
    handle = conv.submit(c1, b"f", b"u", b"x")
    conv.submit(c2, b"f", b"u", b"x")
    conv.grab(worker)
    conv.send(worker, P.WORK_EXCEPTION, handle, b"boom")
    assert conv.replies(c1) == [(P.WORK_EXCEPTION, (handle, b"boom"))]
    assert conv.replies(c2) == [(P.WORK_EXCEPTION, (handle, b"boom"))]


def test_work_exception_after_work_complete_is_not_found(conv: Conversation) -> None:
    client, worker = conv.connect(), conv.worker(b"f")
    handle = conv.submit(client, b"f", b"", b"x")
    conv.grab(worker)
    conv.send(worker, P.WORK_COMPLETE, handle, b"r")
    assert conv.ask(worker, P.WORK_EXCEPTION, handle, b"boom") == [NOT_FOUND_EXCEPTION]
    assert conv.replies(client) == [(P.WORK_COMPLETE, (handle, b"r"))]


def test_work_fail_forwarded_as_the_bare_handle(conv: Conversation) -> None:
    client, worker = conv.connect(), conv.worker(b"f")
    handle = conv.submit(client, b"f", b"", b"x")
    conv.grab(worker)
    assert conv.ask(worker, P.WORK_FAIL, handle) == []
    assert conv.replies(client) == [(P.WORK_FAIL, (handle,))]
    assert conv.engine.jobs == {}


def test_a_failed_job_is_not_retried(conv: Conversation) -> None:
    client, worker = conv.connect(), conv.worker(b"f")
    handle = conv.submit(client, b"f", b"", b"x", P.SUBMIT_JOB_BG)
    conv.grab(worker)
    conv.send(worker, P.WORK_FAIL, handle)
    assert conv.grab(worker) == NO_JOB


# ---------------------------------------------------------------------------------------------------- JOB_NOT_FOUND


@pytest.mark.parametrize(
    ("ptype", "args", "reply"),
    [
        (P.WORK_COMPLETE, (b"r",), NOT_FOUND_RESULT),
        (P.WORK_FAIL, (), NOT_FOUND_RESULT),
        (P.WORK_STATUS, (b"1", b"2"), NOT_FOUND_RESULT),
        (P.WORK_DATA, (b"d",), NOT_FOUND_DATA),
        (P.WORK_WARNING, (b"w",), NOT_FOUND_DATA),
        (P.WORK_EXCEPTION, (b"e",), NOT_FOUND_EXCEPTION),
    ],
    ids=lambda value: value.name if isinstance(value, PacketType) else "",
)
def test_work_packets_for_unknown_or_not_owned_handles(
    conv: Conversation, ptype: PacketType, args: tuple[bytes, ...], reply: tuple[PacketType, tuple[bytes, ...]]
) -> None:
    client, owner, stranger = conv.connect(), conv.worker(b"f"), conv.worker(b"f")
    handle = conv.submit(client, b"f", b"", b"x")
    assert conv.ask(stranger, ptype, b"H:test:999", *args) == [reply]  # unknown
    assert conv.ask(stranger, ptype, handle, *args) == [reply]  # exists, queued, nobody's
    conv.grab(owner)
    assert conv.ask(stranger, ptype, handle, *args) == [reply]  # exists, someone else's
    assert conv.replies(client) == []
    assert conv.ask(owner, P.WORK_COMPLETE, handle, b"ok") == []  # the real owner is unaffected
    assert conv.replies(client) == [(P.WORK_COMPLETE, (handle, b"ok"))]


def test_the_connection_stays_usable_after_an_error(conv: Conversation) -> None:
    worker = conv.worker(b"f")
    assert conv.ask(worker, P.WORK_COMPLETE, b"nosuch", b"r") == [NOT_FOUND_RESULT]
    assert worker.close_after_flush is False
    assert conv.ask(worker, P.ECHO_REQ, b"still here") == [(P.ECHO_RES, (b"still here",))]


# ---------------------------------------------------------------------------------------------------- not expected


RESPONSE_TYPES = [
    P.NOOP,
    P.JOB_CREATED,
    P.NO_JOB,
    P.JOB_ASSIGN,
    P.ECHO_RES,
    P.ERROR,
    P.STATUS_RES,
    P.ALL_YOURS,
    P.OPTION_RES,
    P.JOB_ASSIGN_UNIQ,
    P.SUBMIT_JOB_SCHED,
    P.JOB_ASSIGN_ALL,
    P.STATUS_RES_UNIQUE,
    P.UNUSED,
]


@pytest.mark.parametrize("ptype", RESPONSE_TYPES, ids=lambda t: t.name)
def test_response_types_and_unsupported_commands_are_not_expected(conv: Conversation, ptype: PacketType) -> None:
    peer = conv.worker(b"f")
    args = tuple(b"x" for _ in range(ARG_COUNT[ptype]))
    assert conv.ask(peer, ptype, *args) == [NOT_EXPECTED]
    assert peer.close_after_flush is False
    assert conv.engine.jobs == {}


def test_submit_job_sched_creates_no_job(conv: Conversation) -> None:
    client = conv.connect()
    assert conv.ask(client, P.SUBMIT_JOB_SCHED, b"f", b"u", b"1", b"2", b"3", b"4", b"5", b"data") == [NOT_EXPECTED]
    assert conv.engine.jobs == {}


# ---------------------------------------------------------------------------------------------------- status


def test_get_status_unknown_queued_running(conv: Conversation) -> None:
    client, worker = conv.connect(), conv.worker(b"f")
    assert conv.ask(client, P.GET_STATUS, b"H:nosuch:1") == [(P.STATUS_RES, (b"H:nosuch:1", b"0", b"0", b"0", b"0"))]
    handle = conv.submit(client, b"f", b"u1", b"data")
    assert conv.ask(client, P.GET_STATUS, handle) == [(P.STATUS_RES, (handle, b"1", b"0", b"0", b"0"))]
    conv.grab(worker)
    assert conv.ask(client, P.GET_STATUS, handle) == [(P.STATUS_RES, (handle, b"1", b"1", b"0", b"0"))]
    conv.send(worker, P.WORK_STATUS, handle, b"3", b"10")
    assert conv.replies(client) == [(P.WORK_STATUS, (handle, b"3", b"10"))]
    conv.send(client, P.GET_STATUS, handle)
    assert handle == b"H:test:1"
    assert raw_output(client) == b"\0RES\0\0\0\x14\0\0\0\x11" + b"H:test:1\x001\x001\x003\x0010"


def test_get_status_reads_status_numbers_like_atoi(conv: Conversation) -> None:
    client, worker = conv.connect(), conv.worker(b"f")
    handle = conv.submit(client, b"f", b"", b"x")
    conv.grab(worker)
    conv.send(worker, P.WORK_STATUS, handle, b"12abc", b"x")
    assert conv.replies(client) == [(P.WORK_STATUS, (handle, b"12abc", b"x"))]  # forwarded as sent
    assert conv.ask(client, P.GET_STATUS, handle) == [(P.STATUS_RES, (handle, b"1", b"1", b"12", b"0"))]


def test_get_status_numbers_are_c_ints_shown_unsigned(conv: Conversation) -> None:
    client, worker = conv.connect(), conv.worker(b"f")
    handle = conv.submit(client, b"f", b"", b"x")
    conv.grab(worker)
    conv.send(worker, P.WORK_STATUS, handle, b"-1", b"4294967297")
    assert conv.replies(client) == [(P.WORK_STATUS, (handle, b"-1", b"4294967297"))]
    assert conv.ask(client, P.GET_STATUS, handle) == [(P.STATUS_RES, (handle, b"1", b"1", b"4294967295", b"1"))]


def test_get_status_of_a_background_job(conv: Conversation) -> None:
    client = conv.connect()
    handle = conv.submit(client, b"f", b"", b"x", P.SUBMIT_JOB_BG)
    other = conv.connect()
    assert conv.ask(other, P.GET_STATUS, handle) == [(P.STATUS_RES, (handle, b"1", b"0", b"0", b"0"))]


def test_get_status_unique(conv: Conversation) -> None:
    c1, c2, worker = conv.connect(), conv.connect(), conv.worker(b"f1")
    assert conv.ask(c1, P.GET_STATUS_UNIQUE, b"nosuch") == [
        (P.STATUS_RES_UNIQUE, (b"nosuch", b"0", b"0", b"0", b"0", b"0"))
    ]
    handle = conv.submit(c1, b"f1", b"u1", b"data")
    conv.send(c1, P.GET_STATUS_UNIQUE, b"u1")
    assert raw_output(c1) == b"\0RES\0\0\0\x2a\0\0\0\x0c" + b"u1\x001\x000\x000\x000\x001"
    conv.submit(c2, b"f1", b"u1", b"data")
    conv.grab(worker)
    conv.send(worker, P.WORK_STATUS, handle, b"3", b"10")
    assert conv.replies(c1) == conv.replies(c2) == [(P.WORK_STATUS, (handle, b"3", b"10"))]
    assert conv.ask(c1, P.GET_STATUS_UNIQUE, b"u1") == [(P.STATUS_RES_UNIQUE, (b"u1", b"1", b"1", b"3", b"10", b"2"))]


def test_get_status_unique_of_a_background_job_has_no_clients(conv: Conversation) -> None:
    client = conv.connect()
    conv.submit(client, b"f", b"bg", b"x", P.SUBMIT_JOB_BG)
    assert conv.ask(client, P.GET_STATUS_UNIQUE, b"bg") == [
        (P.STATUS_RES_UNIQUE, (b"bg", b"1", b"0", b"0", b"0", b"0"))
    ]


def test_get_status_unique_after_the_job_ended(conv: Conversation) -> None:
    client, worker = conv.connect(), conv.worker(b"f")
    handle = conv.submit(client, b"f", b"u", b"x")
    conv.grab(worker)
    conv.send(worker, P.WORK_COMPLETE, handle, b"")
    assert conv.replies(client) == [(P.WORK_COMPLETE, (handle, b""))]
    assert conv.ask(client, P.GET_STATUS_UNIQUE, b"u") == [(P.STATUS_RES_UNIQUE, (b"u", b"0", b"0", b"0", b"0", b"0"))]


# ---------------------------------------------------------------------------------------------------- echo, id


def test_echo_with_nuls(conv: Conversation) -> None:
    peer = conv.connect()
    assert conv.ask(peer, P.ECHO_REQ, b"hello\0world") == [(P.ECHO_RES, (b"hello\0world",))]
    assert conv.ask(peer, P.ECHO_REQ, b"") == [(P.ECHO_RES, (b"",))]
    payload = bytes(range(256)) * 64
    assert conv.ask(peer, P.ECHO_REQ, payload) == [(P.ECHO_RES, (payload,))]


def test_replies_keep_request_order(conv: Conversation) -> None:
    peer = conv.connect()
    conv.send(peer, P.ECHO_REQ, b"1")
    conv.send(peer, P.SUBMIT_JOB, b"f", b"", b"x")
    conv.send(peer, P.OPTION_REQ, b"bad")
    conv.send(peer, P.ECHO_REQ, b"2")
    assert conv.replies(peer) == [
        (P.ECHO_RES, (b"1",)),
        (P.JOB_CREATED, (b"H:test:1",)),
        error("UNKNOWN_OPTION", "Server does not recognize given option"),
        (P.ECHO_RES, (b"2",)),
    ]


def test_set_client_id_has_no_reply(conv: Conversation) -> None:
    peer = conv.connect()
    assert conv.ask(peer, P.SET_CLIENT_ID, b"me") == []


# ---------------------------------------------------------------------------------------------------- decoder errors


def test_protocol_errors_become_error_packets_and_fatal_ones_close() -> None:
    conv = Conversation()
    peer = conv.connect()
    decoder = Decoder()
    items = decoder.feed(encode(P.ECHO_REQ, b"x", magic=RES) + header(REQ, 43, 0) + header(b"\0BAD", 1, 0))
    assert len(items) == 3
    for item in items:
        assert isinstance(item, ProtocolError)
        conv.engine.protocol_error(peer, item)
    assert conv.replies(peer) == [
        error("INVALID_MAGIC", "Request magic expected"),
        error("INVALID_COMMAND", "Unknown packet type 43"),
        error("INVALID_MAGIC", "Invalid magic in packet header"),
    ]
    assert peer.close_after_flush is True


def test_a_non_fatal_protocol_error_keeps_the_connection(conv: Conversation) -> None:
    peer = conv.connect()
    [item] = Decoder().feed(header(REQ, P.SUBMIT_JOB, 1) + b"f")
    assert isinstance(item, ProtocolError)
    conv.engine.protocol_error(peer, item)
    assert conv.replies(peer) == [error("INVALID_PACKET", "Too few arguments for SUBMIT_JOB")]
    assert peer.close_after_flush is False


def header(magic: bytes, ptype: int, size: int) -> bytes:
    return magic + ptype.to_bytes(4, "big") + size.to_bytes(4, "big")
