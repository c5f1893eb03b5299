"""Sans-IO encoding and decoding of the Gearman byte stream (binary packets and admin text lines).

:class:`Decoder` is fed whatever bytes arrive and returns every complete item: a :class:`Packet`, an
:class:`AdminLine`, or a :class:`ProtocolError` describing bad input. After a *fatal* error (the stream can no
longer be framed) the decoder returns nothing more and the connection should be closed.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol, TypeVar

from geartrain.errors import ErrorCode, PeerProtocolError, ProtocolError
from geartrain.protocol.packets import (
    ARG_COUNT,
    HEADER_SIZE,
    MAX_PACKET_TYPE,
    MIN_ARG_COUNT,
    REQ,
    RES,
    AdminLine,
    Packet,
    PacketType,
)

DEFAULT_MAX_PACKET_SIZE = 256 * 1024 * 1024
# gearmand reads admin lines into an 8 KiB buffer; a longer line without a newline closes the connection.
MAX_ADMIN_LINE = 8192
# A packet at least this big (more than one read of the event loop) is assembled in place: its payload, the last
# argument, is received straight into the bytes object the engine keeps, instead of into a buffer that is copied.
LARGE_PACKET: Final = 256 * 1024

_HEADER = struct.Struct(">4sII")
_TYPE_SIZE = struct.Struct(">II")
_pack_type_size = _TYPE_SIZE.pack

Item = Packet | AdminLine | ProtocolError

# Per packet type, how many arguments its body splits into and how few are accepted, as byte tables the C framer
# indexes directly.
_ARG_COUNTS = bytes(ARG_COUNT.get(ptype, 0) for ptype in range(MAX_PACKET_TYPE + 1))
_MIN_COUNTS = bytes(MIN_ARG_COUNT.get(ptype, 0) for ptype in range(MAX_PACKET_TYPE + 1))

Framer = Callable[[bytes | bytearray, int, bytes, int, bytes, bytes, type, list[Item]], int]
Dispatcher = Callable[[bytes | bytearray, int, bytes, int, bytes, bytes, list[Any], Any, float], int]


class Recipient(Protocol):
    """What :meth:`Decoder.feed_to` needs of the object it hands to the handlers: whether to stop."""

    close_after_flush: bool


R = TypeVar("R", bound=Recipient)
PacketHandler = Callable[[R, tuple[bytes, ...], float], None]


class Encoder(Protocol):
    def __call__(self, ptype: int, /, *args: bytes, magic: bytes = RES) -> bytes: ...


def _load_speedups() -> tuple[Framer | None, Dispatcher | None, Encoder | None]:
    """The C framer, dispatcher and encoder, unless not built or ``GEARTRAIN_PURE_PYTHON`` asks for pure Python."""
    if os.environ.get("GEARTRAIN_PURE_PYTHON"):
        return None, None, None
    try:
        from geartrain.protocol._speedups import dispatch, encode, frame
    except ImportError:
        return None, None, None
    return frame, dispatch, encode


C_FRAMER, C_DISPATCH, C_ENCODE = _load_speedups()


def deliver(
    items: Sequence[Item],
    handlers: Sequence[PacketHandler[R]],
    recipient: R,
    now: float,
    on_other: Callable[[AdminLine | ProtocolError], None],
) -> None:
    """Act on decoded items in order: ``handlers[type](recipient, args, now)`` for a packet, ``on_other(item)`` for
    an admin line or an error; nothing more once ``recipient.close_after_flush`` is set."""
    for item in items:
        if type(item) is Packet:
            handlers[item[0]](recipient, item[1], now)
        else:
            on_other(item)  # type: ignore[arg-type]
        if recipient.close_after_flush:
            return


def encode_python(ptype: int, /, *args: bytes, magic: bytes = RES) -> bytes:
    """Encode one packet. Arguments are joined with NUL; only the last one may contain NUL bytes."""
    body = b"\0".join(args)
    return magic + _pack_type_size(ptype, len(body)) + body


# The C version builds the same bytes in one allocation (replies to workers and clients are encoded per job).
encode: Encoder = C_ENCODE or encode_python


def encode_head(ptype: int, args: tuple[bytes, ...], magic: bytes = RES) -> bytes:
    """A packet without its last argument, which is to be written right after it: the header counts it in."""
    head = b"\0".join(args[:-1]) + b"\0" if len(args) > 1 else b""
    return magic + _pack_type_size(ptype, len(head) + len(args[-1])) + head


def encode_request(ptype: int, *args: bytes) -> bytes:
    """Encode a packet sent to a server (``\\0REQ`` magic)."""
    return encode(ptype, *args, magic=REQ)


def split_args(ptype: int, body: bytes) -> tuple[bytes, ...] | None:
    """Split a body into the packet type's arguments; ``None`` if it has too few."""
    count = ARG_COUNT[ptype]
    if count == 1:
        return (body,)
    if count == 0:
        return ()
    args = body.split(b"\0", count - 1)
    if len(args) < count and len(args) < MIN_ARG_COUNT[ptype]:
        return None
    return tuple(args)


