"""When a delayed submit should run: ``30s`` from now, or an RFC 3339 time (HTTP headers and ``geartrain submit``).

Gearman's SUBMIT_JOB_EPOCH carries whole seconds, so a time is rounded up to the next second: a job never runs
before the time asked for.
"""

from __future__ import annotations

import math
from datetime import datetime

from geartrain.errors import GearmanError
from geartrain.lifecycle.policy import PolicyError, parse_duration


class WhenError(GearmanError):
    """A delay or a time that cannot be read; the message is one line."""


def run_at(delay: str | None, at: str | None, now: float) -> int | None:
    """The Unix time (whole seconds) to run at, from a delay (``30s``) or a time (RFC 3339 with its offset);
    ``None`` when neither is given."""
    if delay is not None and at is not None:
        raise WhenError("give a delay or a time, not both")
    if delay is not None:
        try:
            seconds = parse_duration(delay.strip())
        except PolicyError as error:
            raise WhenError(f"delay: {error}") from None
        return math.ceil(now + seconds)
    if at is not None:
        try:
            moment = datetime.fromisoformat(at.strip())
        except ValueError:
            raise WhenError(f"{at!r} is not an RFC 3339 time (e.g. 2026-12-24T18:00:00+01:00)") from None
        if moment.tzinfo is None:
            raise WhenError(f"{at!r} has no UTC offset (add Z or +01:00): it would mean a different time per host")
        return math.ceil(moment.timestamp())
    return None
