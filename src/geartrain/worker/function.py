"""A function registered with a worker, and what becomes of its return value or exception on the wire."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from geartrain.protocol.codec import encode_request
from geartrain.protocol.packets import PacketType

P = PacketType

Executor = Literal["async", "thread", "process", "inline"]
WorkerFunction = Callable[..., Any]


class Function:
    """A registered function: its name, callable, CAN_DO_TIMEOUT and executor."""

    __slots__ = ("executor", "fn", "name", "raw", "timeout")

    def __init__(self, name: str, fn: WorkerFunction, timeout: float | None, executor: Executor) -> None:
        self.name = name
        self.raw = name.encode()
        self.fn = fn
        self.timeout = timeout
        self.executor = executor

    def can_do(self) -> bytes:
        if self.timeout is None:
            return encode_request(P.CAN_DO, self.raw)
        milliseconds = max(1, round(self.timeout * 1000))
        return encode_request(P.CAN_DO_TIMEOUT, self.raw, str(milliseconds).encode())


def result_payload(value: object) -> bytes:
    """A function's return value as the WORK_COMPLETE payload."""
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"a worker function must return bytes, str or None, not {type(value).__name__}")


def describe(error: BaseException) -> bytes:
    """The WORK_EXCEPTION payload for an exception a function raised."""
    text = str(error)
    return f"{type(error).__name__}: {text}".encode() if text else type(error).__name__.encode()
