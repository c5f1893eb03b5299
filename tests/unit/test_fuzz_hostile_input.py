"""Hostile input past the decoder: the admin parser on any line, and mutated packets all the way into the engine.

The decoder's own properties live in test_codec.py; here the question is what comes after it. Whatever a peer
sends, the admin parser answers with a command, an error line or "too many tokens", and the engine answers
without raising and without breaking its bookkeeping (job counts, queued bytes, running jobs).
"""

from __future__ import annotations

import random

from conversation import Conversation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geartrain.errors import ProtocolError
from geartrain.protocol.admin import MAX_TOKENS, AdminCommand, TooManyTokens, parse
from geartrain.protocol.codec import Decoder
from geartrain.protocol.packets import AdminLine, Packet, PacketType
from geartrain.server.core.admin import AdminCommands
from geartrain.server.core.config import EngineConfig
from geartrain.server.core.engine import Engine
from geartrain.server.core.peers import Peer
from hostile import SEED_PACKETS, mutate

P = PacketType
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ADMIN_WORDS = [
    b"status", b"workers", b"version", b"verbose", b"getpid", b"prioritystatus", b"show", b"jobs", b"unique",
    b"cancel", b"job", b"create", b"drop", b"function", b"maxqueue", b"shutdown", b"graceful", b"SHUTDOWN", b"H:x:1",
    b"-1", b"99999999999999999999", b"f", b"", b"\xff\xfe", b"\t", b"\0",
]  # fmt: skip

# A line never holds a newline: the decoder splits there.
admin_tokens = st.one_of(
    st.sampled_from(ADMIN_WORDS), st.binary(max_size=12).filter(lambda b: b" " not in b and b"\n" not in b)
)
admin_lines = st.lists(
    st.tuples(admin_tokens, st.sampled_from([b" ", b"  ", b"   "])), min_size=0, max_size=MAX_TOKENS + 2
).map(lambda parts: b"".join(token + space for token, space in parts).rstrip(b" ") if parts else b"")


@SETTINGS
@given(line=st.one_of(admin_lines, st.binary(max_size=80).map(lambda b: b.replace(b"\n", b""))))
def test_admin_parse_gives_a_command_an_error_line_or_too_many_tokens(line: bytes) -> None:
    try:
        parsed = parse(line)
    except TooManyTokens:
        assert len(line.split(b" ")) > MAX_TOKENS
        return
    if isinstance(parsed, bytes):
        assert parsed.startswith(b"ERR ") and parsed.endswith(b"\r\n") and parsed.count(b"\n") == 1
    else:
        assert isinstance(parsed, AdminCommand)
        assert all(isinstance(arg, bytes) for arg in parsed.args)


def _populated() -> tuple[Conversation, Peer, Peer]:
    conv = Conversation(EngineConfig(handle_prefix=b"H:x", max_queued_bytes=1 << 20))
    client, worker = conv.connect(), conv.worker(b"f")
    conv.submit(client, b"f", b"u1", b"queued")
    handle = conv.submit(client, b"f", b"", b"running")
    conv.submit(client, b"g", b"", b"background", ptype=P.SUBMIT_JOB_BG)
    conv.send(worker, P.GRAB_JOB)
    conv.replies(worker)
    assert handle in conv.engine.jobs
    return conv, client, worker


@SETTINGS
@given(lines=st.lists(admin_lines, min_size=1, max_size=8))
def test_admin_commands_on_any_lines_answer_and_keep_the_books(lines: list[bytes]) -> None:
    conv, _client, _worker = _populated()
    admin_peer = conv.connect()
    commands = AdminCommands(conv.engine)
    for line in lines:
        commands.run(admin_peer, line)
        output = b"".join(item for item in admin_peer.outbox if isinstance(item, bytes))
        admin_peer.outbox.clear()
        assert output.endswith(b"\n"), (line, output)
        check_books(conv.engine)
        if admin_peer.close_after_flush:
            break


def check_books(engine: Engine) -> None:
    """The engine's counters agree with its job table."""
    jobs = list(engine.jobs.values())
    assert engine.queued_bytes == sum(len(job.data) for job in jobs)
    for function in engine.functions.values():
        mine = [job for job in jobs if job.function is function]
        assert function.total == len(mine), function.name
        assert function.running == sum(1 for job in mine if job.worker is not None), function.name
        assert function.running >= 0
    for peer in engine.peers.values():
        assert all(job.worker is peer for job in peer.assigned.values())


# ---------------------------------------------------------------------------------------------- mutated packets


def run_stream(engine: Engine, commands: AdminCommands, peer: Peer, decoder: Decoder, data: bytes) -> None:
    """What the transport does with a read, minus the socket."""
    for item in decoder.feed(data):
        if isinstance(item, Packet):
            engine.handle(peer, item.type, item.args, 1_700_000_000.0)
        elif isinstance(item, AdminLine):
            commands.run(peer, item.line)
        else:
            assert isinstance(item, ProtocolError)
            engine.protocol_error(peer, item)
        if peer.close_after_flush:
            break


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(5, 60))
def test_mutated_packets_from_several_peers_never_raise_and_keep_the_books(seed: int, steps: int) -> None:
    rng = random.Random(seed)
    engine = Engine(EngineConfig(handle_prefix=b"H:x", max_queued_bytes=64))
    commands = AdminCommands(engine)
    peers = [(engine.connect(fd), Decoder(max_packet_size=256)) for fd in range(3)]
    for _ in range(steps):
        peer, decoder = rng.choice(peers)
        if peer.closed:
            continue
        packet = rng.choice(SEED_PACKETS)
        data = mutate(packet, rng) if rng.random() < 0.6 else packet
        run_stream(engine, commands, peer, decoder, data)
        peer.outbox.clear()
        if decoder.dead or peer.close_after_flush or rng.random() < 0.05:
            engine.disconnect(peer, 1_700_000_000.0)
        check_books(engine)
    for peer, _ in peers:
        engine.disconnect(peer, 1_700_000_000.0)
    check_books(engine)
    assert all(job.worker is None for job in engine.jobs.values())
