"""A cluster node's share of each limited function's cluster-wide budget (issue 15): pure, no I/O, no clock.

On one server ``concurrency = N`` and ``rate`` are counted by the engine itself (core/lifecycle.py). On a cluster
they are the cluster's, and the database holds the budget (geartrain.cluster.limits): a node runs a function's jobs
only within what it holds of it:

* **slots**: the concurrency slots the database granted this node (out of N for the whole cluster). They are the
  node's local limit: ``function.limit``, and with none at all the function is held (``rate_blocked``, since a
  limit of 0 means no limit). The cluster node lowers the local limit *before* it tells the database it holds
  fewer, and raises it only once the database granted more, so this node never runs more than it holds there.
* **tokens**: rate tokens taken from the cluster's token bucket in small batches (:func:`batch_size`) and spent
  here, one per start; with none left the function is held until more come.

What this module tells the cluster node is what this node could use now (:meth:`Shares.wanted`,
:meth:`Shares.needs_tokens`); the cluster node exchanges with the database and brings back what it got
(:meth:`Shares.set_slots`, :meth:`Shares.add_tokens`), as the other cluster events come in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from geartrain.server.core.queues import Function

if TYPE_CHECKING:
    from geartrain.lifecycle.policy import FunctionPolicy
    from geartrain.server.core.engine import Engine

#: A batch of rate tokens is at most this many seconds of the rate (and a tenth of the burst): the slack a node may
#: hold unspent, which the documented bound adds once per node.
BATCH_SECONDS = 0.05


def batch_size(rate: tuple[float, float]) -> int:
    """Tokens a node takes from the cluster's bucket at once (and holds at most): 1 up to 20 starts a second, then
    a twentieth of a second's worth, and never above a tenth of the bucket."""
    count, per = rate
    capacity = max(count, 1.0)
    return max(1, min(int(capacity // 10), int(count / per * BATCH_SECONDS)))


def bucket_shape(rate: tuple[float, float]) -> tuple[float, float]:
    """The cluster's bucket for a rate: its capacity (a burst) and its refill per second, as core/lifecycle.Bucket."""
    count, per = rate
    return max(count, 1.0), count / per


class Shares:
    """What this node holds of each limited function's budget: slots (concurrency) and tokens (rate)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.slots: dict[bytes, int] = {}  # per function with a concurrency: slots held (the local limit)
        self.tokens: dict[bytes, int] = {}  # per function with a rate: tokens taken, not spent yet
        self.batches: dict[bytes, int] = {}  # per function with a rate: its batch_size
        # The cluster node's wake-up: a function ran short (no slot or token left, or tokens down to half a batch).
        self.on_short: Callable[[], None] | None = None

    def apply(self, function: Function, policy: FunctionPolicy) -> None:
        """Its policy's concurrency and rate (at start, on a change): what is held so far stays."""
        name = function.name
        if policy.concurrency:
            function.limit = self.slots.setdefault(name, 0)
        else:
            self.slots.pop(name, None)
            function.limit = 0
        if policy.rate is None:
            self.tokens.pop(name, None)
            self.batches.pop(name, None)
        else:
            self.tokens.setdefault(name, 0)
            self.batches[name] = batch_size(policy.rate)
        self._update(function)

    def _blocked(self, name: bytes) -> bool:
        return self.slots.get(name, 1) == 0 or self.tokens.get(name, 1) < 1

    def _update(self, function: Function) -> None:
        """Held or not from what it holds; its sleepers are woken when that lets it hand out again."""
        function.rate_blocked = self._blocked(function.name)
        if function.update_held():
            self.engine.wake_sleepers(function)

    def started(self, function: Function) -> None:
        """A job of a limited function was handed out here (its concurrency was checked by the caller)."""
        name = function.name
        tokens = self.tokens.get(name)
        short = function.held
        if tokens is not None:
            self.tokens[name] = tokens = tokens - 1
            if tokens < 1:
                function.rate_blocked = function.held = True
            short = short or tokens * 2 <= self.batches[name]
        if short and self.on_short is not None:
            self.on_short()

    def set_slots(self, function: Function, slots: int) -> None:
        if function.name in self.slots:
            self.slots[function.name] = function.limit = max(0, slots)
            self._update(function)

    def add_tokens(self, function: Function, tokens: int) -> None:
        if function.name in self.tokens:
            self.tokens[function.name] += tokens
            self._update(function)

    def reset(self) -> None:
        """Nothing held any more (the node lost its lease: others may hold all of it by now)."""
        for name in self.slots:
            self.slots[name] = 0
        for name in self.tokens:
            self.tokens[name] = 0
        for name in {*self.slots, *self.tokens}:
            function = self.engine.functions.get(name)
            if function is not None:
                if name in self.slots:
                    function.limit = 0
                self._update(function)

    # ------------------------------------------------------------------ what this node could use

    def running(self, function: Function) -> int:
        """Its jobs running here. A node without a worker for it runs none (its ``running`` may count foreground
        jobs of its clients that run on other nodes, which hold the slots for them)."""
        return function.running if function.worker_count else 0

    def demand(self, function: Function) -> int:
        """Jobs this node could start now if its budget let it: queued here, each with a worker free for it."""
        queued = sum(function.queued)
        if not queued or function.paused:
            return 0
        idle = 0
        for peer in function.workers:
            if not peer.assigned and not peer.closed:
                idle += 1
                if idle >= queued:
                    break
        return idle

    def wanted(self, function: Function, capacity: int) -> int:
        """Slots this node could use now: those it runs, and one for each job it could start."""
        return min(capacity, self.running(function) + self.demand(function))

    def needs_tokens(self, function: Function) -> int:
        """Tokens to take now (0: none): down to half a batch with jobs it could start, take a batch's worth
        (a node holds at most one batch). Not while its concurrency lets nothing start anyway."""
        name = function.name
        tokens = self.tokens.get(name)
        if tokens is None or tokens * 2 > self.batches[name]:
            return 0
        if name in self.slots and self.running(function) >= self.slots[name]:
            return 0
        return self.batches[name] - tokens if self.demand(function) else 0


def allot(
    capacity: int, node: str, want: int, floor: int, running: int, others: list[tuple[str, int, int]]
) -> tuple[int, int, int]:
    """The database's rule for one function's concurrency slots (PostgreSQL runs it here; Redis's script is the
    same rule in Lua). ``others``: (node, slots held, slots wanted) of the other nodes whose lease is alive.

    Returns ``(held, granted, cap)``: what this node holds from now on (never less than what it runs, or than
    ``floor``, the local limit it kept while asking: its jobs keep their slots), what it may start jobs up to, and
    its fair share. Slots are granted from those no other node holds. While another node wants more than it
    holds, each node wanting some is capped at an equal share of ``capacity`` (the remainder going to those that
    hold the most, then by name, so that the shares stay put); a node above its share starts nothing more and
    gives the slots back as its jobs end. Nobody can hold more than ``capacity`` between them this way, but when a
    lowered capacity leaves more running than it allows."""
    taken = sum(slots for _, slots, _ in others)
    cap = capacity
    if any(wanted > slots for _, slots, wanted in others):
        demanding = [(-slots, name) for name, slots, wanted in others if wanted > 0]
        if want > 0:
            demanding.append((-max(floor, running), node))
        if demanding:
            demanding.sort()
            share, extra = divmod(capacity, len(demanding))
            rank = next((i for i, (_, name) in enumerate(demanding) if name == node), len(demanding))
            cap = share + (1 if rank < extra else 0)
    granted = max(0, min(want, capacity - taken, cap))
    return max(running, floor, granted), granted, cap


def take_tokens(level: float, wanted: int) -> int:
    """Whole tokens granted from a bucket at ``level`` (the rule of both databases' statements)."""
    return max(0, min(wanted, math.floor(level)))
