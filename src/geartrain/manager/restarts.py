"""When a slot's next process starts, and whether the slot is failing: the restart rules, with no process or clock.

A process that ends on purpose (exit status 0: a Python worker after ``recycle_jobs``, ``gearman -w -c N``; or
recycled by the clock) is replaced at once. A process that crashes, or cannot be started at all, is restarted after
an exponential backoff: ``backoff_initial`` doubling up to ``backoff_max``. Clean exits that keep coming at once (a
command that does nothing and exits 0) are paced the same way after a few, so nothing ever restarts at full speed.

A run that lasts ``stable_after`` seconds resets the backoff, so a crash once a day restarts quickly. The slot
calls :meth:`RestartPolicy.stayed_up` at that moment, not only when the process ends: the slot stops showing as
failing as soon as its process has proved itself.

A slot is *failing* once ``FAILING_AFTER`` runs in a row have ended that way before ``stable_after`` (a worker whose
callable does not import, a command that is not installed, a server address that is refused at once): one crash
is an incident, three in a row is a worker that cannot start, and the operator should hear about it once, loudly,
rather than read it between the lines of a growing backoff.
"""

from __future__ import annotations

from dataclasses import dataclass

from geartrain.client.transport import Backoff
from geartrain.manager.config import ManagerSettings

QUICK_EXIT = 1.0  # seconds: a clean exit sooner than this counts as "at once"
QUICK_EXITS_BEFORE_BACKOFF = 5  # so many clean exits at once in a row: pace the restarts as if they were crashes
FAILING_AFTER = 3  # runs in a row that ended before stable_after (or could not start): the slot is failing


@dataclass(frozen=True)
class Restart:
    """What to do after a process ended: wait ``delay`` seconds (0: start the next one at once).

    ``paced`` says the end counted as a failure (a crash, a start that failed, a clean exit once too often);
    ``became_failing`` and ``recovered`` report a change of the failing mark, for the log to say it once."""

    delay: float
    paced: bool
    became_failing: bool = False
    recovered: bool = False


class RestartPolicy:
    """The restart rules for one slot (see the module docstring)."""

    def __init__(self, settings: ManagerSettings) -> None:
        self.settings = settings
        self._backoff = Backoff(settings.backoff_initial, settings.backoff_max)
        self.failures = 0  # runs in a row that ended before stable_after, or could not start
        self.quick_exits = 0  # clean exits at once in a row
        self.failing = False
        self.last_failure = ""  # how the latest failed run ended, for the status report

    def update(self, settings: ManagerSettings) -> None:
        """New ``[manager]`` settings (a reload): they apply from the next restart on."""
        self.settings = settings
        self._backoff.initial, self._backoff.maximum = settings.backoff_initial, settings.backoff_max

    def stayed_up(self) -> bool:
        """The running process has been up ``stable_after`` seconds: forget the failures. True when the slot was
        failing until now."""
        was_failing = self.failing
        self._backoff.reset()
        self.failures = 0
        self.failing = False
        return was_failing

    def ended(self, status: int, uptime: float, recycled: bool, how: str) -> Restart:
        """A process ended with ``status`` (negative: killed by that signal) after ``uptime`` seconds;
        ``recycled`` when the manager asked it to, by the clock. ``how`` describes the end, for the report."""
        recovered = self.stayed_up() if uptime >= self.settings.stable_after else False
        if recycled or status == 0:
            quick = uptime < QUICK_EXIT and not recycled
            self.quick_exits = self.quick_exits + 1 if quick else 0
            if not quick:  # it ended on purpose after doing some work: a healthy process too
                recovered = self.stayed_up() or recovered
            if self.quick_exits < QUICK_EXITS_BEFORE_BACKOFF:
                return Restart(0.0, paced=False, recovered=recovered)
        return self._failed(how, recovered)

    def could_not_start(self, how: str) -> Restart:
        """Starting a process failed (no such program, not executable, no such directory)."""
        return self._failed(how, recovered=False)

    def _failed(self, how: str, recovered: bool) -> Restart:
        self.failures += 1
        self.last_failure = how
        became_failing = not self.failing and self.failures >= FAILING_AFTER
        self.failing = self.failing or became_failing
        return Restart(self._backoff.next_delay(), paced=True, became_failing=became_failing, recovered=recovered)

    def describe(self) -> str:
        """Why the slot is failing, for the status report (empty when it is not)."""
        if not self.failing:
            return ""
        return f"FAILING ({self.failures} starts in a row failed; the last: {self.last_failure})"