class _Assembly:
    """A large packet being received: its leading arguments, and its payload filled in place.

    ``bytes(size)`` is zeroed memory that the kernel maps only as it is written; ``BytesIO`` takes that object as
    its own buffer (nothing else refers to it), writes into it in place, and ``getvalue()`` returns that very
    object once it is full. So the payload exists once, where a growing buffer and the bytes cut from it would hold
    it twice (measured with a 100 MB job: the server's peak memory 232 MiB before, ~130 after).
    """

    __slots__ = ("args", "body", "missing", "ptype")

    def __init__(self, ptype: int, args: list[bytes], size: int) -> None:
        self.ptype = ptype
        self.args = args
        self.body = io.BytesIO(bytes(size))
        self.missing = size

    def take(self, data: bytes | bytearray, start: int) -> int:
        """Copy what ``data[start:]`` holds of the payload; return where the next item starts."""
        end = min(len(data), start + self.missing)
        self.body.write(memoryview(data)[start:end])
        self.missing -= end - start
        return end

    def free_space(self) -> memoryview:
        """The part of the payload still to come, to be read into directly (then :meth:`filled`)."""
        start = self.body.tell()
        return self.body.getbuffer()[start : start + self.missing]

    def filled(self, nbytes: int) -> None:
        self.body.seek(nbytes, io.SEEK_CUR)
        self.missing -= nbytes

    def packet(self) -> Packet:
        # Once the views free_space() gave are gone, getvalue() hands back the buffer itself (else a copy).
        self.args.append(self.body.getvalue())
        return Packet(self.ptype, tuple(self.args))


