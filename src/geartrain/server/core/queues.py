"""Functions: per function name, three priority queues, its workers and sleepers, and its unique index."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from geartrain.server.core.stats import FunctionStats

if TYPE_CHECKING:
    from geartrain.server.core.jobs import Job
    from geartrain.server.core.peers import Peer

PRIORITIES = (0, 1, 2)  # HIGH, NORMAL, LOW: the order a worker is served in


class Function:
    """Everything the server knows about one function name.

    ``queues`` hold runnable jobs (future epoch jobs wait in the engine's timer heap instead, but are counted in
    ``queued``). ``queued`` counts per priority include abandoned jobs not yet skipped, as gearmand's ``status``
    does. ``total`` is queued + running. ``workers`` maps each capable connection to how many times it sent
    CAN_DO for this function. ``sleepers`` holds, in the order they slept, the capable connections that sent
    PRE_SLEEP and have not been woken since; stale entries (woken through another function, gone) are skipped
    when popped, so a wake-up touches only sleepers.
    """

    __slots__ = (
        "by_payload",
        "by_unique",
        "created_seq",
        "gated",
        "ghosts",
        "held",
        "limit",
        "max_queue",
        "name",
        "paused",
        "queued",
        "queues",
        "rate_blocked",
        "running",
        "sleepers",
        "stats",
        "total",
        "workers",
    )

    def __init__(self, name: bytes, created_seq: int, stats: FunctionStats | None = None) -> None:
        self.name = name
        self.created_seq = created_seq
        self.queues: tuple[deque[Job], deque[Job], deque[Job]] = (deque(), deque(), deque())
        self.queued = [0, 0, 0]
        self.running = 0
        self.total = 0
        self.workers: dict[Peer, int] = {}
        self.sleepers: dict[Peer, None] = {}
        self.max_queue = [0, 0, 0]  # 0 = unlimited, per priority
        self.by_unique: dict[bytes, Job] = {}
        self.by_payload: dict[bytes, Job] = {}
        self.ghosts = 0  # freed jobs still in the queues, skipped when reached (EngineState._drop_abandoned)
        self.stats = stats if stats is not None else FunctionStats()  # counters for metrics (core/stats.py)
        # The job life cycle (core/lifecycle.py): admin `pause` (submits are taken, nothing is handed out), the
        # policy's `concurrency` (0: none), and ``held``: whether either stops the hand-out now (one flag for the
        # hot path; set where they change, looked at where jobs are handed out).
        self.paused = False
        self.limit = 0
        self.rate_blocked = False  # its policy's rate: no token left until the bucket refills
        self.gated = False  # it has a concurrency or a rate: each start is counted (core/lifecycle.py)
        self.held = False

    def update_held(self) -> bool:
        """Whether the hand-out is stopped, from the pause and the concurrency limit; ``True`` when that just
        ended (its sleeping workers may want waking)."""
        was = self.held
        self.held = self.paused or self.rate_blocked or (self.limit > 0 and self.running >= self.limit)
        return was and not self.held

    @property
    def worker_count(self) -> int:
        """CAN_DO registrations (a connection that registered twice counts twice, as in gearmand)."""
        return sum(self.workers.values())

    def has_queued(self) -> bool:
        """Whether any of its queues holds a job (a ghost too: whoever takes from it skips those)."""
        queues = self.queues
        return bool(queues[0] or queues[1] or queues[2])

    def has_runnable(self) -> bool:
        """True if some queued job could be handed out now (abandoned ones are not worth a wake-up)."""
        if self.held:
            return False
        for queue in self.queues:
            for job in queue:
                if not job.ignore:
                    return True
        return False

    def __repr__(self) -> str:
        return f"<Function {self.name!r} queued={self.queued} running={self.running}>"
