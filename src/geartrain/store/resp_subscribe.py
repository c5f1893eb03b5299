"""A Redis subscription (pub/sub): the messages published on some channels, for a cluster node's wake-ups.

Apart from :mod:`geartrain.store.resp` because it is an async generator, which mypyc does not compile (resp.py is
compiled: setup.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from geartrain.store.base import ConnectionLost
from geartrain.store.resp import IncompleteReply, RespError, encode_command, parse_reply


async def subscribe(
    host: str, port: int, password: str | None, channels: Sequence[bytes], connect_timeout: float
) -> AsyncIterator[tuple[bytes, bytes]]:
    """The messages published on ``channels``, as (channel, payload), for as long as the connection lasts; raises
    ConnectionLost when it ends. (A subscribed connection only receives: it has no replies in order.)"""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), connect_timeout)
    except (OSError, TimeoutError) as exc:
        raise ConnectionLost(f"cannot connect to {host}:{port}: {exc or 'timed out'}") from exc
    try:
        if password is not None:
            writer.write(encode_command([b"AUTH", password.encode()]))
        writer.write(encode_command([b"SUBSCRIBE", *channels]))
        buffer = bytearray()
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                raise ConnectionLost("connection closed by the server")
            buffer += chunk
            position = 0
            try:
                while position < len(buffer):
                    reply, position = parse_reply(buffer, position)
                    if isinstance(reply, RespError):
                        raise ConnectionLost(str(reply))
                    if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                        channel, payload = reply[1], reply[2]
                        if isinstance(channel, bytes) and isinstance(payload, bytes):
                            yield channel, payload
            except IncompleteReply:
                pass
            except ValueError as exc:
                raise ConnectionLost(str(exc)) from exc
            del buffer[:position]
    except OSError as exc:
        raise ConnectionLost(str(exc)) from exc
    finally:
        writer.close()