class Decoder:
    """Frames a byte stream into packets and admin lines.

    ``accept`` is the magic expected from the peer (``\\0REQ`` on a server, ``\\0RES`` on a client). The other
    Gearman magic is well framed, so it gives a non-fatal INVALID_MAGIC error; anything else is fatal. ``admin``
    allows text lines (a new item not starting with NUL); without it such a byte is a fatal error.
    """

    __slots__ = ("_accept", "_admin", "_assembly", "_buf", "_dead", "_dispatch", "_framer", "_max_size", "_other")

    def __init__(
        self,
        *,
        accept: bytes = REQ,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        admin: bool = True,
        accelerated: bool = True,
    ) -> None:
        # The C framer (when built) takes runs of well-formed packets; everything else goes through the Python
        # loop below, so both paths give the same items.
        self._framer = C_FRAMER if accelerated else None
        self._dispatch = C_DISPATCH if accelerated else None
        self._accept = accept
        self._other = RES if accept == REQ else REQ
        self._max_size = max_packet_size
        self._admin = admin
        self._buf = bytearray()
        self._assembly: _Assembly | None = None  # a large packet being received (LARGE_PACKET)
        self._dead = False

    @property
    def dead(self) -> bool:
        """True after a fatal error: the stream cannot be framed any more."""
        return self._dead

    @property
    def assembling(self) -> bool:
        """A large packet is being assembled: the rest of it may be read in place (:meth:`assembly_space`)."""
        return self._assembly is not None

    def assembly_space(self) -> memoryview:
        """Where the rest of the large packet being assembled goes: a transport may read into it directly (an
        asyncio ``BufferedProtocol``), sparing the copy from its own buffer; then call :meth:`assembly_filled`."""
        assert self._assembly is not None
        return self._assembly.free_space()

    def assembly_filled(self, nbytes: int) -> bool:
        """``nbytes`` were read into :meth:`assembly_space`; whether the packet is complete. Take it with
        :meth:`assembled` once the reader let go of the space (else it is copied)."""
        assert self._assembly is not None
        self._assembly.filled(nbytes)
        return not self._assembly.missing

    def assembled(self) -> Packet:
        assembly = self._assembly
        assert assembly is not None and not assembly.missing
        self._assembly = None
        return assembly.packet()

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of an item."""
        assembly = self._assembly
        return len(self._buf) + (assembly.body.tell() if assembly is not None else 0)

    def feed(self, data: bytes) -> list[Item]:
        """Take the next bytes of the stream; return every item they complete, in order."""
        if self._dead:
            return []
        out: list[Item] = []
        if self._assembly is not None:
            data = self._go_on_assembling(data, out)
            if not data:
                return out
        buf: bytes | bytearray = data
        if self._buf:
            self._buf += data
            buf = self._buf
        # Parsed straight from the received bytes when nothing was held (the C framer, when built, takes the runs
        # of well-formed packets inside _parse); only an incomplete tail is copied.
        self._keep_tail(buf, self._parse(buf, out))
        return out

    def feed_to(
        self,
        data: bytes,
        handlers: list[PacketHandler[R]],
        recipient: R,
        now: float,
        on_other: Callable[[AdminLine | ProtocolError], None],
    ) -> None:
        """:meth:`feed` and :func:`deliver` in one step: the server's path.

        With the C accelerator, a run of well-formed packets goes from the bytes to the handlers without a packet
        object or a Python loop per packet; whatever it leaves (an admin line, bad input, a packet split across
        reads) takes the general path, in stream order. A handler's exception propagates, and the stream is then
        abandoned (the decoder is dead): the caller closes the connection.
        """
        dispatch = self._dispatch
        if dispatch is None or self._dead or self._assembly is not None:
            deliver(self.feed(data), handlers, recipient, now, on_other)
            return
        buf: bytes | bytearray = data
        if self._buf:
            self._buf += data
            buf = self._buf
        try:
            pos = dispatch(buf, 0, self._accept, self._max_size, _ARG_COUNTS, _MIN_COUNTS, handlers, recipient, now)
        except BaseException:
            self._dead = True  # where the handled packets end is unknown: nothing more can be framed
            self._buf.clear()
            raise
        end = len(buf)
        if pos == end and buf is data:
            return  # the common case: the whole input was framed and handled, nothing to keep
        if pos < end and not recipient.close_after_flush:
            out: list[Item] = []
            pos = self._parse(buf, out, pos)
            deliver(out, handlers, recipient, now, on_other)
        self._keep_tail(buf, pos)

    def _keep_tail(self, buf: bytes | bytearray, pos: int) -> None:
        """Hold what follows ``pos`` in ``buf`` (``buf`` is the held buffer itself, or fresh received bytes)."""
        if self._dead:
            self._buf.clear()
            return
        if len(buf) - pos >= HEADER_SIZE:
            pos = self._start_assembly(buf, pos)
        if buf is self._buf:
            del self._buf[:pos]
        elif pos < len(buf):
            self._buf += memoryview(buf)[pos:]

    def _start_assembly(self, buf: bytes | bytearray, pos: int) -> int:
        """If the incomplete packet at ``pos`` is a large one whose leading arguments are all here, assemble it in
        place from now on (:class:`_Assembly`); return where the bytes not taken start. Anything unusual (another
        magic, an unknown type, over the limit, a packet without arguments) is left to :meth:`_parse`, which gives
        its error as for any packet once it is complete or at once."""
        if buf[pos] != 0:
            return pos
        magic, ptype, size = _HEADER.unpack_from(buf, pos)
        if size < LARGE_PACKET or size > self._max_size or magic != self._accept or not 0 < ptype <= MAX_PACKET_TYPE:
            return pos
        count = _ARG_COUNTS[ptype]
        if count == 0:
            return pos
        end = len(buf)
        start = at = pos + HEADER_SIZE
        args: list[bytes] = []
        for _ in range(count - 1):
            nul = buf.find(b"\0", at, end)
            if nul < 0:
                return pos  # the leading arguments are not all here yet: hold the start, look again next time
            args.append(bytes(buf[at:nul]))
            at = nul + 1
        assembly = _Assembly(ptype, args, size - (at - start))
        self._assembly = assembly
        return assembly.take(buf, at)

    def _go_on_assembling(self, data: bytes, out: list[Item]) -> bytes:
        """Take the next bytes of the large packet being assembled; return the bytes that follow it."""
        assembly = self._assembly
        assert assembly is not None
        end = assembly.take(data, 0)
        if assembly.missing:
            return b""
        self._assembly = None
        out.append(assembly.packet())
        return data[end:] if end < len(data) else b""

    def _parse(self, buf: bytes | bytearray, out: list[Item], start: int = 0) -> int:
        pos = start
        end_of_data = len(buf)
        accept = self._accept
        unpack_header = _HEADER.unpack_from
        framer = self._framer
        while pos < end_of_data:
            if framer is not None:
                pos = framer(buf, pos, accept, self._max_size, _ARG_COUNTS, _MIN_COUNTS, Packet, out)
                if pos >= end_of_data:
                    break
            if buf[pos] != 0:
                if not self._admin:
                    return self._fatal(out, ErrorCode.INVALID_MAGIC, "Text received where a packet was expected")
                nl = buf.find(b"\n", pos)
                # The limit applies whether or not the newline came in the same read: any split decodes the same.
                if (nl if nl >= 0 else end_of_data) - pos > MAX_ADMIN_LINE:
                    return self._fatal(out, ErrorCode.ARGUMENT_TOO_LARGE, "Admin command line too long")
                if nl < 0:
                    break
                line = bytes(buf[pos:nl])
                if line.endswith(b"\r"):
                    line = line[:-1]
                out.append(AdminLine(line))
                pos = nl + 1
                continue
            if end_of_data - pos < HEADER_SIZE:
                break
            magic, ptype, size = unpack_header(buf, pos)
            if magic != accept and magic != self._other:
                return self._fatal(out, ErrorCode.INVALID_MAGIC, "Invalid magic in packet header")
            if size > self._max_size:
                return self._fatal(
                    out, ErrorCode.ARGUMENT_TOO_LARGE, f"Packet of {size} bytes exceeds the limit of {self._max_size}"
                )
            end = pos + HEADER_SIZE + size
            if end > end_of_data:
                break
            body = bytes(buf[pos + HEADER_SIZE : end])
            pos = end
            if magic != accept:
                expected = "Request" if accept == REQ else "Response"
                out.append(PeerProtocolError(ErrorCode.INVALID_MAGIC, f"{expected} magic expected"))
            elif ptype == 0 or ptype > MAX_PACKET_TYPE:
                out.append(PeerProtocolError(ErrorCode.INVALID_COMMAND, f"Unknown packet type {ptype}"))
            else:
                args = split_args(ptype, body)
                if args is None:
                    name = PacketType(ptype).name
                    out.append(PeerProtocolError(ErrorCode.INVALID_PACKET, f"Too few arguments for {name}"))
                else:
                    out.append(Packet(ptype, args))
        return pos

    def _fatal(self, out: list[Item], code: ErrorCode, text: str) -> int:
        self._dead = True
        self._buf.clear()
        out.append(PeerProtocolError(code, text, fatal=True))
        return 0
