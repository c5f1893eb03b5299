"""Request parsing of the HTTP listener: heads and chunked bodies, whole and split at every byte."""

from __future__ import annotations

import pytest

from geartrain.http.message import MAX_CHUNK_LINE, BadRequest, ChunkedBody, parse_head

BODY = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n"


def read_in_pieces(stream: bytes, piece: int, limit: int = 1000) -> tuple[bytes, int] | None:
    """Feed ``stream`` to one decoder ``piece`` bytes at a time, as reads would grow the connection's buffer."""
    buffer = bytearray()
    reader = ChunkedBody(0, limit)
    result = None
    for offset in range(0, len(stream), piece):
        buffer += stream[offset : offset + piece]
        result = reader.read(buffer)
        if result is not None:
            break
    return result


@pytest.mark.parametrize("piece", [1, 2, 3, 7, len(BODY)])
def test_chunked_body_decodes_whatever_the_reads(piece: int) -> None:
    assert read_in_pieces(BODY + b"NEXT REQUEST", piece) == (b"hello, world", len(BODY))


def test_chunked_body_incomplete_until_the_final_blank_line() -> None:
    reader = ChunkedBody(0, 1000)
    for end in range(len(BODY)):
        assert reader.read(BODY[:end]) is None, end


def test_chunked_body_starts_where_the_head_ends() -> None:
    stream = b"HEAD\r\n\r\n" + b"3\r\nabc\r\n0\r\n\r\n"
    assert ChunkedBody(8, 1000).read(stream) == (b"abc", len(stream))


@pytest.mark.parametrize(
    ("stream", "status"),
    [
        (b"zz\r\nab\r\n0\r\n\r\n", 400),  # not hex
        (b"\r\n", 400),  # no size at all
        (b"-1\r\n", 400),
        (b"3\r\nabcX\r\n0\r\n\r\n", 400),  # data longer than its size
        (b"1" * 17 + b"\r\n", 400),  # more hex digits than any size
        (b"0\r\nno colon here\r\n\r\n", 400),  # a trailer that is no field
        (b"a" * (MAX_CHUNK_LINE + 10), 400),  # a size line without end
        (b"400\r\n", 413),  # announces more than the limit: refused before the data comes
        (b"200\r\n" + b"x" * 512 + b"\r\n200\r\n", 413),  # the sum passes the limit
    ],
)
def test_chunked_body_errors(stream: bytes, status: int) -> None:
    with pytest.raises(BadRequest) as raised:
        ChunkedBody(0, 1000).read(stream)
    assert raised.value.status == status


def test_transfer_codings_other_than_chunked_are_refused() -> None:
    assert parse_head(b"POST /f HTTP/1.1\r\nTransfer-Encoding: Chunked").chunked
    assert not parse_head(b"POST /f HTTP/1.1\r\nContent-Length: 3").chunked
    with pytest.raises(BadRequest) as raised:
        parse_head(b"POST /f HTTP/1.1\r\nTransfer-Encoding: gzip, chunked")
    assert raised.value.status == 501
    with pytest.raises(BadRequest) as raised:  # both framings at once: how requests are smuggled
        parse_head(b"POST /f HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3")
    assert raised.value.status == 400
