from collections.abc import Callable
from typing import Any

from geartrain.protocol.codec import Item

def frame(
    buf: bytes | bytearray,
    pos: int,
    accept: bytes,
    max_size: int,
    arg_counts: bytes,
    min_counts: bytes,
    packet_type: type,
    out: list[Item],
    /,
) -> int: ...
def dispatch(
    buf: bytes | bytearray,
    pos: int,
    accept: bytes,
    max_size: int,
    arg_counts: bytes,
    min_counts: bytes,
    handlers: list[Callable[[Any, tuple[bytes, ...], float], None]],
    peer: Any,
    now: float,
    /,
) -> int: ...
def encode(ptype: int, /, *args: bytes, magic: bytes = ...) -> bytes: ...
