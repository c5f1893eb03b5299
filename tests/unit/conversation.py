"""A scripted conversation with the engine, without sockets: connect peers, send packets, read what they got."""

from __future__ import annotations

from geartrain.protocol.codec import Decoder, encode
from geartrain.protocol.packets import RES, Packet, PacketType
from geartrain.server.core.admin import AdminCommands
from geartrain.server.core.config import EngineConfig
from geartrain.server.core.engine import Engine
from geartrain.server.core.peers import Peer

P = PacketType
Reply = tuple[PacketType, tuple[bytes, ...]]

T0 = 1_700_000_000.0  # the conversation's clock starts here (a whole second, so epoch arithmetic is exact)


def error(code: str, text: str) -> Reply:
    return (P.ERROR, (code.encode(), text.encode()))


NOOP: Reply = (P.NOOP, ())
NO_JOB: Reply = (P.NO_JOB, ())
NOT_FOUND_RESULT = error("JOB_NOT_FOUND", "Job given in work result not found")
NOT_FOUND_DATA = error("JOB_NOT_FOUND", "Job does not exist on server")
NOT_FOUND_EXCEPTION = error("JOB_NOT_FOUND", "An exception was received for a job that does not exist")
NOT_EXPECTED = error("INVALID_COMMAND", "Command not expected")


def raw_output(peer: Peer) -> bytes:
    """Everything queued for ``peer`` as one buffer, and clear its outbox."""
    chunks = []
    for item in peer.outbox:
        assert isinstance(item, bytes), f"unexpected placeholder in the outbox: {item!r}"
        chunks.append(item)
    peer.outbox.clear()
    return b"".join(chunks)


def decode_output(peer: Peer) -> list[Reply]:
    """Decode ``peer``'s outbox as a client would (``\\0RES`` packets only) into (type, args), and clear it."""
    data = raw_output(peer)
    decoder = Decoder(accept=RES, admin=False)
    replies: list[Reply] = []
    for item in decoder.feed(data):
        assert isinstance(item, Packet), f"not a well-formed response packet: {item!r} in {data!r}"
        replies.append((PacketType(item.type), item.args))
    assert decoder.buffered == 0, f"a truncated packet in {data!r}"
    # Every packet is encoded canonically: re-encoding gives the same bytes (no stray NULs, exact sizes).
    assert b"".join(encode(ptype, *args) for ptype, args in replies) == data
    return replies


class Conversation:
    """One engine, its admin commands and a clock; peers are created with :meth:`connect`."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        config = config if config is not None else EngineConfig(handle_prefix=b"H:test")
        self.engine = Engine(config)
        self.admin_commands = AdminCommands(self.engine, lambda: self.now)  # the engine's clock, driven by tick
        self.now = T0
        self._next_fd = 10

    # ------------------------------------------------------------------ peers

    def connect(self, address: str = "127.0.0.1", fd: int | None = None) -> Peer:
        if fd is None:
            fd = self._next_fd
            self._next_fd += 1
        return self.engine.connect(fd, address)

    def disconnect(self, peer: Peer) -> None:
        self.engine.disconnect(peer, self.now)

    def worker(self, *functions: bytes) -> Peer:
        """A new connection that sent CAN_DO for each function, in the order given."""
        peer = self.connect()
        for function in functions:
            self.send(peer, P.CAN_DO, function)
        assert self.replies(peer) == []
        return peer

    # ------------------------------------------------------------------ packets

    def send(self, peer: Peer, ptype: int, *args: bytes) -> None:
        self.engine.handle(peer, ptype, args, self.now)

    def replies(self, peer: Peer) -> list[Reply]:
        return decode_output(peer)

    def ask(self, peer: Peer, ptype: int, *args: bytes) -> list[Reply]:
        """Send one packet and return what ``peer`` got; earlier output must have been read (none goes unseen)."""
        assert not peer.outbox, f"unread output: {self.replies(peer)}"
        self.send(peer, ptype, *args)
        return self.replies(peer)

    def submit(
        self, client: Peer, function: bytes, unique: bytes = b"", data: bytes = b"", ptype: int = P.SUBMIT_JOB
    ) -> bytes:
        """Submit a job and return its handle (the reply must be exactly one JOB_CREATED)."""
        replies = self.ask(client, ptype, function, unique, data)
        assert len(replies) == 1 and replies[0][0] == P.JOB_CREATED, replies
        return replies[0][1][0]

    def grab(self, worker: Peer, ptype: int = P.GRAB_JOB) -> Reply:
        """GRAB_JOB (or another grab type) and return the one reply."""
        replies = self.ask(worker, ptype)
        assert len(replies) == 1, replies
        return replies[0]

    def grab_data(self, worker: Peer) -> bytes | None:
        """The workload of the job GRAB_JOB hands out, or None after NO_JOB."""
        reply = self.grab(worker)
        if reply == NO_JOB:
            return None
        assert reply[0] == P.JOB_ASSIGN, reply
        return reply[1][2]

    def grab_handle(self, worker: Peer) -> bytes:
        reply = self.grab(worker)
        assert reply[0] == P.JOB_ASSIGN, reply
        return reply[1][0]

    # ------------------------------------------------------------------ admin and timers

    def admin(self, peer: Peer, line: bytes) -> bytes:
        """Run one admin line on ``peer`` and return the exact reply bytes."""
        assert not peer.outbox, f"unread output: {raw_output(peer)!r}"
        self.admin_commands.run(peer, line)
        return raw_output(peer)

    def tick(self, at: float) -> None:
        self.now = at
        self.engine.tick(at)
