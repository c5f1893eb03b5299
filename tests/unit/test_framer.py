"""The optional C framer decides exactly as the pure-Python decoder does, for any stream and any split."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_codec import FAST, cut_lists, feed_all, hostile_streams, shape, split, stream_items

from geartrain.protocol import codec
from geartrain.protocol.codec import Decoder, encode, encode_request
from geartrain.protocol.packets import REQ, RES, Packet, PacketType

P = PacketType


def test_the_c_framer_is_built() -> None:
    """CI builds the package from source, so the accelerator must be there; elsewhere it is optional."""
    if os.environ.get("GEARTRAIN_PURE_PYTHON"):
        pytest.skip("GEARTRAIN_PURE_PYTHON is set: the pure-Python decoder is in use on purpose")
    if codec.C_FRAMER is None:
        if os.environ.get("CI"):
            pytest.fail("geartrain.protocol._speedups was not built (is a C compiler installed?)")
        pytest.skip("geartrain.protocol._speedups is not built here; the pure-Python decoder is in use")


needs_framer = pytest.mark.skipif(codec.C_FRAMER is None, reason="the C framer is not built")


def both(chunks: list[bytes], **options: object) -> tuple[list[object], list[object]]:
    fast = Decoder(accelerated=True, **options)  # type: ignore[arg-type]
    pure = Decoder(accelerated=False, **options)  # type: ignore[arg-type]
    return [shape(i) for i in feed_all(fast, chunks)], [shape(i) for i in feed_all(pure, chunks)]


@needs_framer
@FAST
@given(stream_items(), cut_lists)
def test_valid_streams_decode_the_same(case: tuple[list[object], bytes], cuts: list[int]) -> None:
    expected, wire = case
    fast, pure = both(split(wire, cuts))
    assert fast == pure == expected


@needs_framer
@FAST
@given(hostile_streams(), cut_lists, st.sampled_from([REQ, RES]), st.sampled_from([16, 1 << 20]))
def test_hostile_streams_decode_the_same(wire: bytes, cuts: list[int], accept: bytes, limit: int) -> None:
    fast, pure = both(split(wire, cuts), accept=accept, max_packet_size=limit)
    assert fast == pure


@needs_framer
def test_packets_come_out_as_packet_instances() -> None:
    items = Decoder(accelerated=True).feed(encode_request(P.SUBMIT_JOB_BG, b"f", b"u", b"data\0with\0nuls"))
    assert items == [Packet(P.SUBMIT_JOB_BG, (b"f", b"u", b"data\0with\0nuls"))]
    assert type(items[0]) is Packet and items[0].type == P.SUBMIT_JOB_BG


@needs_framer
def test_the_framer_stops_where_python_must_decide() -> None:
    """A short packet, the other magic, an unknown type and an oversized one are left to the Python decoder."""
    good = encode_request(P.ECHO_REQ, b"x")
    short = encode_request(P.SUBMIT_JOB, b"only-one-argument")
    other = encode(P.ECHO_REQ, b"y", magic=RES)
    out: list[codec.Item] = []
    assert codec.C_FRAMER is not None
    frame = codec.C_FRAMER
    for stopper in (short, other, b"\0REQ" + (99).to_bytes(4, "big") + (0).to_bytes(4, "big"), b"status\n"):
        out.clear()
        position = frame(good + stopper, 0, REQ, 1 << 20, codec._ARG_COUNTS, codec._MIN_COUNTS, Packet, out)
        assert position == len(good) and out == [Packet(P.ECHO_REQ, (b"x",))]
    out.clear()
    assert frame(good, 0, REQ, 0, codec._ARG_COUNTS, codec._MIN_COUNTS, Packet, out) == 0 and out == []
    # A reduce submit with 4 fields is accepted (libgearman's layout), as in the Python decoder.
    reduce4 = encode_request(P.SUBMIT_REDUCE_JOB, b"f", b"u", b"r", b"d")
    assert frame(reduce4, 0, REQ, 1 << 20, codec._ARG_COUNTS, codec._MIN_COUNTS, Packet, out) == len(reduce4)
    assert out == [Packet(P.SUBMIT_REDUCE_JOB, (b"f", b"u", b"r", b"d"))]


@needs_framer
def test_bad_arguments_raise_instead_of_crashing() -> None:
    assert codec.C_FRAMER is not None
    with pytest.raises(TypeError):
        codec.C_FRAMER(b"", 0, REQ, 10, codec._ARG_COUNTS, codec._MIN_COUNTS, int, [])
    with pytest.raises(ValueError):
        codec.C_FRAMER(b"", 0, b"\0RE", 10, codec._ARG_COUNTS, codec._MIN_COUNTS, Packet, [])
