"""Hostile input for fuzzing: a corpus of valid packets and admin lines, and random damage to them.

Shared by the unit fuzz tests (decoder and engine without sockets) and the live fuzz run against a server
process (tests/reliability, benchmarks/reliability.py).
"""

from __future__ import annotations

import random

from geartrain.protocol.codec import encode_request
from geartrain.protocol.packets import PacketType

P = PacketType

SEED_PACKETS = [
    encode_request(P.CAN_DO, b"f"),
    encode_request(P.CAN_DO_TIMEOUT, b"f", b"5"),
    encode_request(P.SUBMIT_JOB, b"f", b"u", b"data"),
    encode_request(P.SUBMIT_JOB_BG, b"f", b"", b"bg"),
    encode_request(P.SUBMIT_JOB_HIGH, b"f", b"-", b"same"),
    encode_request(P.SUBMIT_JOB_EPOCH, b"f", b"", b"1", b"later"),
    encode_request(P.SUBMIT_REDUCE_JOB, b"f", b"u", b"r", b"a", b"data"),
    encode_request(P.GRAB_JOB),
    encode_request(P.GRAB_JOB_UNIQ),
    encode_request(P.GRAB_JOB_ALL),
    encode_request(P.PRE_SLEEP),
    encode_request(P.WORK_COMPLETE, b"H:x:1", b"done"),
    encode_request(P.WORK_DATA, b"H:x:1", b"partial"),
    encode_request(P.WORK_STATUS, b"H:x:2", b"1", b"2"),
    encode_request(P.WORK_EXCEPTION, b"H:x:1", b"boom"),
    encode_request(P.WORK_FAIL, b"H:x:1"),
    encode_request(P.GET_STATUS, b"H:x:1"),
    encode_request(P.GET_STATUS_UNIQUE, b"u"),
    encode_request(P.OPTION_REQ, b"exceptions"),
    encode_request(P.SET_CLIENT_ID, b"fuzzer"),
    encode_request(P.ECHO_REQ, b"ping"),
    encode_request(P.CANT_DO, b"f"),
    encode_request(P.RESET_ABILITIES),
    b"status\n",
    b"workers\r\n",
    b"show jobs\n",
    b"show unique jobs\n",
    b"prioritystatus\n",
    b"cancel job H:x:1\n",
    b"maxqueue f 1 2 3\n",
    b"create function f\n",
    b"drop function f\n",
    b"verbose\n",
]


def mutate(packet: bytes, rng: random.Random) -> bytes:
    """One random damage: flip, insert, delete or repeat bytes, or rewrite the header's type or size."""
    data = bytearray(packet)
    choice = rng.randrange(6)
    if choice == 0 and data:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif choice == 1:
        data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
    elif choice == 2 and data:
        del data[rng.randrange(len(data))]
    elif choice == 3 and len(data) >= 12:
        data[4:8] = rng.randrange(0, 50).to_bytes(4, "big")
    elif choice == 4 and len(data) >= 12:
        data[8:12] = max(0, len(data) - 12 + rng.randint(-3, 3)).to_bytes(4, "big")
    else:
        data += data[: rng.randrange(len(data) + 1)]
    return bytes(data)


def hostile_input(rng: random.Random) -> bytes:
    """A valid packet, a damaged one, a few glued together, or plain random bytes."""
    kind = rng.random()
    if kind < 0.25:
        return rng.choice(SEED_PACKETS)
    if kind < 0.7:
        return mutate(rng.choice(SEED_PACKETS), rng)
    if kind < 0.85:
        return b"".join(mutate(rng.choice(SEED_PACKETS), rng) for _ in range(rng.randint(2, 5)))
    if kind < 0.95:
        return b"\0" + rng.randbytes(rng.randrange(64))  # binary garbage (a leading NUL: not an admin line)
    return rng.randbytes(rng.randrange(1, 64))
