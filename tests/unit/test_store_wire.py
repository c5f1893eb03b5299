"""The batch writers' wire formats without a database: RESP replies and commands, MySQL packets and answers."""

from __future__ import annotations

import asyncio
import struct

import pytest

from geartrain.store.base import ConnectionLost
from geartrain.store.mysql_wire import MAX_PAYLOAD, MySQLServerError, QueryChannel, more_results, query_packets
from geartrain.store.resp import IncompleteReply, RespConnection, RespError, encode_command, parse_reply


class Transport:
    """What a protocol writes, kept; enough of a transport for OrderedReplies."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True


def test_resp_commands_are_arrays_of_bulk_strings() -> None:
    assert encode_command([b"DEL", b"a b", 12]) == b"*3\r\n$3\r\nDEL\r\n$3\r\na b\r\n$2\r\n12\r\n"


@pytest.mark.parametrize(
    ("wire", "reply"),
    [
        (b"+OK\r\n", b"OK"),
        (b":42\r\n", 42),
        (b"$3\r\na\r\n\r\n", b"a\r\n"),
        (b"$-1\r\n", None),
        (b"*2\r\n:1\r\n*1\r\n$1\r\nx\r\n", [1, [b"x"]]),
        (b"*-1\r\n", None),
    ],
)
def test_resp_replies_parse_whole_and_in_any_split(wire: bytes, reply: object) -> None:
    assert parse_reply(wire + b"+next\r\n", 0) == (reply, len(wire))
    for cut in range(len(wire)):
        with pytest.raises(IncompleteReply):
            parse_reply(wire[:cut], 0)


@pytest.mark.parametrize("fast", [True, False], ids=["hiredis", "pure"])
def test_a_resp_error_reply_is_a_value_and_garbage_drops_the_connection(fast: bool) -> None:
    error, _ = parse_reply(b"-ERR wrong\r\n", 0)
    assert isinstance(error, RespError) and str(error) == "ERR wrong"

    async def scenario() -> None:
        conn = RespConnection(timeout=5, fast=fast)
        transport = Transport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        first, second = conn.call([b"PING"]), conn.call([b"MULTI"], [b"DEL", b"k"], [b"EXEC"])
        conn.data_received(b"+PONG\r\n+OK\r\n+QUE")  # replies arrive in pieces
        assert first.result() == [b"PONG"] and not second.done()
        conn.data_received(b"UED\r\n*2\r\n:1\r\n-ERR in exec\r\n")
        assert second.result()[:2] == [b"OK", b"QUEUED"]
        [one, failed] = second.result()[2]  # type: ignore[misc]
        assert one == 1 and isinstance(failed, RespError) and str(failed) == "ERR in exec"
        third = conn.call([b"PING"])
        conn.data_received(b"?what\r\n")
        with pytest.raises(ConnectionLost):
            third.result()
        assert transport.closed
        with pytest.raises(ConnectionLost):
            await conn.call([b"PING"])  # nothing is sent on a connection that was dropped

    asyncio.run(scenario())


def test_mysql_queries_are_split_into_packets_of_at_most_16_mib() -> None:
    packets = query_packets("x" * (2 * MAX_PAYLOAD + 4))  # payload: COM_QUERY byte + 2 * MAX + 4
    sizes, numbers, position = [], [], 0
    while position < len(packets):
        size = int.from_bytes(packets[position : position + 3], "little")
        sizes.append(size)
        numbers.append(packets[position + 3])
        position += 4 + size
    assert sizes == [MAX_PAYLOAD, MAX_PAYLOAD, 5] and numbers == [0, 1, 2]
    exact = query_packets("x" * (MAX_PAYLOAD - 1))  # exactly one full packet: an empty one must follow
    assert len(exact) == 4 + MAX_PAYLOAD + 4 and exact.endswith(b"\0\0\0\x01")
    assert query_packets("BEGIN") == b"\x06\0\0\0\x03BEGIN"


def ok_packet(status: int, affected: int = 1) -> bytes:
    body = b"\x00" + bytes([affected]) + b"\x00" + struct.pack("<HH", status, 0)
    return struct.pack("<I", len(body))[:3] + b"\x01" + body


def test_mysql_answers_end_at_the_last_ok_or_the_first_err() -> None:
    assert more_results(ok_packet(0x0008)[4:]) and not more_results(ok_packet(0x0002)[4:])
    assert more_results(b"\x00\xfc\x10\x27\x00" + struct.pack("<HH", 0x0008, 0))  # 2-byte affected-rows count

    async def scenario() -> None:
        channel = QueryChannel(timeout=5)
        channel.connection_made(Transport())  # type: ignore[arg-type]
        done = channel.query("BEGIN;DELETE FROM t;COMMIT")
        answer = ok_packet(0x0008) + ok_packet(0x0008) + ok_packet(0x0002)
        channel.data_received(answer[:9])
        channel.data_received(answer[9:])
        assert done.done() and done.result() is None
        failed = channel.query("BEGIN;INSERT ...;COMMIT")
        err = b"\xff\x26\x04#22003Out of range value"
        channel.data_received(ok_packet(0x0008) + struct.pack("<I", len(err))[:3] + b"\x02" + err)
        with pytest.raises(MySQLServerError):
            failed.result()
        rows = channel.query("SELECT 1")
        channel.data_received(b"\x01\0\0\x01\x01")  # a column count: a result set, which no batch asks for
        with pytest.raises(ConnectionLost):
            rows.result()

    asyncio.run(scenario())


@pytest.mark.parametrize("fast", [True, False], ids=["hiredis", "pure"])
def test_callbacks_and_futures_are_answered_in_the_order_sent_and_fail_together(fast: bool) -> None:
    async def scenario() -> None:
        conn = RespConnection(timeout=5, fast=fast)
        conn.connection_made(Transport())  # type: ignore[arg-type]
        answers: list[object] = []
        first = conn.call([b"PING"])
        assert conn.send_commands_then(encode_command([b"DEL", b"k"]), 1, answers.append)
        third = conn.call([b"GET", b"k"])
        conn.data_received(b"+PONG\r\n:1")
        assert first.done() and answers == []
        conn.data_received(b"\r\n$-1\r\n")
        assert answers == [[1]] and await third == [None] and await first == [b"PONG"]

        assert conn.send_commands_then(encode_command([b"DEL", b"k"]), 1, answers.append)
        pending = conn.call([b"PING"])
        conn.connection_lost(None)
        assert isinstance(answers[-1], ConnectionLost)
        with pytest.raises(ConnectionLost):
            await pending
        assert not conn.send_commands_then(b"", 1, answers.append)  # lost: nothing sent, never called back
        assert len(answers) == 2

    asyncio.run(scenario())


def test_a_mysql_query_answered_by_callback() -> None:
    async def scenario() -> None:
        channel = QueryChannel(timeout=5)
        transport = Transport()
        channel.connection_made(transport)  # type: ignore[arg-type]
        answers: list[object] = []
        assert channel.query_then("DELETE FROM t WHERE a = 1", answers.append)
        assert transport.written == [query_packets("DELETE FROM t WHERE a = 1")]
        channel.data_received(bytes([7, 0, 0, 1, 0, 1, 0, 2, 0, 0, 0]))  # OK, 1 row, no more results
        assert answers == [None]

    asyncio.run(scenario())
