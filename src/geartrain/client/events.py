"""What a client learns about a job: the events a worker's packets become, and status query results.

Every WORK_* packet the server forwards for a foreground job becomes one event, in the order the worker sent them.
The last event of a job is always a :class:`WorkComplete`, :class:`WorkFail` or :class:`WorkException`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WorkData:
    """WORK_DATA: a chunk of partial result."""

    data: bytes


@dataclass(frozen=True, slots=True)
class WorkWarning:
    """WORK_WARNING: a warning the worker sent along the way."""

    data: bytes


@dataclass(frozen=True, slots=True)
class WorkStatus:
    """WORK_STATUS: progress as ``numerator`` out of ``denominator`` (servers forward whatever the worker sent;
    fields that are not decimal numbers read as 0)."""

    numerator: int
    denominator: int

    @property
    def fraction(self) -> float | None:
        """``numerator / denominator``, or ``None`` when the denominator is 0."""
        return self.numerator / self.denominator if self.denominator else None


@dataclass(frozen=True, slots=True)
class WorkComplete:
    """WORK_COMPLETE: the job succeeded with this result."""

    data: bytes


@dataclass(frozen=True, slots=True)
class WorkFail:
    """WORK_FAIL: the job failed (also what a WORK_EXCEPTION becomes for a client without the exceptions option)."""


@dataclass(frozen=True, slots=True)
class WorkException:
    """WORK_EXCEPTION: the job failed with an exception; ``data`` is the worker's description of it."""

    data: bytes


JobEvent = WorkData | WorkWarning | WorkStatus | WorkComplete | WorkFail | WorkException
FINAL_EVENTS = (WorkComplete, WorkFail, WorkException)


@dataclass(frozen=True, slots=True)
class JobStatus:
    """The answer to GET_STATUS (STATUS_RES). An unknown handle reads ``known=False``."""

    handle: str
    known: bool
    running: bool
    numerator: int
    denominator: int


@dataclass(frozen=True, slots=True)
class UniqueStatus:
    """The answer to GET_STATUS_UNIQUE (STATUS_RES_UNIQUE); ``clients`` counts the foreground clients waiting."""

    unique: str
    known: bool
    running: bool
    numerator: int
    denominator: int
    clients: int


def to_int(field: bytes) -> int:
    """Numeric protocol fields as gearmand reads them (``atoi``): leading digits, otherwise 0."""
    try:
        return int(field)
    except ValueError:
        digits = field.strip()
        sign = -1 if digits.startswith(b"-") else 1
        digits = digits.lstrip(b"+-")
        end = 0
        while end < len(digits) and 48 <= digits[end] <= 57:
            end += 1
        return sign * int(digits[:end]) if end else 0
