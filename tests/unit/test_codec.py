"""The sans-IO codec: round trips, any split of the stream, hostile input, and the framing rules of reference §1."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geartrain.errors import PeerProtocolError, ProtocolError
from geartrain.protocol.codec import MAX_ADMIN_LINE, Decoder, encode, encode_request
from geartrain.protocol.packets import ARG_COUNT, REQ, RES, AdminLine, Packet, PacketType

P = PacketType
Item = Packet | AdminLine | ProtocolError
# What an item "is", comparable with ==: errors do not compare by value, so they become (code, text, fatal).
Shape = Packet | AdminLine | tuple[str, str, str, bool]

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def header(magic: bytes, ptype: int, size: int) -> bytes:
    return struct.pack(">4sII", magic, ptype, size)


def shape(item: Item) -> Shape:
    if isinstance(item, ProtocolError):
        return (type(item).__name__, item.code, item.text, item.fatal)
    return item


def feed_all(decoder: Decoder, chunks: list[bytes]) -> list[Item]:
    out: list[Item] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def error(items: list[Item]) -> ProtocolError:
    assert len(items) == 1, items
    item = items[0]
    assert isinstance(item, PeerProtocolError), item
    return item


# ---------------------------------------------------------------------------------------------------- strategies

no_nul = st.binary(max_size=40).filter(lambda b: b"\0" not in b)
any_bytes = st.binary(max_size=200)


@st.composite
def packets(draw: st.DrawFn) -> Packet:
    """A packet of any type, with as many arguments as ARG_COUNT says; only the last may hold NULs."""
    ptype = draw(st.sampled_from(list(PacketType)))
    count = ARG_COUNT[ptype]
    args = [draw(no_nul) for _ in range(count - 1)]
    if count:
        args.append(draw(any_bytes))
    return Packet(ptype, tuple(args))


line_text = st.binary(max_size=60).filter(lambda b: b"\n" not in b and b"\r" not in b and not b.startswith(b"\0"))


@st.composite
def stream_items(draw: st.DrawFn) -> tuple[list[Shape], bytes]:
    """A request stream of packets and admin lines (LF or CRLF), and the items it must decode to."""
    expected: list[Shape] = []
    wire = bytearray()
    for _ in range(draw(st.integers(0, 8))):
        if draw(st.booleans()):
            packet = draw(packets())
            expected.append(packet)
            wire += encode_request(packet.type, *packet.args)
        else:
            text = draw(line_text)
            expected.append(AdminLine(text))
            wire += text + draw(st.sampled_from([b"\n", b"\r\n"]))
    return expected, bytes(wire)


@st.composite
def hostile_streams(draw: st.DrawFn) -> bytes:
    """Bytes that are sometimes well framed and often not: random runs, valid packets, forged headers, lines."""
    parts: list[bytes] = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 4))
        if kind == 0:
            parts.append(draw(st.binary(max_size=64)))
        elif kind == 1:
            packet = draw(packets())
            parts.append(encode(packet.type, *packet.args, magic=draw(st.sampled_from([REQ, RES]))))
        elif kind == 2:
            magic = draw(st.sampled_from([REQ, RES, b"\0XYZ", b"\0REQ"[:3] + b"\1"]))
            ptype = draw(st.one_of(st.integers(0, 50), st.integers(0, 2**32 - 1)))
            size = draw(st.one_of(st.integers(0, 40), st.integers(0, 2**32 - 1)))
            body = draw(st.binary(max_size=40))
            parts.append(header(magic, ptype, size) + body)
        elif kind == 3:
            parts.append(draw(line_text) + b"\n")
        else:
            parts.append(b"\0" * draw(st.integers(1, 13)))
    return b"".join(parts)


cut_lists = st.lists(st.integers(0, 4000), max_size=12)


# ---------------------------------------------------------------------------------------------------- properties


@FAST
@given(packet=packets(), magic=st.sampled_from([REQ, RES]))
def test_round_trip_of_every_packet_type(packet: Packet, magic: bytes) -> None:
    wire = encode(packet.type, *packet.args, magic=magic)
    assert wire[:4] == magic
    assert struct.unpack(">II", wire[4:12]) == (packet.type, len(wire) - 12)
    decoder = Decoder(accept=magic)
    assert decoder.feed(wire) == [packet]
    assert not decoder.dead
    assert decoder.buffered == 0


@pytest.mark.parametrize("ptype", list(PacketType), ids=lambda t: t.name)
@pytest.mark.parametrize("magic", [REQ, RES], ids=["REQ", "RES"])
def test_every_packet_type_round_trips_with_nuls_in_the_last_argument(ptype: PacketType, magic: bytes) -> None:
    count = ARG_COUNT[ptype]
    args = tuple(f"arg{i}".encode() for i in range(count - 1)) + ((b"\0last\0\0",) if count else ())
    assert Decoder(accept=magic).feed(encode(ptype, *args, magic=magic)) == [Packet(ptype, args)]


@FAST
@given(items=stream_items(), cuts=cut_lists)
def test_any_split_of_a_stream_decodes_to_the_same_items(items: tuple[list[Shape], bytes], cuts: list[int]) -> None:
    expected, wire = items
    whole = [shape(item) for item in Decoder().feed(wire)]
    assert whole == expected
    pieces = split(wire, cuts)
    assert b"".join(pieces) == wire
    assert [shape(item) for item in feed_all(Decoder(), pieces)] == expected


@FAST
@given(items=stream_items())
def test_byte_by_byte_feeding_decodes_to_the_same_items(items: tuple[list[Shape], bytes]) -> None:
    expected, wire = items
    decoder = Decoder()
    assert [shape(item) for item in feed_all(decoder, [wire[i : i + 1] for i in range(len(wire))])] == expected
    assert decoder.buffered == 0


def check_hostile(decoder: Decoder, chunks: list[bytes]) -> list[Shape]:
    """Feed chunks; every item is a packet, a line or an error, and nothing comes after a fatal error."""
    seen: list[Item] = []
    for chunk in chunks:
        was_dead = decoder.dead
        out = decoder.feed(chunk)
        if was_dead:
            assert out == []
        for item in out:
            assert isinstance(item, Packet | AdminLine | ProtocolError), item
            if isinstance(item, Packet):
                assert 1 <= item.type <= max(PacketType)
                assert len(item.args) <= ARG_COUNT[item.type]
        seen.extend(out)
    fatal = [i for i, item in enumerate(seen) if isinstance(item, ProtocolError) and item.fatal]
    if fatal:
        assert fatal == [len(seen) - 1], "a fatal error must be the last item"
        assert decoder.dead
        assert decoder.feed(encode_request(P.ECHO_REQ, b"more")) == []
    else:
        assert not decoder.dead
    return [shape(item) for item in seen]


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300), cuts=cut_lists, admin=st.booleans(), accept=st.sampled_from([REQ, RES]))
def test_random_bytes_give_only_items_never_an_exception(
    data: bytes, cuts: list[int], admin: bool, accept: bytes
) -> None:
    check_hostile(Decoder(accept=accept, admin=admin, max_packet_size=1024), split(data, cuts))


@settings(max_examples=200, deadline=None)
@given(data=hostile_streams(), cuts=cut_lists, admin=st.booleans(), accept=st.sampled_from([REQ, RES]))
def test_hostile_streams_decode_the_same_whatever_the_split(
    data: bytes, cuts: list[int], admin: bool, accept: bytes
) -> None:
    whole = check_hostile(Decoder(accept=accept, admin=admin, max_packet_size=1024), [data])
    pieces = check_hostile(Decoder(accept=accept, admin=admin, max_packet_size=1024), split(data, cuts))
    assert pieces == whole


# ---------------------------------------------------------------------------------------------------- encoding


def test_encode_exact_bytes() -> None:
    assert encode_request(P.SUBMIT_JOB, b"f1", b"u1", b"data") == b"\0REQ\0\0\0\x07\0\0\0\x0af1\0u1\0data"
    assert encode(P.JOB_CREATED, b"H:vm:1") == b"\0RES\0\0\0\x08\0\0\0\x06H:vm:1"
    assert encode(P.NOOP) == b"\0RES\0\0\0\x06\0\0\0\0"
    assert encode(P.ECHO_REQ, b"a\0b", magic=REQ) == b"\0REQ\0\0\0\x10\0\0\0\x03a\0b"


# ---------------------------------------------------------------------------------------------------- magic


def test_wrong_magic_is_fatal() -> None:
    decoder = Decoder()
    item = error(decoder.feed(header(b"\0XYZ", P.ECHO_REQ, 0) + encode_request(P.ECHO_REQ, b"x")))
    assert (item.code, item.fatal) == ("INVALID_MAGIC", True)
    assert decoder.dead
    assert decoder.feed(encode_request(P.ECHO_REQ, b"x")) == []


def test_response_magic_to_a_server_is_an_error_and_the_stream_goes_on() -> None:
    decoder = Decoder(accept=REQ)
    items = decoder.feed(encode(P.ECHO_REQ, b"hi", magic=RES) + encode_request(P.ECHO_REQ, b"next"))
    assert len(items) == 2
    first = items[0]
    assert isinstance(first, PeerProtocolError)
    assert (first.code, first.text, first.fatal) == ("INVALID_MAGIC", "Request magic expected", False)
    assert items[1] == Packet(P.ECHO_REQ, (b"next",))
    assert not decoder.dead


def test_request_magic_to_a_client_is_an_error_and_the_stream_goes_on() -> None:
    decoder = Decoder(accept=RES, admin=False)
    items = decoder.feed(encode_request(P.NOOP) + encode(P.NOOP))
    first = items[0]
    assert isinstance(first, PeerProtocolError)
    assert (first.code, first.text, first.fatal) == ("INVALID_MAGIC", "Response magic expected", False)
    assert items[1:] == [Packet(P.NOOP, ())]


def test_text_to_a_decoder_without_admin_is_fatal_at_once() -> None:
    decoder = Decoder(accept=RES, admin=False)
    item = error(decoder.feed(b"status"))  # no newline needed to know it is not a packet
    assert (item.code, item.fatal) == ("INVALID_MAGIC", True)
    assert decoder.dead


# ---------------------------------------------------------------------------------------------------- bad packets


@pytest.mark.parametrize("ptype", [0, 43, 0xFFFFFFFF])
def test_unknown_packet_type_is_a_non_fatal_invalid_command(ptype: int) -> None:
    decoder = Decoder()
    items = decoder.feed(header(REQ, ptype, 3) + b"abc" + encode_request(P.ECHO_REQ, b"after"))
    first = items[0]
    assert isinstance(first, PeerProtocolError)
    assert (first.code, first.text, first.fatal) == ("INVALID_COMMAND", f"Unknown packet type {ptype}", False)
    assert items[1:] == [Packet(P.ECHO_REQ, (b"after",))]


def test_too_few_arguments_is_invalid_packet_and_the_stream_goes_on() -> None:
    decoder = Decoder()
    items = decoder.feed(header(REQ, P.SUBMIT_JOB, 3) + b"f\0u" + encode_request(P.ECHO_REQ, b"after"))
    first = items[0]
    assert isinstance(first, PeerProtocolError)
    assert (first.code, first.text, first.fatal) == ("INVALID_PACKET", "Too few arguments for SUBMIT_JOB", False)
    assert items[1:] == [Packet(P.ECHO_REQ, (b"after",))]


@pytest.mark.parametrize("ptype", [P.JOB_ASSIGN, P.ERROR, P.STATUS_RES, P.WORK_STATUS, P.SUBMIT_JOB_EPOCH])
def test_an_empty_body_never_waits_for_more_bytes(ptype: PacketType) -> None:
    # gearmand scans the stream for NULs past the declared size and hangs; the size field decides here.
    items = Decoder(accept=REQ).feed(header(REQ, ptype, 0) + encode_request(P.ECHO_REQ, b"x"))
    assert error(items[:1]).code == "INVALID_PACKET"
    assert items[1:] == [Packet(P.ECHO_REQ, (b"x",))]


@pytest.mark.parametrize("ptype", [P.SUBMIT_REDUCE_JOB, P.SUBMIT_REDUCE_JOB_BACKGROUND])
def test_reduce_submit_with_four_fields_is_accepted(ptype: PacketType) -> None:
    decoder = Decoder()
    # libgearman's form has an empty aggregator (4 NULs); the 3-NUL form of the PROTOCOL file is accepted too.
    assert decoder.feed(encode_request(ptype, b"f", b"u", b"r", b"data")) == [
        Packet(ptype, (b"f", b"u", b"r", b"data"))
    ]
    assert decoder.feed(encode_request(ptype, b"f", b"u", b"r", b"agg", b"da\0ta")) == [
        Packet(ptype, (b"f", b"u", b"r", b"agg", b"da\0ta"))
    ]
    assert error(decoder.feed(encode_request(ptype, b"f", b"u", b"data"))).code == "INVALID_PACKET"


def test_packet_over_the_size_limit_is_fatal_from_its_header() -> None:
    decoder = Decoder(max_packet_size=100)
    assert decoder.feed(encode_request(P.ECHO_REQ, b"x" * 100)) == [Packet(P.ECHO_REQ, (b"x" * 100,))]
    item = error(decoder.feed(header(REQ, P.ECHO_REQ, 101)))  # the body need not arrive
    assert (item.code, item.fatal) == ("ARGUMENT_TOO_LARGE", True)
    assert decoder.dead
    assert decoder.feed(b"x" * 101) == []


# ---------------------------------------------------------------------------------------------------- admin lines


def test_admin_lines_lf_and_crlf() -> None:
    decoder = Decoder()
    assert decoder.feed(b"status\nworkers\r\n\n\r\nversion\r\r\n") == [
        AdminLine(b"status"),
        AdminLine(b"workers"),
        AdminLine(b""),
        AdminLine(b""),
        AdminLine(b"version\r"),  # only one CR before the LF is a line end
    ]


def test_text_and_binary_mix_on_one_stream() -> None:
    wire = b"status\n" + encode_request(P.ECHO_REQ, b"a\nb") + b"show jobs\r\n" + encode_request(P.GRAB_JOB)
    assert Decoder().feed(wire) == [
        AdminLine(b"status"),
        Packet(P.ECHO_REQ, (b"a\nb",)),
        AdminLine(b"show jobs"),
        Packet(P.GRAB_JOB, ()),
    ]


def test_admin_line_of_the_maximum_length_is_accepted() -> None:
    decoder = Decoder()
    text = b"x" * MAX_ADMIN_LINE
    assert decoder.feed(text) == []  # still waiting for its newline
    assert decoder.feed(b"\n") == [AdminLine(text)]
    assert decoder.feed(b"y" * (MAX_ADMIN_LINE - 1) + b"\r\n") == [AdminLine(b"y" * (MAX_ADMIN_LINE - 1))]


def test_admin_line_too_long_without_newline_is_fatal() -> None:
    assert MAX_ADMIN_LINE == 8192
    decoder = Decoder()
    item = error(decoder.feed(b"x" * (MAX_ADMIN_LINE + 1)))
    assert (item.code, item.fatal) == ("ARGUMENT_TOO_LARGE", True)
    assert decoder.dead


def test_admin_line_too_long_is_fatal_however_it_arrives() -> None:
    line = b"x" * 9000 + b"\n"
    whole = error(Decoder().feed(line))
    decoder = Decoder()
    pieces = error(feed_all(decoder, [line[:8193], line[8193:]]))
    assert shape(whole) == shape(pieces)
    assert (whole.code, whole.fatal) == ("ARGUMENT_TOO_LARGE", True)


# ---------------------------------------------------------------------------------------------------- payloads


def test_all_256_byte_values_in_a_payload() -> None:
    payload = bytes(range(256)) * 2
    decoder = Decoder()
    assert decoder.feed(encode_request(P.SUBMIT_JOB, b"f", b"u", payload)) == [
        Packet(P.SUBMIT_JOB, (b"f", b"u", payload))
    ]
    assert decoder.feed(encode_request(P.ECHO_REQ, payload)) == [Packet(P.ECHO_REQ, (payload,))]
    assert Decoder(accept=RES).feed(encode(P.WORK_COMPLETE, b"H:x:1", payload)) == [
        Packet(P.WORK_COMPLETE, (b"H:x:1", payload))
    ]


def test_an_8_mib_payload_in_one_piece_and_in_chunks() -> None:
    payload = bytes(range(256)) * (8 * 1024 * 4)
    assert len(payload) == 8 * 1024 * 1024
    wire = encode_request(P.SUBMIT_JOB_BG, b"big", b"", payload)
    expected = [Packet(P.SUBMIT_JOB_BG, (b"big", b"", payload))]
    assert Decoder().feed(wire) == expected
    decoder = Decoder()
    chunk = 64 * 1024
    assert feed_all(decoder, [wire[i : i + chunk] for i in range(0, len(wire), chunk)]) == expected
    assert decoder.buffered == 0
