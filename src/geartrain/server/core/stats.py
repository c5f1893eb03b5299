"""Per-function counters and histograms, bumped by the engine where it already decides each event.

Pure and cheap: one :class:`FunctionStats` per function name (kept when a function is dropped and re-created, so
counters only ever grow, as Prometheus expects), plain integer slots, and histograms with fixed bucket bounds.
Durations are differences of the ``now`` values the engine is handed; nothing here reads a clock.
"""

from __future__ import annotations

# Upper bounds (seconds) of the histogram buckets; a last, implicit bucket holds everything above (``+Inf``).
DURATION_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)
# Store transactions are much shorter than jobs: finer bounds at the low end.
STORE_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

PRIORITY_NAMES = ("high", "normal", "low")


def bucket(bounds: tuple[float, ...], value: float) -> int:
    """The index of the first bound ``>= value`` (``len(bounds)`` if none): ``bisect.bisect_left``, written out so
    that mypyc compares unboxed floats. Called twice per job; the C ``bisect_left`` cost 1,200 instructions a
    call here, through generic comparisons of float objects."""
    low, high = 0, len(bounds)
    while low < high:
        middle = (low + high) // 2
        if bounds[middle] < value:
            low = middle + 1
        else:
            high = middle
    return low


class Histogram:
    """Counts of observations per bucket and their sum (Prometheus' histogram, non-cumulative inside).

    The engine's hot path records through :class:`FunctionStats` methods that update ``counts`` and ``sum``
    inline (one call per event); :meth:`observe` is the same for everyone else.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = DURATION_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bucket(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count of observations <= le)`` per bucket, ending with ``+Inf``, as the text format wants."""
        rows = []
        running = 0
        for bound, count in zip((*self.bounds, None), self.counts, strict=True):
            running += count
            rows.append(("+Inf" if bound is None else repr(bound), running))
        return rows


class FunctionStats:
    """Everything counted for one function since the server started."""

    __slots__ = (
        "abandoned",
        "claimed",
        "coalesced",
        "completed",
        "dead",
        "dropped",
        "exceptions",
        "failed",
        "queue_wait",
        "rejected",
        "replayed",
        "requeued",
        "retried",
        "revived",
        "run_time",
        "submitted",
    )

    def __init__(self) -> None:
        # submitted[priority * 2 + background]: new jobs by priority (0 high, 1 normal, 2 low) and kind.
        self.submitted = [0] * 6
        # Jobs that came in without a submit here (so ``completed`` may pass ``submitted``): replayed from the store
        # at start-up, claimed from a cluster's table (submitted on another node), revived from the dead set.
        self.replayed = 0
        self.claimed = 0
        self.revived = 0
        self.coalesced = 0  # submits attached to an existing job instead of creating one
        self.rejected = 0  # submits refused because the queue was at its maxqueue limit
        self.completed = 0
        self.failed = 0
        self.exceptions = 0
        self.requeued = 0  # jobs taken back from a worker (gone, CANT_DO, timed out) and queued again
        self.dropped = 0  # jobs given up after --job-retries attempts
        self.abandoned = 0  # queued jobs dropped when every client waiting for them left (an HTTP hang-up)
        self.retried = 0  # failed background jobs queued again after their backoff (--policy-file retries)
        self.dead = 0  # background jobs out of retries, moved to the dead set
        self.queue_wait = Histogram()
        self.run_time = Histogram()

    # One call per engine event; the histogram update is inlined (this runs for every job).
    # A wall clock that stepped back gives a negative duration: it lands in the first bucket.

    def waited(self, wait: float) -> None:
        """A worker took a job that waited ``wait`` seconds in the queue."""
        histogram = self.queue_wait
        histogram.counts[bucket(histogram.bounds, wait)] += 1
        histogram.sum += wait

    def complete(self, run_time: float) -> None:
        self.completed += 1
        histogram = self.run_time
        histogram.counts[bucket(histogram.bounds, run_time)] += 1
        histogram.sum += run_time

    def fail(self, run_time: float) -> None:
        self.failed += 1
        histogram = self.run_time
        histogram.counts[bucket(histogram.bounds, run_time)] += 1
        histogram.sum += run_time

    def exception(self, run_time: float) -> None:
        self.exceptions += 1
        histogram = self.run_time
        histogram.counts[bucket(histogram.bounds, run_time)] += 1
        histogram.sum += run_time

    @property
    def submitted_total(self) -> int:
        return sum(self.submitted)

    @property
    def arrived_total(self) -> int:
        """Every job that entered this server's queue: submitted here, replayed, claimed or revived."""
        return self.submitted_total + self.replayed + self.claimed + self.revived

    @property
    def finished_total(self) -> int:
        return self.completed + self.failed + self.exceptions


class EngineStats:
    """The per-function stats of one engine, by function name."""

    __slots__ = ("functions",)

    def __init__(self) -> None:
        self.functions: dict[bytes, FunctionStats] = {}

    def for_function(self, name: bytes) -> FunctionStats:
        stats = self.functions.get(name)
        if stats is None:
            stats = self.functions[name] = FunctionStats()
        return stats
