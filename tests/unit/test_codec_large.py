"""Large packets (LARGE_PACKET and over): assembled in place on the way in, never copied on the way out.

A large packet's payload (its last argument) is received straight into the bytes object the engine keeps, and a
payload the engine sends is queued as that same object after the packet's head. These tests hold both paths to the
same items and bytes as the general ones, whatever the split of the stream, and check the payload's identity.
"""

from __future__ import annotations

import itertools
import struct

import pytest
from conversation import Conversation, decode_output
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geartrain.errors import ProtocolError
from geartrain.protocol.codec import LARGE_PACKET, Decoder, encode, encode_head, encode_request
from geartrain.protocol.packets import ARG_COUNT, REQ, RES, AdminLine, Packet, PacketType

P = PacketType
Item = Packet | AdminLine | ProtocolError

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A payload with NULs in it (only the last argument may hold them) and every byte value.
PAYLOAD = bytes(range(256)) * (LARGE_PACKET // 256 + 3)
# Request types with at least one argument, with their arguments: the leading ones short, the last the payload.
LARGE_REQUESTS = [
    (ptype, (*(b"arg%d" % i for i in range(ARG_COUNT[ptype] - 1)), PAYLOAD))
    for ptype in (P.SUBMIT_JOB, P.SUBMIT_JOB_BG, P.SUBMIT_JOB_EPOCH, P.SUBMIT_REDUCE_JOB, P.ECHO_REQ, P.WORK_COMPLETE)
]


def shape(item: Item) -> object:
    if isinstance(item, ProtocolError):
        return (type(item).__name__, item.code, item.text, item.fatal)
    return item


def split(wire: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(wire), *(c for c in cuts if 0 < c < len(wire))})
    return [wire[a:b] for a, b in itertools.pairwise(points)]


def feed_all(decoder: Decoder, chunks: list[bytes]) -> list[object]:
    out: list[object] = []
    for chunk in chunks:
        out.extend(shape(item) for item in decoder.feed(chunk))
    return out


def dispatch_all(decoder: Decoder, chunks: list[bytes]) -> list[object]:
    """feed_to's handler calls, as the items feed() would give."""
    calls: list[object] = []

    class Recipient:
        close_after_flush = False

    def handle(recipient: Recipient, args: tuple[bytes, ...], now: float) -> None:
        calls.append(args)

    handlers = [handle] * (max(P) + 1)
    for chunk in chunks:
        decoder.feed_to(chunk, handlers, Recipient(), 0.0, lambda item: calls.append(shape(item)))
    return calls


@st.composite
def streams_with_a_large_packet(draw: st.DrawFn) -> tuple[bytes, list[Packet], int]:
    """Small packets, one large request, small packets; and where the large one starts."""
    ptype, args = draw(st.sampled_from(LARGE_REQUESTS))
    before = [Packet(P.ECHO_REQ, (b"b%d" % i,)) for i in range(draw(st.integers(0, 3)))]
    after = [Packet(P.SUBMIT_JOB_BG, (b"f", b"", b"a%d" % i)) for i in range(draw(st.integers(0, 3)))]
    packets = [*before, Packet(ptype, args), *after]
    start = sum(len(encode_request(p.type, *p.args)) for p in before)
    return b"".join(encode_request(p.type, *p.args) for p in packets), packets, start


# Cuts anywhere, and cuts near the large packet's start (inside its header and its leading arguments), where
# assembling begins or must wait.
cut_lists = st.lists(st.integers(0, len(PAYLOAD) + 200), max_size=6)
near_start = st.lists(st.integers(0, 40), max_size=4)


@FAST
@given(streams_with_a_large_packet(), cut_lists, near_start, st.booleans())
def test_any_split_of_a_large_packet_decodes_to_the_same_items(
    case: tuple[bytes, list[Packet], int], cuts: list[int], early: list[int], fast: bool
) -> None:
    wire, packets, start = case
    chunks = split(wire, [*cuts, *(start + c for c in early)])
    assert feed_all(Decoder(accelerated=fast), chunks) == packets
    assert dispatch_all(Decoder(accelerated=fast), chunks) == [p.args for p in packets]


