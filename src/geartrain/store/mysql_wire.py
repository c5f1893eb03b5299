"""The MySQL store's batches on the event loop: COM_QUERY over a connection PyMySQL opened and authenticated.

PyMySQL connects (every authentication plugin it knows, on a thread: it blocks), then hands its socket over to the
event loop, where the writer sends its multi-statement queries and reads the answers itself. A batch's statements
(INSERT ... ON DUPLICATE KEY UPDATE, DELETE, BEGIN, COMMIT, ROLLBACK) never return rows, so the answers are OK and
ERR packets only: a small parser, and no thread crossing per batch (about 50 µs, as long as the round trip).
Up to :data:`WRITER_CONNECTIONS` batches of deletions run at once, each on a connection of its own (InnoDB then
flushes their commits to the log together).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from geartrain.server.core.records import Removal, StoredJob
from geartrain.store.base import ConnectionLost, StoreError, StoreUnavailable
from geartrain.store.common import net_batch
from geartrain.store.pool import ConnectionPool
from geartrain.store.textcodec import bytes_to_text
from geartrain.store.wire import Answered, OrderedReplies, open_protocol

if TYPE_CHECKING:
    from geartrain.store.mysql import MySQLStore

WRITER_CONNECTIONS = 4
COM_QUERY = 0x03
MAX_PAYLOAD = 0xFFFFFF  # a longer payload is split into packets of this size
SERVER_MORE_RESULTS_EXISTS = 0x0008


class MySQLServerError(StoreError):
    """An ERR packet: its payload, for PyMySQL to turn into its exception class."""

    def __init__(self, payload: bytes) -> None:
        super().__init__(payload)
        self.payload = payload


def query_packets(sql: str) -> bytes:
    """``sql`` as a COM_QUERY command: packets of at most 16 MiB - 1, numbered from 0."""
    payload = b"\x03" + sql.encode("utf-8")  # COM_QUERY
    if len(payload) < MAX_PAYLOAD:  # the usual case: one packet, number 0
        return len(payload).to_bytes(3, "little") + b"\0" + payload
    packets = []
    for number, start in enumerate(range(0, len(payload) + 1, MAX_PAYLOAD)):
        chunk = payload[start : start + MAX_PAYLOAD]
        packets.append(struct.pack("<I", len(chunk))[:3] + bytes([number & 0xFF]) + chunk)
        if len(chunk) < MAX_PAYLOAD:
            break
    return b"".join(packets)


def lenenc_int(data: bytes, position: int) -> tuple[int, int]:
    """A length-encoded integer at ``position``, and where what follows it starts."""
    first = data[position]
    if first < 0xFB:
        return first, position + 1
    size = {0xFC: 2, 0xFD: 3, 0xFE: 8}.get(first)
    if size is None:
        raise ValueError(f"not a length-encoded integer: {first:#x}")
    return int.from_bytes(data[position + 1 : position + 1 + size], "little"), position + 1 + size


def more_results(ok: bytes) -> bool:
    """Whether an OK packet says that another statement's result follows (a multi-statement query)."""
    position = 1
    _, position = lenenc_int(ok, position)  # affected rows
    _, position = lenenc_int(ok, position)  # last insert id
    (status,) = struct.unpack_from("<H", ok, position)
    return bool(status & SERVER_MORE_RESULTS_EXISTS)


class QueryChannel(OrderedReplies[None]):
    """One connection: :meth:`query` resolves when every statement of the query succeeded (or at the first ERR)."""

    def __init__(self, timeout: float) -> None:
        super().__init__(timeout)
        self._buffer = bytearray()
        self.escape: Callable[[Any], str] = str  # PyMySQL's, for the session's character set: set on connecting

    def query(self, sql: str) -> asyncio.Future[None]:
        return self.send(query_packets(sql))

    def query_then(self, sql: str, answered: Answered[None]) -> bool:
        """:meth:`query` with a callback in place of the future (see :meth:`OrderedReplies.send_then`)."""
        return self.send_then(query_packets(sql), answered)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        position = 0
        try:
            while len(buffer) - position >= 4:
                length = int.from_bytes(buffer[position : position + 3], "little")
                if len(buffer) - position - 4 < length:
                    break
                packet = bytes(buffer[position + 4 : position + 4 + length])
                position += 4 + length
                self._packet(packet)
        except (ValueError, IndexError, struct.error) as exc:
            self.fail(ConnectionLost(f"not a MySQL answer: {exc}"))
            return
        del buffer[:position]

    def _packet(self, packet: bytes) -> None:
        kind = packet[0] if packet else -1
        if kind == 0 and len(packet) >= 5 and packet[1] < 0xFB and packet[2] < 0xFB:
            # The usual OK (row count and insert id of one byte each), read here: once per finished job.
            if not packet[3] & SERVER_MORE_RESULTS_EXISTS:
                self.answer(None)
        elif kind == 0xFF:
            self.answer(MySQLServerError(packet))  # the statements after the failed one were not run
        elif kind == 0x00 or (kind == 0xFE and len(packet) >= 7):
            if not more_results(packet):
                self.answer(None)
        else:
            raise ValueError(f"a packet of type {kind:#x} (rows?) where OK or ERR was expected")


