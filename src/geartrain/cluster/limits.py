"""Cluster-wide ``concurrency`` and ``rate`` (issue 15): this node's share of each limited function's budget, leased
from the database and spent in the engine (:mod:`geartrain.server.core.shares`).

* **Concurrency** is a semaphore of N slots per function in the database. Each node holds some of them, under its
  lease (a node that dies or loses the database loses them when its lease lapses, as it loses its jobs), and runs
  at most as many of the function's jobs as it holds. A node that could start more (jobs queued here and workers
  free for them) asks for more; one holding slots it does not use gives them back. While a node wants more than it
  holds, the nodes that want slots are capped at an equal share (:func:`~geartrain.server.core.shares.allot`), so
  one node alone uses all N and busy nodes share them.
* **Rate** is one token bucket per function in the database (Redis: a script; PostgreSQL: one upsert on the
  function's row) from which a node takes tokens in small batches
  (:func:`~geartrain.server.core.shares.batch_size`) and spends them here, one per start.

Functions without a limit never come here: their starts cost no database round trip, as before. The exchanges run
on this loop, never in the engine: the engine only ever holds a function back until the loop brings what it lacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from geartrain.lifecycle.policy import FunctionPolicy
from geartrain.server.core.engine import Engine
from geartrain.server.core.queues import Function
from geartrain.server.core.shares import Shares, bucket_shape
from geartrain.store.base import StoreError

log = logging.getLogger("geartrain.cluster")

TICK = 0.1  # seconds: how often the loop looks at the demand when nothing wakes it
IDLE_TICK = 1.0  # ... while no function has a limit (a run-time change may add one)
ASK_AGAIN = 0.25  # a node wanting more slots than it holds asks again this often
REFRESH = 0.5  # a node holding or wanting slots tells the database what it uses, and learns others' demand
RETRY = 1.0  # seconds before the next try after the database failed


class LimitsDb(Protocol):
    """What the loop needs of the cluster's database."""

    async def slots(
        self, function: bytes, capacity: int, want: int, floor: int, running: int
    ) -> tuple[int, int, int]: ...

    async def tokens(self, function: bytes, capacity: float, refill: float, wanted: int) -> tuple[int, float]: ...

    async def drop(self, functions: Sequence[bytes] | None = None) -> None: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class Held:
    """What the database holds for this node of one function's slots, as it last said."""

    held: int
    cap: int
    asked_at: float = -1e9
    refresh_at: float = 0.0


class ClusterLimits:
    """Exchanges this node's shares of the limited functions' budgets with the database."""

    def __init__(self, db: LimitsDb, engine: Engine, shares: Shares, flush: Callable[[], None]) -> None:
        self.db = db
        self.engine = engine
        self.shares = shares
        self.flush = flush
        self._wake = asyncio.Event()
        self._held: dict[bytes, Held] = {}
        self._token_retry: dict[bytes, float] = {}  # when to ask an empty bucket again (monotonic)
        self._holding = False  # the engine holds everything back (lease lost, draining): nothing is held here

    def kick(self) -> None:
        """Something may have changed what this node could use: look now."""
        self._wake.set()

    async def run(self) -> None:
        """The loop (started by the cluster node once it joined)."""
        while True:  # what an earlier run of this node held (none of its jobs run any more), before anything else
            try:
                await self.db.drop()
                break
            except StoreError as error:
                log.error("cluster: cannot give back the slots an earlier run held: %s", error)
                await asyncio.sleep(RETRY)
        self.shares.on_short = self.kick
        while True:
            limited = self.shares.slots or self.shares.tokens
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._timeout() if limited else IDLE_TICK)
            self._wake.clear()
            try:
                if self.step(time.monotonic()):
                    await self.exchange(time.monotonic())
            except StoreError as error:
                log.error("cluster: cannot exchange concurrency slots or rate tokens: %s", error)
                await asyncio.sleep(RETRY)

    def _timeout(self) -> float:
        now = time.monotonic()
        return max(0.001, min([TICK, *(at - now for at in self._token_retry.values() if at > now)]))

    async def stop(self) -> None:
        """Leave: give back every slot at once rather than after the lease."""
        self.shares.on_short = None
        with contextlib.suppress(StoreError):
            await self.db.drop()
        await self.db.close()

    def step(self, now: float) -> bool:
        """Whether to talk to the database now. While the engine holds every job back (this node cannot renew
        its lease, or drains) it holds nothing: others may own all of it by the time it rejoins."""
        if self.engine.hold_queued:
            if not self._holding:
                self._holding = True
                self.shares.reset()
                for state in self._held.values():
                    state.held = max(state.held, 1)  # unknown by now: the database is told again on rejoining
            return False
        self._holding = False
        return bool(self.shares.slots or self.shares.tokens or self._held)

    async def exchange(self, now: float) -> None:
        engine, lifecycle = self.engine, self.engine.lifecycle
        if lifecycle is None:
            return
        for name in [name for name in self._held if name not in self.shares.slots]:  # its concurrency is gone
            await self.db.drop([name])
            del self._held[name]
        changed = False
        for name in list(self.shares.slots):
            function = engine.functions.get(name)
            policy = lifecycle.policy(name)
            if function is not None and policy.concurrency:
                changed = await self._exchange_slots(function, policy.concurrency, now) or changed
        for name in list(self.shares.tokens):
            function = engine.functions.get(name)
            policy = lifecycle.policy(name)
            if function is not None and policy.rate is not None:
                changed = await self._take_tokens(function, policy, now) or changed
        if changed:
            self.flush()  # sleepers woken by what came: their NOOPs go now

    async def _exchange_slots(self, function: Function, capacity: int, now: float) -> bool:
        name, shares = function.name, self.shares
        state = self._held.get(name)
        if state is None:
            state = self._held[name] = Held(0, capacity)
        limit = shares.slots.get(name, 0)
        running = shares.running(function)
        want = shares.wanted(function, capacity)
        desired = min(want, state.cap)
        due = (
            desired < limit
            or state.held > max(limit, running)  # slots held there that nothing here uses: give them back
            or (desired > limit and now - state.asked_at >= ASK_AGAIN)
            or (now >= state.refresh_at and (state.held > 0 or want > 0))
        )
        if not due:
            return False
        # Lower the local limit before the database hears of it, raise it only once the database granted more: this
        # node never runs more of the function than the database holds for it.
        floor = min(limit, desired)
        if floor < limit:
            shares.set_slots(function, floor)
        state.asked_at = now
        held, granted, cap = await self.db.slots(name, capacity, want, floor, running)
        state.refresh_at = now + REFRESH
        if self.engine.hold_queued or name not in shares.slots:
            return False  # lost the lease (or the limit) meanwhile: what came is no use
        state.held, state.cap = held, cap
        new = max(floor, granted)
        if new == shares.slots[name]:
            return False
        shares.set_slots(function, new)
        return True

    async def _take_tokens(self, function: Function, policy: FunctionPolicy, now: float) -> bool:
        name = function.name
        wanted = self.shares.needs_tokens(function)
        if not wanted or now < self._token_retry.get(name, 0.0) or policy.rate is None:
            return False
        capacity, refill = bucket_shape(policy.rate)
        granted, level = await self.db.tokens(name, capacity, refill, wanted)
        if granted:
            self._token_retry.pop(name, None)
            if not self.engine.hold_queued:
                self.shares.add_tokens(function, granted)
            return True
        self._token_retry[name] = time.monotonic() + max(0.002, (1.0 - level) / refill)  # the next token's time
        return False