@pytest.mark.parametrize("fast", [True, False])
def test_the_payload_is_one_exact_bytes_object_and_buffered_counts_it(fast: bool) -> None:
    wire = encode_request(P.SUBMIT_JOB, b"resize", b"u-1", PAYLOAD)
    decoder = Decoder(accelerated=fast)
    chunk = 64 * 1024
    items: list[Item] = []
    for at in range(0, len(wire), chunk):
        items.extend(decoder.feed(wire[at : at + chunk]))
        if at + chunk < len(wire):
            assert decoder.buffered == at + chunk - 12 - len(b"resize\0u-1\0")  # the payload received so far
    assert items == [Packet(P.SUBMIT_JOB, (b"resize", b"u-1", PAYLOAD))]
    assert type(items[0].args[2]) is bytes  # a bytes object (the engine's types are checked when compiled)
    assert decoder.buffered == 0


@pytest.mark.parametrize("fast", [True, False])
def test_leading_arguments_split_across_reads_wait_for_their_nul(fast: bool) -> None:
    name = b"f" * 5000  # the function name alone arrives over several reads
    wire = encode_request(P.SUBMIT_JOB_BG, name, b"", PAYLOAD)
    chunks = [wire[i : i + 1000] for i in range(0, 6000, 1000)] + [wire[6000:]]
    assert feed_all(Decoder(accelerated=fast), chunks) == [Packet(P.SUBMIT_JOB_BG, (name, b"", PAYLOAD))]


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        # The other magic: the whole packet is skipped with the usual non-fatal error.
        (struct.pack(">4sII", RES, P.ECHO_REQ, len(PAYLOAD)), [("PeerProtocolError", "INVALID_MAGIC")]),
        # An unknown type: skipped whole, non-fatal.
        (struct.pack(">4sII", REQ, 200, len(PAYLOAD)), [("PeerProtocolError", "INVALID_COMMAND")]),
    ],
)
def test_a_large_packet_in_error_is_skipped_whole_as_any_other(head: bytes, expected: list[tuple[str, str]]) -> None:
    wire = head + PAYLOAD + encode_request(P.ECHO_REQ, b"next")
    for fast in (True, False):
        items = feed_all(Decoder(accelerated=fast), split(wire, [5, 20, 70_000, 200_000]))
        assert [(i[0], i[1]) for i in items[:-1]] == expected  # type: ignore[index]
        assert items[-1] == Packet(P.ECHO_REQ, (b"next",))


def test_a_large_packet_over_the_limit_is_fatal_from_its_header() -> None:
    decoder = Decoder(max_packet_size=LARGE_PACKET)
    items = decoder.feed(encode_request(P.ECHO_REQ, PAYLOAD)[:1000])
    assert len(items) == 1 and isinstance(items[0], ProtocolError) and items[0].fatal
    assert decoder.dead and decoder.buffered == 0


def test_encode_head_and_the_payload_are_the_packet() -> None:
    for args in [(b"H:x:1", b"fn", PAYLOAD), (PAYLOAD,), (b"H:x:1", b"")]:
        assert encode_head(P.JOB_ASSIGN, args) + args[-1] == encode(P.JOB_ASSIGN, *args)


# ------------------------------------------------------------------ the engine: the payload is queued as it is


def test_a_large_job_goes_to_its_worker_and_back_without_a_copy() -> None:
    talk = Conversation()
    worker = talk.worker(b"big")
    client = talk.connect()
    payload = bytes(PAYLOAD)  # a distinct object, to check identity on the way out
    handle = talk.submit(client, b"big", b"", payload)
    talk.send(worker, P.GRAB_JOB)
    assert worker.outbox[-1] is payload and worker.large
    assert decode_output(worker) == [(P.JOB_ASSIGN, (handle, b"big", payload))]
    result = PAYLOAD[::-1]
    talk.send(worker, P.WORK_COMPLETE, handle, result)
    assert client.outbox[-1] is result
    assert decode_output(client) == [(P.WORK_COMPLETE, (handle, result))]


def test_take_buffers_keeps_a_large_payload_apart_and_joins_the_rest() -> None:
    talk = Conversation()
    peer = talk.connect()
    talk.send(peer, P.ECHO_REQ, b"small")
    talk.send(peer, P.ECHO_REQ, PAYLOAD)
    talk.send(peer, P.ECHO_REQ, b"after")
    buffers = peer.take_buffers()
    assert len(buffers) == 3 and buffers[1] is PAYLOAD
    assert buffers[0] == encode(P.ECHO_RES, b"small") + encode_head(P.ECHO_RES, (PAYLOAD,))
    assert buffers[2] == encode(P.ECHO_RES, b"after")
    assert not peer.outbox and not peer.large
