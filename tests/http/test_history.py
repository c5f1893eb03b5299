"""The dashboard's history ring (http/routes.py History): an hour and more of samples in bounded memory."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from geartrain.http.routes import History


def sample(t: float, submitted: int) -> dict[str, Any]:
    return {"t": t, "functions": {"f": [0, 0, submitted, submitted]}}


def test_two_hours_are_kept_every_sample_for_the_last_ten_minutes() -> None:
    history = History()
    start = 1_700_000_000.0
    for n in range(3 * 3600 // 2):  # three hours, a sample every 2 s (each a little late, as timers are)
        history.append(sample(start + n * 2.0 + (n % 3) * 0.01, n))
    samples = history.samples()
    times = [s["t"] for s in samples]
    newest = times[-1]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert newest - times[0] >= 2 * 3600 - 60  # the ring reaches two hours back
    recent = [t for t in times if t >= newest - 600]
    assert len(recent) == 300  # the last ten minutes: every sample
    older = [b - a for a, b in pairwise(times) if b < newest - 600]
    assert older and all(29 <= gap <= 32 for gap in older)  # before: one per half minute
    assert len(history.fine) == 300 and len(history.coarse) == 240  # bounded, whatever the uptime
    view = history.view()
    assert (view["interval"], view["coarse_interval"], view["fine_span"], view["span"]) == (2.0, 30.0, 600.0, 7200.0)


def test_a_new_history_shows_what_it_has() -> None:
    history = History()
    assert history.samples() == [] and history.last() is None
    history.append(sample(10.0, 1))
    history.append(sample(12.0, 2))
    assert [s["t"] for s in history.samples()] == [10.0, 12.0]
    assert history.last() == sample(12.0, 2)