class MySQLWriter:
    """The MySQL store's batches from the event loop: the same queries as :meth:`MySQLStore.apply`."""

    concurrency = WRITER_CONNECTIONS

    def __init__(self, store: MySQLStore, timeout: float) -> None:
        self._store = store
        self._timeout = timeout
        self._pool: ConnectionPool[QueryChannel] = ConnectionPool(self._connect, QueryChannel.close, _usable)

    async def open(self) -> None:
        await self._pool.reset()

    async def _connect(self) -> QueryChannel:
        store = self._store
        loop = asyncio.get_running_loop()
        conn: Any = await loop.run_in_executor(None, store.connect)  # blocks: DNS, TCP, authentication
        # PyMySQL reads through a buffered file over its socket; after a complete answer the buffer is empty, so
        # the socket can change hands. The loop owns it from here; PyMySQL's object only escapes values.
        sock = getattr(conn, "_sock", None)
        if not isinstance(sock, socket.socket) or not hasattr(conn, "_rfile"):
            conn.close()
            raise StoreError(f"{store.description}: this PyMySQL does not let go of its socket (a version after 1.2?)")
        conn._sock = None
        with contextlib.suppress(Exception):
            conn._rfile.close()
        conn._rfile = None
        try:
            sock.setblocking(False)
            channel = await open_protocol(lambda: QueryChannel(self._timeout), store.host, store.port, 0, sock=sock)
        except ConnectionLost as exc:
            sock.close()
            raise StoreUnavailable(f"{store.description}: {exc}") from exc
        channel.escape = conn.escape
        return channel

    async def apply(self, adds: Sequence[StoredJob], removes: Sequence[Removal]) -> None:
        store = self._store
        async with self._pool.borrow() as channel:
            with store._errors():
                await self._run(channel, store.queries(channel.escape, *net_batch(adds, removes)))

    async def _run(self, channel: QueryChannel, queries: list[str]) -> None:
        import pymysql

        try:
            for sql in queries:
                await channel.query(sql)
        except MySQLServerError as error:
            if queries[0].startswith("BEGIN"):  # the transaction is still open on this connection
                with contextlib.suppress(MySQLServerError):
                    await channel.query("ROLLBACK")
            pymysql.err.raise_mysql_exception(error.payload)  # its class says whose fault (translate_errors)
        except ConnectionLost as exc:
            raise StoreUnavailable(f"{self._store.description}: {exc}") from exc

    def remove_now(self, removes: Sequence[Removal], done: Callable[[BaseException | None], None]) -> bool:
        store, pool = self._store, self._pool
        channel = pool.take_idle()
        if channel is None:
            return False
        if len(removes) == 1:  # a drain with one worker: the statement spelt out, for it is sent once per job
            escape = channel.escape
            key, function = bytes_to_text(removes[0].key), bytes_to_text(removes[0].function)
            queries = [
                f"DELETE FROM {store.table} WHERE unique_key = {escape(key)} AND function_name = {escape(function)}"
            ]
        else:
            queries = store.queries(channel.escape, (), removes)
            if len(queries) != 1:  # too big for one packet: a transaction over several queries, by apply()
                pool.give_back(channel)
                return False

        def answered(reply: BaseException | None) -> None:
            pool.give_back(channel, lost=isinstance(reply, ConnectionLost))
            if isinstance(reply, MySQLServerError):
                done(StoreError(f"{store.description}: {_error_text(reply.payload)}"))
            elif isinstance(reply, ConnectionLost):
                done(StoreUnavailable(f"{store.description}: {reply}"))
            else:
                done(reply)

        if channel.query_then(queries[0], answered):
            return True
        pool.give_back(channel, lost=True)
        return False

    def close(self) -> None:
        self._pool.close()


def _error_text(payload: bytes) -> str:
    """An ERR packet's code and message (after the marker byte, code, and '#' with the SQL state)."""
    code = int.from_bytes(payload[1:3], "little") if len(payload) >= 3 else 0
    message = payload[9:] if payload[3:4] == b"#" else payload[3:]
    return f"({code}) {message.decode('utf-8', 'replace')}"


def _usable(channel: QueryChannel) -> bool:
    return channel.lost is None
