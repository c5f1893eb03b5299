"""The load generator's packet building and byte scanning, checked against an independent reading of the bytes."""

from __future__ import annotations

import struct

import pytest

from geartrain.bench import packets
from geartrain.bench.harness import split
from geartrain.bench.measure import parse_address, percentile
from geartrain.bench.submit import Chunks


def parse_requests(blob: bytes) -> list[tuple[int, list[bytes]]]:
    """Walk a stream of request packets by hand: (type, NUL-separated arguments) each."""
    out = []
    offset = 0
    while offset < len(blob):
        magic, ptype, size = struct.unpack(">4sII", blob[offset : offset + 12])
        assert magic == b"\x00REQ"
        body = blob[offset + 12 : offset + 12 + size]
        assert len(body) == size
        out.append((ptype, body.split(b"\x00")))
        offset += 12 + size
    return out


def response(ptype: int, *args: bytes) -> bytes:
    body = b"\x00".join(args)
    return b"\x00RES" + struct.pack(">II", ptype, len(body)) + body


def test_request_layout() -> None:
    packet = packets.request(packets.SUBMIT_JOB_BG, b"fn", b"u1", b"data")
    assert packet == b"\x00REQ\x00\x00\x00\x12\x00\x00\x00\x0afn\x00u1\x00data"
    assert packets.request(packets.GRAB_JOB) == b"\x00REQ\x00\x00\x00\x09\x00\x00\x00\x00"


def test_bg_submits_empty_unique_are_identical() -> None:
    parsed = parse_requests(packets.bg_submits(b"f", b"x" * 100, 5, None))
    assert len(parsed) == 5
    assert all(p == (packets.SUBMIT_JOB_BG, [b"f", b"", b"x" * 100]) for p in parsed)


def test_bg_submits_unique_per_job_are_distinct_and_numbered_from_start() -> None:
    parsed = parse_requests(packets.bg_submits(b"f", b"p", 4, b"run-", start=7))
    assert [args[1] for _, args in parsed] == [b"run-7", b"run-8", b"run-9", b"run-10"]
    assert all(args[0] == b"f" and args[2] == b"p" for _, args in parsed)


@pytest.mark.parametrize("unique", [None, b"u-"])
def test_chunks_cover_every_job_once(unique: bytes | None) -> None:
    source = Chunks(b"f", b"x", 1003, unique, 100)
    counts = [source.count(index) for index in range(len(source))]
    chunks = [source[index] for index in range(len(source))]
    assert counts == [100] * 10 + [3]
    assert source[10] is source[10]  # a partly sent chunk asked for again is not rebuilt
    parsed = [p for chunk in chunks for p in parse_requests(chunk)]
    assert len(parsed) == 1003
    assert [len(parse_requests(c)) for c in chunks] == counts
    if unique is not None:
        assert len({args[1] for _, args in parsed}) == 1003


def stream_of_created(handles: list[bytes]) -> bytes:
    return b"".join(response(packets.JOB_CREATED, h) for h in handles)


def test_pattern_counter_finds_every_header_at_every_split() -> None:
    handles = [f"H:host:{n}".encode() for n in range(1, 40)]
    stream = stream_of_created(handles) + response(packets.ECHO_RES, b"JOB") + stream_of_created(handles[:3])
    header = packets.response_header(packets.JOB_CREATED)
    for size in (1, 2, 3, 5, 7, 11, 12, 13, 64, len(stream)):
        counter = packets.PatternCounter(header)
        completed = sum(counter.feed(stream[i : i + size]) for i in range(0, len(stream), size))
        assert counter.count == completed == 42, size


def test_pattern_counter_ignores_other_types() -> None:
    counter = packets.PatternCounter(packets.response_header(packets.JOB_CREATED))
    counter.feed(response(packets.ERROR, b"ERR", b"text") + response(packets.NO_JOB))
    assert counter.count == 0


def test_frame_reader_reassembles_split_frames() -> None:
    frames = [
        (packets.JOB_ASSIGN, b"H:1\x00fn\x00" + b"x" * 300),
        (packets.NO_JOB, b""),
        (packets.NOOP, b""),
        (packets.WORK_COMPLETE, b"H:2\x00result"),
    ]
    stream = b"".join(response(t, body) for t, body in frames)
    for size in (1, 5, 12, 13, 100, len(stream)):
        reader = packets.FrameReader()
        got = [f for i in range(0, len(stream), size) for f in reader.feed(stream[i : i + size])]
        assert got == frames, size
        assert reader.pending == 0


def test_frame_reader_rejects_requests() -> None:
    with pytest.raises(ValueError):
        packets.FrameReader().feed(packets.request(packets.GRAB_JOB))


def test_split_and_helpers() -> None:
    assert split(10, 3) == [4, 3, 3]
    assert sum(split(200_001, 8)) == 200_001
    assert split(2, 4) == [1, 1, 0, 0]
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([float(n) for n in range(1, 101)], 0.99) == 99.0
    assert parse_address("127.0.0.1:4731") == ("127.0.0.1", 4731)
    assert parse_address("[::1]:4731") == ("::1", 4731)
    assert parse_address("example.org") == ("example.org", 4730)
