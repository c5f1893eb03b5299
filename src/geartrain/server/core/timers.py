"""What the life cycle's timer heap holds besides jobs waiting out a backoff (core/lifecycle.py): a cron entry's
next firing, a rate-limited function's token bucket (its next token), and the dead set's next sweep."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from geartrain.lifecycle.cron import Schedule
from geartrain.lifecycle.policy import CronEntry


@dataclass(slots=True)
class Firing:
    """One ``[[cron]]`` entry, parsed, with its next and last firing (Unix times)."""

    entry: CronEntry
    schedule: Schedule
    zone: ZoneInfo
    ident: bytes  # function and schedule: what identifies the entry across restarts and reloads
    next_at: float | None = None
    last_at: float | None = None

    def unique(self, at: float) -> bytes:
        moment = datetime.fromtimestamp(at, UTC)
        fields = {"function": self.entry.function.decode(), "epoch": int(at), "time": moment.strftime("%Y%m%dT%H%M%SZ")}
        template = self.entry.unique if self.entry.unique is not None else "cron:{function}:{epoch}"
        try:
            return template.format(**fields).encode()
        except (KeyError, IndexError, ValueError):  # a template naming something else: kept as written, plus the time
            return f"{template}:{int(at)}".encode()

    def view(self) -> dict[str, object]:
        return {
            "function": self.entry.function.decode("utf-8", "replace"),
            "schedule": self.entry.schedule,
            "timezone": self.entry.timezone,
            "next": self.next_at,
            "last": self.last_at,
        }


class DeadSweep:
    """The timer's entry for the next time a dead job passes its function's ``dead_retention``."""

    __slots__ = ()


class Bucket:
    """A token bucket: ``count`` starts per ``per`` seconds, in bursts of up to ``count``."""

    __slots__ = ("capacity", "refill", "tokens", "updated")

    def __init__(self, count: float, per: float, now: float) -> None:
        self.capacity = max(count, 1.0)
        self.refill = count / per  # tokens per second
        self.tokens = self.capacity
        self.updated = now

    def fill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill)
        self.updated = now

    def next_token_at(self) -> float:
        return self.updated + (1.0 - self.tokens) / self.refill
