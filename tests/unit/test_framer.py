"""The optional C framer decides exactly as the pure-Python decoder does, for any stream and any split."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_codec import FAST, cut_lists, feed_all, hostile_streams, shape, split, stream_items

from geartrain.errors import ProtocolError
from geartrain.protocol import codec
from geartrain.protocol.codec import Decoder, Item, encode, encode_python, encode_request
from geartrain.protocol.packets import REQ, RES, AdminLine, Packet, PacketType

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


# ------------------------------------------------------------------ dispatch (Decoder.feed_to)


class Recorder:
    """The recipient of feed_to: records every call; a packet whose first argument is b"stop" asks to stop."""

    def __init__(self) -> None:
        self.close_after_flush = False
        self.calls: list[object] = []
        self.handlers: list[Callable[[Recorder, tuple[bytes, ...], float], None]] = [self.handle] * (max(P) + 1)

    def handle(self, recipient: Recorder, args: tuple[bytes, ...], now: float) -> None:
        assert recipient is self and now == 1.5
        self.calls.append(("packet", args))
        if args[:1] == (b"stop",):
            self.close_after_flush = True

    def other(self, item: AdminLine | ProtocolError) -> None:
        self.calls.append(("other", shape(item)))


def dispatch_all(chunks: list[bytes], accelerated: bool, **options: object) -> list[object]:
    decoder = Decoder(accelerated=accelerated, **options)  # type: ignore[arg-type]
    recorder = Recorder()
    for chunk in chunks:
        if recorder.close_after_flush:
            break
        decoder.feed_to(chunk, recorder.handlers, recorder, 1.5, recorder.other)
    return recorder.calls


def as_calls(items: list[Item]) -> list[object]:
    """What feed_to must make of the items feed() returns: the same, in order, up to a stop."""
    calls: list[object] = []
    for item in items:
        if type(item) is Packet:
            calls.append(("packet", item.args))
            if item.args[:1] == (b"stop",):
                break
        else:
            calls.append(("other", shape(item)))
    return calls


@FAST
@given(stream_items(), cut_lists, st.booleans())
def test_dispatch_hands_out_what_feed_decodes(case: tuple[list[object], bytes], cuts: list[int], fast: bool) -> None:
    """Both paths (C when built, and pure Python) call the handlers with the items feed() gives, in order."""
    _, wire = case
    expected = as_calls(feed_all(Decoder(accelerated=False), split(wire, cuts)))
    assert dispatch_all(split(wire, cuts), accelerated=fast) == expected


@FAST
@given(hostile_streams(), cut_lists, st.sampled_from([REQ, RES]), st.sampled_from([16, 1 << 20]), st.booleans())
def test_dispatch_of_hostile_streams_matches_feed(
    wire: bytes, cuts: list[int], accept: bytes, limit: int, fast: bool
) -> None:
    chunks = split(wire, cuts)
    pure = Decoder(accelerated=False, accept=accept, max_packet_size=limit)
    expected = as_calls(feed_all(pure, chunks))
    assert dispatch_all(chunks, accelerated=fast, accept=accept, max_packet_size=limit) == expected


@pytest.mark.parametrize("fast", [True, False])
def test_dispatch_stops_after_the_handler_that_asks_to_close(fast: bool) -> None:
    wire = b"".join(encode_request(P.ECHO_REQ, arg) for arg in (b"a", b"stop", b"never")) + b"status\n"
    assert dispatch_all([wire], accelerated=fast) == [("packet", (b"a",)), ("packet", (b"stop",))]


@pytest.mark.parametrize("fast", [True, False])
def test_a_handler_exception_propagates(fast: bool) -> None:
    def broken(recipient: Recorder, args: tuple[bytes, ...], now: float) -> None:
        raise RuntimeError("a bug")

    recorder = Recorder()
    recorder.handlers[P.GRAB_JOB] = broken
    decoder = Decoder(accelerated=fast)
    wire = encode_request(P.ECHO_REQ, b"a") + encode_request(P.GRAB_JOB) + encode_request(P.ECHO_REQ, b"b")
    with pytest.raises(RuntimeError, match="a bug"):
        decoder.feed_to(wire, recorder.handlers, recorder, 1.5, recorder.other)
    assert recorder.calls == [("packet", (b"a",))]


# ------------------------------------------------------------------ encode


@needs_framer
@FAST
@given(
    st.integers(0, 2**32 - 1),
    st.lists(st.binary(max_size=40), max_size=6),
    st.sampled_from([REQ, RES, None]),
    st.booleans(),
)
def test_c_encode_gives_the_python_bytes(ptype: int, args: list[bytes], magic: bytes | None, as_views: bool) -> None:
    assert codec.C_ENCODE is not None
    given_args: list[bytes] = [bytearray(a) if as_views else a for a in args]  # type: ignore[misc]
    if magic is None:
        assert codec.C_ENCODE(ptype, *given_args) == encode_python(ptype, *args)
    else:
        assert codec.C_ENCODE(ptype, *given_args, magic=magic) == encode_python(ptype, *args, magic=magic)


@needs_framer
def test_c_encode_refuses_what_python_refuses() -> None:
    assert codec.C_ENCODE is not None
    for bad_args in [("text",), (5,)]:
        with pytest.raises(TypeError):
            codec.C_ENCODE(P.ECHO_RES, *bad_args)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            encode_python(P.ECHO_RES, *bad_args)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        codec.C_ENCODE(P.ECHO_RES, b"x", magic=b"\0RE")
    with pytest.raises(TypeError):
        codec.C_ENCODE(P.ECHO_RES, b"x", flavour=b"\0RES")  # type: ignore[call-arg]
    with pytest.raises(OverflowError):
        codec.C_ENCODE(2**32, b"x")
