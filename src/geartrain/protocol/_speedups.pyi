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
