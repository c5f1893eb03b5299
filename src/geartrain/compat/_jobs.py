"""python-gearman's job records and data encoders (``gearman.job``, ``gearman.DataEncoder``)."""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

from geartrain.compat._errors import JOB_COMPLETE, JOB_CREATED, JOB_FAILED, JOB_UNKNOWN, PRIORITY_NONE


class DataEncoder:
    """Subclass and set as ``data_encoder`` on a client or worker class to (de)serialise payloads.

    ``encode(obj)`` may return ``str`` (sent as UTF-8) or ``bytes``; ``decode`` receives the payload as ``bytes``.
    """

    @classmethod
    def encode(cls, encodable_object: Any) -> str | bytes:
        raise NotImplementedError

    @classmethod
    def decode(cls, decodable_string: bytes) -> Any:
        raise NotImplementedError


class NoopEncoder(DataEncoder):
    """The default: ``str`` or ``bytes`` out, ``str`` in (UTF-8; bytes that are not UTF-8 survive a round trip
    through ``surrogateescape``). python-gearman 2.x, written for Python 2, passed byte strings through."""

    @classmethod
    def encode(cls, encodable_object: Any) -> str | bytes:
        if encodable_object is None:  # a callback that returns nothing completes with an empty result
            return b""
        if not isinstance(encodable_object, str | bytes | bytearray):
            raise TypeError(f"Expecting byte string, got {type(encodable_object)!r}")
        return bytes(encodable_object) if isinstance(encodable_object, bytearray) else encodable_object

    @classmethod
    def decode(cls, decodable_string: bytes) -> Any:
        return decodable_string.decode("utf-8", "surrogateescape")


class BytesEncoder(NoopEncoder):
    """Payloads stay ``bytes`` in both directions (geartrain addition, for binary data)."""

    @classmethod
    def decode(cls, decodable_string: bytes) -> Any:
        return decodable_string


def encode_payload(encoder: type[DataEncoder], value: Any) -> bytes:
    encoded = encoder.encode(value)
    if isinstance(encoded, str):
        return encoded.encode("utf-8", "surrogateescape")
    if isinstance(encoded, bytes | bytearray | memoryview):
        return bytes(encoded)
    raise TypeError(f"{encoder.__name__}.encode must return str or bytes, not {type(encoded).__name__}")


@dataclass(frozen=True)
class GearmanConnection:
    """Which server a job is on (python-gearman's connection objects have these two attributes)."""

    gearman_host: str
    gearman_port: int

    @classmethod
    def from_address(cls, address: str | None) -> GearmanConnection | None:
        if not address:
            return None
        host, _, port = address.rpartition(":")
        return cls(host.strip("[]"), int(port))


class GearmanJob:
    """The basics of a job: ``connection`` (server), ``handle``, ``task``, ``unique``, ``data``."""

    def __init__(self, connection: Any, handle: str | None, task: str, unique: str | None, data: Any) -> None:
        self.connection = connection
        self.handle = handle
        self.task = task
        self.unique = unique
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "job_handle": self.handle, "unique": self.unique, "data": self.data}

    def __repr__(self) -> str:
        return (
            f"<GearmanJob connection/handle=({self.connection!r}, {self.handle!r}), task={self.task}, "
            f"unique={self.unique}, data={self.data!r}>"
        )


class GearmanJobRequest:
    """A submitted job as python-gearman's client tracks it: ``state``, ``result``, ``exception``,
    ``data_updates`` / ``warning_updates`` (deques), ``status`` (dict of the last WORK_STATUS / STATUS_RES),
    ``timed_out``, ``complete``."""

    def __init__(
        self,
        gearman_job: GearmanJob,
        initial_priority: str | None = PRIORITY_NONE,
        background: bool = False,
        max_attempts: int = 1,
    ) -> None:
        self.gearman_job = gearman_job
        self.priority = initial_priority
        self.background = background
        self.connection_attempts = 0
        self.max_connection_attempts = max_attempts
        self.initialize_request()

    def initialize_request(self) -> None:
        self.result: Any = None
        self.exception: Any = None
        self.warning_updates: collections.deque[Any] = collections.deque()
        self.data_updates: collections.deque[Any] = collections.deque()
        self.status: dict[str, Any] = {}
        self.state = JOB_UNKNOWN
        self.timed_out = False
        #: geartrain addition: why the server refused the job (an ERROR packet), if it did.
        self.error: str | None = None

    def reset(self) -> None:
        self.initialize_request()
        self.gearman_job.connection = None
        self.gearman_job.handle = None

    @property
    def job(self) -> GearmanJob:
        return self.gearman_job

    @property
    def complete(self) -> bool:
        if self.background:
            return self.state == JOB_CREATED
        return self.state in (JOB_FAILED, JOB_COMPLETE)

    @property
    def status_updates(self) -> collections.deque[tuple[int, int]]:
        """Deprecated in python-gearman 2.0.1: the last status as a deque of one (numerator, denominator)."""
        updates: collections.deque[tuple[int, int]] = collections.deque()
        if self.status:
            updates.append((self.status.get("numerator", 0), self.status.get("denominator", 0)))
        return updates

    @property
    def server_status(self) -> dict[str, Any]:
        """Deprecated in python-gearman 2.0.1: the same as ``status``."""
        return self.status

    def __repr__(self) -> str:
        return (
            f"<GearmanJobRequest task={self.job.task!r}, unique={self.job.unique!r}, priority={self.priority!r}, "
            f"background={self.background!r}, state={self.state!r}, timed_out={self.timed_out!r}>"
        )
