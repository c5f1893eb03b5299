"""Cluster-wide concurrency and rate on Redis (the loop is :mod:`geartrain.cluster.limits`): two scripts, so each
exchange is atomic, on times from Redis's ``TIME``.

* ``gt:<prefix>:slots:<function>``: a hash from node to ``"<slots held> <slots wanted>"``. The slots of a node whose
  ``alive:<node>`` key lapsed are no one's (the node died or lost Redis, and its jobs went back to the queue too):
  the next exchange of any node deletes its entry. :data:`SLOTS` is the rule of
  :func:`geartrain.server.core.shares.allot`, in Lua.
  ``limited`` is the set of those functions, for a node that gives back all it holds.
* ``gt:<prefix>:bucket:<function>``: the cluster's token bucket (tokens, and when it was last filled, in µs). It
  expires once it would be full again: a missing bucket is a full one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from geartrain.store.resp import Arg, Script

if TYPE_CHECKING:
    from geartrain.cluster.redis import RedisClusterDb

# ARGV: base, node, function, capacity, want, floor, running. Returns {held, granted, cap}.
SLOTS = Script(
    """
local base, node = ARGV[1], ARGV[2]
local key = base .. ':slots:' .. ARGV[3]
local capacity, want, floor, running = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if redis.call('EXISTS', base .. ':alive:' .. node) == 0 then want = 0 end  -- a lapsed lease: nothing new
local others, taken, contended = {}, 0, false
local entries = redis.call('HGETALL', key)
for i = 1, #entries, 2 do
    local other = entries[i]
    if other ~= node then
        if redis.call('EXISTS', base .. ':alive:' .. other) == 1 then
            local slots, wanted = string.match(entries[i + 1], '^(%d+) (%d+)$')
            slots, wanted = tonumber(slots or '0'), tonumber(wanted or '0')
            taken = taken + slots
            if wanted > slots then contended = true end
            others[#others + 1] = {other, slots, wanted}
        else
            redis.call('HDEL', key, other)
        end
    end
end
local cap = capacity
if contended then
    local demanding = {}
    for _, other in ipairs(others) do
        if other[3] > 0 then demanding[#demanding + 1] = {-other[2], other[1]} end
    end
    if want > 0 then demanding[#demanding + 1] = {-math.max(floor, running), node} end
    if #demanding > 0 then
        table.sort(demanding, function(a, b)
            if a[1] ~= b[1] then return a[1] < b[1] end
            return a[2] < b[2]
        end)
        local share = math.floor(capacity / #demanding)
        local extra = capacity - share * #demanding
        local rank = #demanding + 1
        for i, entry in ipairs(demanding) do
            if entry[2] == node then rank = i end
        end
        cap = share
        if rank <= extra then cap = share + 1 end
    end
end
redis.call('SADD', base .. ':limited', ARGV[3])
local granted = math.max(0, math.min(want, capacity - taken, cap))
local held = math.max(running, floor, granted)
if held == 0 and want == 0 then
    redis.call('HDEL', key, node)
else
    redis.call('HSET', key, node, held .. ' ' .. want)
end
return {held, granted, cap}
"""
)

# ARGV: base, node, then functions (none: every function with slots). Gives back this node's slots of them.
DROP = Script(
    """
local base, node = ARGV[1], ARGV[2]
local functions = {}
for i = 3, #ARGV do functions[#functions + 1] = ARGV[i] end
if #functions == 0 then functions = redis.call('SMEMBERS', base .. ':limited') end
for _, fn in ipairs(functions) do redis.call('HDEL', base .. ':slots:' .. fn, node) end
return #functions
"""
)

# ARGV: base, node, function, capacity, refill per second, tokens wanted. Returns {taken, tokens left (text)}.
TOKENS = Script(
    """
local key = ARGV[1] .. ':bucket:' .. ARGV[3]
local capacity, refill, wanted = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local fields = redis.call('HMGET', key, 'tokens', 'updated')
local level = capacity
if fields[1] and fields[2] then
    local updated = tonumber(fields[2])
    level = math.min(capacity, tonumber(fields[1]) + refill * math.max(0, now - updated) / 1000000)
    if updated > now then now = updated end
end
local taken = math.max(0, math.min(wanted, math.floor(level)))
level = level - taken
redis.call('HSET', key, 'tokens', string.format('%.17g', level), 'updated', string.format('%.0f', now))
redis.call('PEXPIRE', key, math.ceil((capacity - level) / refill * 1000) + 1000)
return {taken, string.format('%.17g', level)}
"""
)


class RedisLimits:
    """The database side of :class:`~geartrain.cluster.limits.ClusterLimits` on Redis, on the cluster's connection
    (every exchange is one script)."""

    def __init__(self, db: RedisClusterDb) -> None:
        self.db = db

    async def slots(self, function: bytes, capacity: int, want: int, floor: int, running: int) -> tuple[int, int, int]:
        """Hold what :func:`~geartrain.server.core.shares.allot` says of ``function``'s slots: returns (held,
        granted, cap). Nothing is granted while this node's own lease has lapsed."""
        reply = await self.db.run_script(SLOTS, function, capacity, want, floor, running)
        if isinstance(reply, list) and len(reply) == 3:
            held, granted, cap = reply
            if isinstance(held, int) and isinstance(granted, int) and isinstance(cap, int):
                return held, granted, cap
        return max(running, floor), 0, 0  # not understood: nothing more than what this node keeps

    async def tokens(self, function: bytes, capacity: float, refill: float, wanted: int) -> tuple[int, float]:
        """Take up to ``wanted`` whole tokens from ``function``'s bucket: returns (taken, tokens left there)."""
        args: list[Arg] = [function, repr(capacity).encode(), repr(refill).encode(), wanted]
        reply = await self.db.run_script(TOKENS, *args)
        if isinstance(reply, list) and len(reply) == 2 and isinstance(reply[0], int) and isinstance(reply[1], bytes):
            return reply[0], float(reply[1])
        return 0, 0.0

    async def drop(self, functions: Sequence[bytes] | None = None) -> None:
        """Give back this node's slots (of these functions, or all)."""
        await self.db.run_script(DROP, *(functions or ()))

    async def close(self) -> None:
        pass  # the connection is the cluster node's
