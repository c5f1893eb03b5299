"""A cluster on one Redis key prefix: the scripts, and the connections that run them from the event loop.

Jobs stay where the Redis store keeps them (the job hash ``<prefix>-<function>-<unique>`` and geartrain's side hash
``gt:<job key>``, :mod:`geartrain.store.redis`); a cluster adds an index of who may run what, under
``gt:<prefix>:``:

* ``q:<function>``: the jobs waiting for any node, a sorted set scored ``priority * 2**40 + seq``, so ZPOPMIN takes
  them by priority and in submission order; ``d:<function>``: epoch jobs not yet due, scored by their time;
* ``owned:<node>``: the jobs a node holds (claimed, or kept for its own idle worker), and ``alive:<node>``, a key
  that lapses ``lease`` seconds after the node last renewed it. One key per node stands for the lease of all its
  jobs, so a renewal is one command however many jobs it holds;
* ``nodes`` and ``node:<node>`` (address, start, last heartbeat, jobs held) for ``/api/cluster``; ``leader``, a key
  under a lease of its own; ``fg:<node>``: foreground jobs whose client waits on that node; ``ev:<node>``: a list of
  the packets of such jobs, on their way back to it;
* ``results``: a hash from handle to the job key of the kept result stored under it (``gt:result:<function>``),
  for ``result HANDLE`` and GET_STATUS on any node; ``expires``: their job keys scored by when they expire, from
  which the leader deletes those past their time (their node died or restarted before it could);
* ``dead``: the life cycle's dead records (function ``gt:dead:<function>``, which no node claims), a sorted set of
  their job keys scored by ``seq``, so that every node reads the dead set back without a scan of the prefix; its
  pauses and run-time policy and cron changes (``gt:meta:paused``, ``gt:meta:policy``, ``gt:meta:cronentry``) sit
  in the waiting sets of those functions, which every node reads back each second (:data:`RECORDS`);
* ``indexed``: set once the index holds every job under the prefix. A server of its own on the prefix deletes it;
  the next node to start then indexes the jobs again (:meth:`RedisClusterKeys.build_index`).

Every change is a Lua script, so each is atomic: a claim moves jobs from ``q:`` to ``owned:`` in one step and two
nodes never get the same job. Claims, renewals and the leader's rescue read the time from Redis, never a node's
clock. Jobs left for any node are announced on the channel ``gt:<prefix>:wake`` (payload: the function), packets
for a node's clients on ``gt:<prefix>:events`` (payload: the node).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import struct
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from geartrain.server.core.records import Removal, StoredJob, unique_from_key
from geartrain.server.core.sides import SIDE_PREFIX as ATTEMPT_PREFIX
from geartrain.server.core.sides import side_from_record
from geartrain.store.base import ConnectionLost, StoreError, StoreUnavailable
from geartrain.store.common import chunks
from geartrain.store.redis import CONNECT_TIMEOUT, SIDE_PREFIX, digest
from geartrain.store.resp import Arg, Reply, RespConnection, Script
from geartrain.store.resp_subscribe import subscribe

if TYPE_CHECKING:
    from redis import Redis

    from geartrain.cluster.limits_redis import RedisLimits
    from geartrain.cluster.node import Claimed, Progress
    from geartrain.store.redis import RedisStore

#: A node whose heartbeat is this many leases old is gone for good: its clients' jobs and events are dropped.
GONE_AFTER_LEASES = 4
INDEX_CHUNK = 1000
EVENT_HEADER = struct.Struct(">III")  # packet type, length of the key, length of the function

# Helpers every script starts with. ARGV[1] is the cluster's key base (``gt:<prefix>``), ARGV[2] the node.
PRELUDE = """
local base, node = ARGV[1], ARGV[2]
local woken = {}
local function side(jk) return 'gt:' .. jk end
local function now_seconds() return tonumber(redis.call('TIME')[1]) end
local function is_dead(fn) return string.sub(fn, 1, 8) == 'gt:dead:' end
local function is_result(fn) return string.sub(fn, 1, 10) == 'gt:result:' end
-- A failed attempt of a job (a side record, core/sides.py), for the job's own side hash.
local function is_attempt(fn) return string.sub(fn, 1, 7) == 'gt:job:' end
-- When a kept result expires (whole seconds, rounded up), from its record's header line; nil if it does not read.
local function result_expiry(data)
    local newline = string.char(10)
    if string.sub(data, 1, 10) ~= 'GTRESULT1' .. newline then return nil end
    local stop = string.find(data, newline, 11, true)
    if not stop then return nil end
    local ok, header = pcall(cjson.decode, string.sub(data, 11, stop - 1))
    if not ok or type(header) ~= 'table' or not tonumber(header['expires']) then return nil end
    return math.ceil(tonumber(header['expires']))
end
-- A kept result into the index by expiry that the leader sweeps (one that does not read expires at once).
local function index_result(jk, data)
    redis.call('ZADD', base .. ':expires', result_expiry(data) or 0, jk)
end
-- A run-time policy or cron change: a later write replaces the record (a job's key stays the first node's).
local function is_rewritten(fn) return fn == 'gt:meta:policy' or fn == 'gt:meta:cronentry' end
-- A stored job into its function's queue (or, not yet due, its delayed set); false when it is gone.
local function enqueue(jk, fn, when, now)
    if redis.call('HEXISTS', side(jk), 'owner') == 1 then return false end
    local seq = redis.call('HGET', side(jk), 'seq')
    local priority = redis.call('HGET', jk, 'priority')
    if not seq or not priority then return false end
    if tonumber(when) > now then
        redis.call('ZADD', base .. ':d:' .. fn, when, jk)
    else
        redis.call('ZADD', base .. ':q:' .. fn, tonumber(priority) * 1099511627776 + tonumber(seq), jk)
        woken[fn] = true
    end
    return true
end
-- A job a node held back to the cluster.
local function requeue(jk, now)
    local fields = redis.call('HMGET', side(jk), 'function', 'when')
    if not fields[1] then return false end
    redis.call('HDEL', side(jk), 'owner')
    return enqueue(jk, fields[1], fields[2] or 0, now)
end
-- A job gone for good: its records and every index entry.
local function forget(jk, fn)
    local fields = redis.call('HMGET', side(jk), 'owner', 'client_node', 'handle', 'key')
    if fields[1] then
        redis.call('SREM', base .. ':owned:' .. fields[1], jk)  -- held: in no queue
    else
        redis.call('ZREM', base .. ':q:' .. fn, jk)
        redis.call('ZREM', base .. ':d:' .. fn, jk)
    end
    if fields[2] then redis.call('SREM', base .. ':fg:' .. fields[2], jk) end
    if fields[3] and fields[3] ~= '' then redis.call('HDEL', base .. ':h', fields[3]) end
    if is_dead(fn) then redis.call('ZREM', base .. ':dead', jk) end
    if is_result(fn) and fields[4] and redis.call('HGET', base .. ':results', fields[4]) == jk then
        redis.call('HDEL', base .. ':results', fields[4])
    end
    if is_result(fn) then redis.call('ZREM', base .. ':expires', jk) end
    redis.call('DEL', jk, side(jk))
end
-- A new job (or life-cycle record) under the prefix, queued, or held by this node (owned, and its lease alive).
local function add_job(jk, fn, key, priority, data, when, reducer, owned, waiting, handle, dig, meta, alive, now)
    local seq = redis.call('INCR', base .. ':seq')
    redis.call('HSET', jk, 'data', data, 'priority', priority)
    redis.call('HSET', side(jk), 'function', fn, 'key', key, 'seq', seq, 'when', when, 'digest', dig,
        'handle', handle)
    if reducer ~= '' then redis.call('HSET', side(jk), 'reducer', string.sub(reducer, 2)) end
    if meta ~= '' then redis.call('HSET', side(jk), 'meta', meta) end
    if handle ~= '' then redis.call('HSET', base .. ':h', handle, jk) end
    if is_dead(fn) then redis.call('ZADD', base .. ':dead', seq, jk) end
    if is_result(fn) then
        redis.call('HSET', base .. ':results', key, jk)
        index_result(jk, data)
    end
    if waiting == '1' then
        redis.call('HSET', side(jk), 'client_node', node)
        redis.call('SADD', base .. ':fg:' .. node, jk)
    end
    if owned == '1' and alive then
        redis.call('HSET', side(jk), 'owner', node)
        redis.call('SADD', base .. ':owned:' .. node, jk)
    else
        enqueue(jk, fn, when, now)
    end
end
-- Every job a node holds back to the cluster; returns how many.
local function release_all(owner, count_rerun)
    local owned = base .. ':owned:' .. owner
    local now = now_seconds()
    local count = 0
    for _, jk in ipairs(redis.call('SMEMBERS', owned)) do
        if requeue(jk, now) then
            count = count + 1
            if count_rerun then redis.call('HINCRBY', side(jk), 'reruns', 1) end
        end
    end
    redis.call('DEL', owned)
    return count
end
local function wake()
    for fn in pairs(woken) do redis.call('PUBLISH', base .. ':wake', fn) end
end
-- A job as GET_STATUS sees it: {0} gone; {1 waiting or 2 held, numerator, denominator}.
local function state(jk)
    if redis.call('EXISTS', jk) == 0 then return {0} end
    local fields = redis.call('HMGET', side(jk), 'owner', 'numerator', 'denominator')
    return {fields[1] and 2 or 1, tonumber(fields[2] or '0'), tonumber(fields[3] or '0')}
end
local function now_ms()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# ARGV: base, node, removals, adds, then (job key, function) per removal and 12 values per add. Returns the
# positions (from 1) of the adds whose key the prefix already held: another node stored that job first. A policy or
# cron record (gt:meta:policy, gt:meta:cronentry) already held is rewritten instead: the later change wins. A failed
# attempt (function gt:job:<function>; its job key, attempts, first failure and the backoff's end in the places of
# the job key, priority, data and when) goes into the side hash of its job, if the job is still there.
BATCH = Script(
    PRELUDE
    + """
local removals, adds = tonumber(ARGV[3]), tonumber(ARGV[4])
local alive = redis.call('EXISTS', base .. ':alive:' .. node) == 1
local i = 5
for _ = 1, removals do
    forget(ARGV[i], ARGV[i + 1])
    i = i + 2
end
local held = {}
local now = now_seconds()
for position = 1, adds do
    local jk, fn, key, priority, data, when = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
    local reducer, owned, waiting, handle, dig = ARGV[i + 6], ARGV[i + 7], ARGV[i + 8], ARGV[i + 9], ARGV[i + 10]
    local meta = ARGV[i + 11]
    i = i + 12
    if is_attempt(fn) then
        if redis.call('EXISTS', jk) == 1 then
            redis.call('HSET', side(jk), 'attempts', priority, 'first_failed', data, 'when', when)
        end
    elseif redis.call('EXISTS', jk) == 1 and is_rewritten(fn) then
        redis.call('HSET', jk, 'data', data)
        redis.call('HSET', side(jk), 'digest', dig)  -- a later load still knows the record as ours
    elseif redis.call('EXISTS', jk) == 1 then
        held[#held + 1] = position
    else
        add_job(jk, fn, key, priority, data, when, reducer, owned, waiting, handle, dig, meta, alive, now)
    end
end
wake()
return held
"""
)

# ARGV: base, node, function, limit. Returns the claimed jobs, 12 fields each (see RedisClusterDb.claim); none while
# the node's lease has lapsed (the leader may already have given its jobs to others).
CLAIM = Script(
    PRELUDE
    + """
local fn, limit = ARGV[3], tonumber(ARGV[4])
if redis.call('EXISTS', base .. ':alive:' .. node) == 0 then return {} end
local now = now_seconds()
local delayed = base .. ':d:' .. fn
for _, jk in ipairs(redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, limit)) do
    redis.call('ZREM', delayed, jk)
    enqueue(jk, fn, 0, now)
end
local popped = redis.call('ZPOPMIN', base .. ':q:' .. fn, limit)
local claimed = {}
for i = 1, #popped, 2 do
    local jk = popped[i]
    local job = redis.call('HMGET', jk, 'data', 'priority')
    local fields = redis.call('HMGET', side(jk), 'key', 'function', 'when', 'reducer', 'client_node', 'handle',
        'watchers', 'meta', 'attempts', 'first_failed')
    if job[1] and fields[1] and fields[2] then
        redis.call('HSET', side(jk), 'owner', node)
        redis.call('SADD', base .. ':owned:' .. node, jk)
        claimed[#claimed + 1] = {job[1], job[2] or '1', fields[1], fields[2], fields[3] or '0',
            fields[4] or false, fields[5] or false, fields[6] or false, fields[7] or '', fields[8] or '',
            fields[9] or '0', fields[10] or '0'}
    end
end
return claimed
"""
)

# ARGV: base, node, lease in ms, jobs held, address (register only).
RENEW = Script(
    PRELUDE
    + """
redis.call('SET', base .. ':alive:' .. node, '1', 'PX', ARGV[3])
local now = now_ms()
-- Forgotten by the leader (silent for GONE_AFTER_LEASES leases: cut off from Redis): entered again, else it would be
-- listed nowhere, and its jobs never rescued when it dies (the rescue walks the node list).
local forgotten = redis.call('SADD', base .. ':nodes', node)
if forgotten == 1 then redis.call('HSET', base .. ':node:' .. node, 'address', ARGV[5], 'started', now) end
redis.call('HSET', base .. ':node:' .. node, 'heartbeat', now, 'jobs', ARGV[4])
return forgotten
"""
)
REGISTER = Script(
    PRELUDE
    + """
local now = now_ms()
redis.call('SADD', base .. ':nodes', node)
redis.call('HSET', base .. ':node:' .. node, 'address', ARGV[5], 'started', now, 'heartbeat', now, 'jobs', 0)
redis.call('SET', base .. ':alive:' .. node, '1', 'PX', ARGV[3])
-- The clients of an earlier run of this node are gone: their jobs nobody runs yet, and packets for them.
for _, jk in ipairs(redis.call('SMEMBERS', base .. ':fg:' .. node)) do
    local fields = redis.call('HMGET', side(jk), 'owner', 'function')
    if not fields[1] then forget(jk, fields[2] or '') end
end
redis.call('DEL', base .. ':ev:' .. node)
local count = release_all(node, false)
wake()
return count
"""
)

# ARGV: base, node, then job keys. Hands those the node still holds back; returns how many.
RELEASE = Script(
    PRELUDE
    + """
local owned = base .. ':owned:' .. node
local now = now_seconds()
local count = 0
for i = 3, #ARGV do
    if redis.call('SREM', owned, ARGV[i]) == 1 and requeue(ARGV[i], now) then count = count + 1 end
end
wake()
return count
"""
)
RELEASE_ALL = Script(PRELUDE + "\nlocal count = release_all(node, false)\nwake()\nreturn count\n")

# ARGV: base, node, lease in ms.
LEAD = Script(
    PRELUDE
    + """
local key = base .. ':leader'
local leader = redis.call('GET', key)
if leader == node then
    redis.call('PEXPIRE', key, ARGV[3])
    return 1
end
if leader then return 0 end
redis.call('SET', key, node, 'PX', ARGV[3])
return 1
"""
)

# ARGV: base, node, ms after which a silent node is forgotten. Returns how many jobs went back to the cluster.
RESCUE = Script(
    PRELUDE
    + """
local rescued = 0
local now = now_ms()
for _, other in ipairs(redis.call('SMEMBERS', base .. ':nodes')) do
    if redis.call('EXISTS', base .. ':alive:' .. other) == 0 then
        rescued = rescued + release_all(other, true)
        local heartbeat = tonumber(redis.call('HGET', base .. ':node:' .. other, 'heartbeat') or '0')
        if now - heartbeat > tonumber(ARGV[3]) then
            -- Listed a while after it died (/api/cluster shows the heartbeat's age), then forgotten with its
            -- clients' jobs that nobody runs and the packets for them.
            for _, jk in ipairs(redis.call('SMEMBERS', base .. ':fg:' .. other)) do
                local fields = redis.call('HMGET', side(jk), 'owner', 'function')
                if not fields[1] then forget(jk, fields[2] or '') end
            end
            redis.call('DEL', base .. ':fg:' .. other, base .. ':ev:' .. other, base .. ':node:' .. other)
            redis.call('SREM', base .. ':nodes', other)
        end
    end
end
wake()
return rescued
"""
)

# ARGV: base, node. Returns the time (ms), the leader (or nil), then 5 fields per node.
NODES = Script(
    PRELUDE
    + """
local listed = {now_ms(), redis.call('GET', base .. ':leader') or false}
for _, other in ipairs(redis.call('SMEMBERS', base .. ':nodes')) do
    local fields = redis.call('HMGET', base .. ':node:' .. other, 'address', 'started', 'heartbeat', 'jobs')
    listed[#listed + 1] = {other, fields[1] or '', fields[2] or '0', fields[3] or '0', fields[4] or '0'}
end
return listed
"""
)

# ARGV: base, node, then job keys. Notes the node among each job's watchers (NUL-separated: node names come from
# the command line, which cannot hold a NUL); per job, its holder ('' while it waits for any node), nil when gone.
WATCH = Script(
    PRELUDE
    + """
local owners = {}
for i = 3, #ARGV do
    local jk = ARGV[i]
    if redis.call('EXISTS', jk) == 0 then
        owners[#owners + 1] = false
    else
        local fields = redis.call('HMGET', side(jk), 'watchers', 'owner')
        local watchers = fields[1]
        if not watchers or watchers == '' then
            redis.call('HSET', side(jk), 'watchers', node)
        elseif not string.find('\\0' .. watchers .. '\\0', '\\0' .. node .. '\\0', 1, true) then
            redis.call('HSET', side(jk), 'watchers', watchers .. '\\0' .. node)
        end
        owners[#owners + 1] = fields[2] or ''
    end
end
return owners
"""
)

# ARGV: base, node, then job keys. Per job: {0} gone, else {1 waiting for any node or 2 held by a node, numerator,
# denominator of its last WORK_STATUS}.
STILL_STORED = Script(
    PRELUDE
    + """
local found = {}
for i = 3, #ARGV do
    found[#found + 1] = state(ARGV[i])
end
return found
"""
)

# ARGV: base, node, then handles: per handle, as STILL_STORED for the job stored under it.
STATUS = Script(
    PRELUDE
    + """
local found = {}
for i = 3, #ARGV do
    local jk = redis.call('HGET', base .. ':h', ARGV[i])
    found[#found + 1] = jk and state(jk) or {0}
end
return found
"""
)

# ARGV: base, node, then (job key, numerator, denominator) per job: the last WORK_STATUS of jobs running here.
PROGRESS = Script(
    PRELUDE
    + """
for i = 3, #ARGV, 3 do
    if redis.call('EXISTS', ARGV[i]) == 1 then
        redis.call('HSET', side(ARGV[i]), 'numerator', ARGV[i + 1], 'denominator', ARGV[i + 2])
    end
end
return 0
"""
)

# ARGV: base, node, limit. Deletes up to ``limit`` kept results past their time (by Redis's clock) from the index
# by expiry; returns how many.
SWEEP_RESULTS = Script(
    PRELUDE
    + """
local key = base .. ':expires'
local expired = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. now_seconds(), 'LIMIT', 0, tonumber(ARGV[3]))
for _, jk in ipairs(expired) do
    forget(jk, redis.call('HGET', side(jk), 'function') or '')
    redis.call('ZREM', key, jk)
end
return #expired
"""
)

TAKE_EVENTS = Script(
    PRELUDE
    + """
local key = base .. ':ev:' .. node
local events = redis.call('LRANGE', key, 0, -1)
redis.call('DEL', key)
return events
"""
)

# ARGV: base, node, then per job under the prefix: its key, function, stored key, when, digest. Puts each job that
# no node holds into its queue, writing the side record of a job gearmand stored.
INDEX = Script(
    PRELUDE
    + """
local now = now_seconds()
for i = 3, #ARGV, 5 do
    local jk, fn, key, when, dig = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
    if redis.call('EXISTS', jk) == 1 and redis.call('HEXISTS', side(jk), 'owner') == 0 then
        if redis.call('HEXISTS', side(jk), 'seq') == 0 then
            redis.call('HSET', side(jk), 'function', fn, 'key', key, 'seq', redis.call('INCR', base .. ':seq'),
                'when', when, 'digest', dig)
        end
        enqueue(jk, fn, redis.call('HGET', side(jk), 'when') or when, now)
        if is_dead(fn) then redis.call('ZADD', base .. ':dead', redis.call('HGET', side(jk), 'seq'), jk) end
        if is_result(fn) then
            redis.call('HSET', base .. ':results', key, jk)
            index_result(jk, redis.call('HGET', jk, 'data') or '')
        end
    end
end
wake()
return 0
"""
)

# ARGV: base, node, limit. The newest ``limit`` dead records, newest first: {data, priority, key, function,
# reducer or false} each.
DEAD_RECORDS = Script(
    PRELUDE
    + """
local records = {}
for _, jk in ipairs(redis.call('ZREVRANGE', base .. ':dead', 0, tonumber(ARGV[3]) - 1)) do
    local job = redis.call('HMGET', jk, 'data', 'priority')
    local fields = redis.call('HMGET', side(jk), 'key', 'function', 'reducer')
    if job[1] and fields[1] and fields[2] then
        records[#records + 1] = {job[1], job[2] or '1', fields[1], fields[2], fields[3] or false}
    end
end
return records
"""
)

# ARGV: base, node, then functions. The records waiting under those functions (the life cycle's, which no node
# claims): {function, key, data} each.
RECORDS = Script(
    PRELUDE
    + """
local found = {}
for i = 3, #ARGV do
    local fn = ARGV[i]
    for _, jk in ipairs(redis.call('ZRANGE', base .. ':q:' .. fn, 0, -1)) do
        local key = redis.call('HGET', side(jk), 'key')
        local data = redis.call('HGET', jk, 'data')
        if key and data then found[#found + 1] = {fn, key, data} end
    end
end
return found
"""
)

# ARGV: base, node, then 10 values per move: the dead record's job key and function, then the live job's key,
# function, stored key, priority, data, reducer ('' or '=' and the reducer), handle and digest. Each dead record
# still there is forgotten and its job queued for any node; returns the positions (from 1) of those moved.
REVIVE = Script(
    PRELUDE
    + """
local moved = {}
local now = now_seconds()
local position = 0
for i = 3, #ARGV, 10 do
    position = position + 1
    local dead_jk, dead_fn, jk, fn = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    if is_dead(dead_fn) and redis.call('EXISTS', dead_jk) == 1 then
        forget(dead_jk, dead_fn)
        if redis.call('EXISTS', jk) == 0 then
            add_job(jk, fn, ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], 0, ARGV[i + 7], '0', '0', ARGV[i + 8],
                ARGV[i + 9], '', false, now)
        end
        moved[#moved + 1] = position
    end
end
wake()
return moved
"""
)

# ARGV: base, node, then handles. Per handle, the kept result stored under it: {data, key, function}, or false.
RESULTS = Script(
    PRELUDE
    + """
local found = {}
for i = 3, #ARGV do
    local jk = redis.call('HGET', base .. ':results', ARGV[i])
    local data = jk and redis.call('HGET', jk, 'data')
    local fields = jk and redis.call('HMGET', side(jk), 'key', 'function')
    if data and fields[1] and fields[2] then
        found[#found + 1] = {data, fields[1], fields[2]}
    else
        found[#found + 1] = false
    end
end
return found
"""
)


def _text(value: Reply) -> bytes:
    return value if isinstance(value, bytes) else b""


class RedisClusterKeys:
    """The keys of one node of a cluster on the store's prefix, and its batches (run by the store's writer)."""

    def __init__(self, store: RedisStore, node: str, lease: float) -> None:
        self.store = store
        self.node = node.encode()
        self.lease_ms = int(lease * 1000)
        self.base = SIDE_PREFIX + store.prefix
        self.wake_channel = self.base + b":wake"
        self.events_channel = self.base + b":events"

    def args(self, *rest: Arg) -> list[Arg]:
        return [self.base, self.node, *rest]

    def removal_command(self, removes: Sequence[Removal]) -> list[Arg]:
        """The batch script for deletions alone, run by its digest, for the writer to send on its own
        (``RedisWriter.remove_now``): the jobs' records go, and the index forgets them. A NOSCRIPT answer (Redis lost
        its scripts) fails that deletion, and :meth:`apply` runs the batch again with the script's text."""
        command: list[Arg] = [b"EVALSHA", BATCH.sha, 0, *self.args(len(removes), 0)]
        for removal in removes:
            command += [self.store.job_key(removal.function, removal.key), removal.function]
        return command

    def build_index(self, client: Redis, store: RedisStore) -> None:
        """Index every job under the prefix, unless the index is known complete (on the store's own connection,
        when it opens). Nodes starting together may both do it: each step is idempotent. ``indexed3`` marks an
        index that also holds the life cycle's records (``dead``, ``results`` and ``expires``): a prefix indexed by
        an earlier version is indexed again once."""
        marker = self.base + b":indexed"
        dead_marker = self.base + b":indexed3"
        if client.exists(marker) and client.exists(dead_marker):
            return
        jobs = store.load()
        while part := list(itertools.islice(jobs, INDEX_CHUNK)):
            args = self.args()
            for job in part:
                args += [store.job_key(job.function, job.key), job.function, job.key, job.when, digest(job.data)]
            client.eval(INDEX.text.decode(), 0, *args)
        client.set(marker, b"1")
        client.set(dead_marker, b"1")

    async def apply(
        self, conn: RespConnection, adds: Sequence[StoredJob], removes: Sequence[Removal]
    ) -> frozenset[tuple[bytes, bytes]]:
        """Run a batch (already netted); returns the keys of the adds another node had stored first."""
        store = self.store
        adds = [job for job in adds if not job.function.startswith(ATTEMPT_PREFIX) or side_from_record(job)]
        args = self.args(len(removes), len(adds))
        for removal in removes:
            args += [store.job_key(removal.function, removal.key), removal.function]
        for job in adds:
            if job.function.startswith(ATTEMPT_PREFIX):  # a failed attempt: into its job's side hash
                side = side_from_record(job)
                assert side is not None  # those that do not read were left out above
                function = job.function[len(ATTEMPT_PREFIX) :]
                args += [store.job_key(function, job.key), job.function, job.key, side.attempts]
                args += [repr(side.first_failed).encode(), math.ceil(side.retry_at), b"", 0, 0, b"", b"", b""]
                continue
            reducer = b"" if job.reducer is None else b"=" + job.reducer
            args += [store.job_key(job.function, job.key), job.function, job.key, job.priority, job.data, job.when]
            args += [reducer, int(job.owned), int(job.waiting), job.handle, digest(job.data), job.meta]
        held = await BATCH.run(conn, args)
        if not isinstance(held, list) or not held:
            return frozenset()
        return frozenset((adds[p - 1].key, adds[p - 1].function) for p in held if isinstance(p, int))


class RedisClusterDb:
    """The database side of :class:`~geartrain.cluster.node.ClusterNode` on Redis: claims, the lease, the leader
    and wake-ups, on connections of its own (one for scripts, one subscribed)."""

    def __init__(self, keys: RedisClusterKeys) -> None:
        self.keys = keys
        self.store = keys.store
        self._conn: RespConnection | None = None
        self._connecting = asyncio.Lock()
        self._address = b""  # this node's, as registered

    @property
    def description(self) -> str:
        return self.store.description

    async def _connection(self) -> RespConnection:
        if self._conn is None or self._conn.lost is not None:
            async with self._connecting:
                if self._conn is None or self._conn.lost is not None:
                    try:
                        self._conn = await self.store.connect_async()
                    except ConnectionLost as exc:
                        raise StoreUnavailable(f"{self.description}: {exc}") from exc
        return self._conn

    async def _run(self, script: Script, *rest: Arg) -> Reply:
        conn = await self._connection()
        try:
            return await script.run(conn, self.keys.args(*rest))
        except ConnectionLost as exc:
            conn.close()
            raise StoreUnavailable(f"{self.description}: {exc}") from exc
        except StoreError as exc:
            raise StoreError(f"{self.description}: {exc}") from exc

    async def run_script(self, script: Script, *rest: Arg) -> Reply:
        """Run a script of the cluster's (ARGV: the key base, the node, then ``rest``)."""
        return await self._run(script, *rest)

    def limits(self) -> RedisLimits:
        """The database side of cluster-wide concurrency and rate (cluster/limits_redis.py)."""
        from geartrain.cluster.limits_redis import RedisLimits

        return RedisLimits(self)

    async def register(self, address: str) -> int:
        """Enter this node in the cluster; hand back the jobs an earlier run of it held. Returns that count."""
        self._address = address.encode()
        return _count(await self._run(REGISTER, self.keys.lease_ms, 0, self._address))

    async def claim(self, function: bytes, limit: int) -> list[Claimed]:
        """Up to ``limit`` waiting jobs of ``function`` for this node, in priority and submission order, each with
        the node whose client waits for it (``None`` for a background job) and the nodes whose clients coalesced
        onto it. None while its lease has lapsed."""
        claimed = await self._run(CLAIM, function, limit)
        jobs: list[Claimed] = []
        for fields in claimed if isinstance(claimed, list) else []:
            if not isinstance(fields, list) or len(fields) != 12:
                continue
            data, priority, key, name, when, reducer, client, handle, watchers, meta, attempts, first_failed = fields
            stored_key = _text(key)
            job = StoredJob(
                stored_key,
                _text(name),
                unique_from_key(stored_key),
                int(_text(priority) or b"1"),
                _text(data),
                int(_text(when) or b"0"),
                reducer[1:] if isinstance(reducer, bytes) else None,
                handle=_text(handle),
                meta=_text(meta),
            )
            client_node = client.decode("utf-8", "replace") if isinstance(client, bytes) else None
            watching = tuple(node.decode("utf-8", "replace") for node in _text(watchers).split(b"\0") if node)
            failed = (int(_text(attempts) or b"0"), float(_text(first_failed) or b"0"))
            jobs.append((job, client_node, watching, failed))
        return jobs

    async def watch(self, keys: Sequence[tuple[bytes, bytes]]) -> dict[tuple[bytes, bytes], str]:
        """Note this node on each of these jobs, whose runner relays their packets to it; returns, per job still
        stored, the node that holds it ('' while it waits for any node)."""
        owners: dict[tuple[bytes, bytes], str] = {}
        for part in chunks(list(keys), INDEX_CHUNK):
            found = await self._run(WATCH, *[self.store.job_key(f, k) for k, f in part])
            for remote, owner in zip(part, found if isinstance(found, list) else [], strict=False):
                if isinstance(owner, bytes):
                    owners[remote] = owner.decode("utf-8", "replace")
        return owners

    async def renew(self, jobs_held: int) -> bool:
        """Extend this node's lease (that of every job it holds) and its heartbeat (raises StoreUnavailable).
        Returns whether the cluster had forgotten this node (it is entered again)."""
        return _count(await self._run(RENEW, self.keys.lease_ms, jobs_held, self._address)) == 1

    async def still_stored(self, keys: Sequence[tuple[bytes, bytes]]) -> dict[tuple[bytes, bytes], Progress]:
        """Which of these (key, function) the prefix still holds, each with whether a node holds (runs) it and its
        last WORK_STATUS."""
        found: dict[tuple[bytes, bytes], Progress] = {}
        for part in chunks(list(keys), INDEX_CHUNK):
            states = await self._run(STILL_STORED, *[self.store.job_key(f, k) for k, f in part])
            for remote, state in zip(part, states if isinstance(states, list) else [], strict=False):
                progress = _progress(state)
                if progress is not None:
                    found[remote] = progress
        return found

    async def status(self, handles: Sequence[bytes]) -> dict[bytes, Progress]:
        """The jobs stored under these handles (any node's), as :meth:`still_stored` describes them."""
        found: dict[bytes, Progress] = {}
        for part in chunks(list(handles), INDEX_CHUNK):
            states = await self._run(STATUS, *part)
            for handle, state in zip(part, states if isinstance(states, list) else [], strict=False):
                progress = _progress(state)
                if progress is not None:
                    found[handle] = progress
        return found

    async def set_progress(self, updates: Sequence[tuple[bytes, bytes, int, int]]) -> None:
        """The last WORK_STATUS of running jobs: (key, function, numerator, denominator)."""
        for part in chunks(list(updates), INDEX_CHUNK):
            args: list[Arg] = []
            for key, function, numerator, denominator in part:
                args += [self.store.job_key(function, key), numerator, denominator]
            await self._run(PROGRESS, *args)

    async def sweep_results(self, limit: int) -> int:
        """Delete up to ``limit`` kept results past their time (by Redis's clock), from the index by expiry;
        returns how many."""
        return _count(await self._run(SWEEP_RESULTS, limit))

    async def release(self, keys: Sequence[Removal]) -> None:
        """Hand these jobs of this node back to the cluster (announced, so a sleeping node claims them)."""
        for part in chunks(list(keys), INDEX_CHUNK):
            await self._run(RELEASE, *[self.store.job_key(k.function, k.key) for k in part])

    async def release_all(self) -> int:
        """Hand every job this node holds back to the cluster; returns how many."""
        return _count(await self._run(RELEASE_ALL))

    async def lead(self) -> bool:
        """Take or keep the leader's lease; ``True`` while this node leads."""
        return _count(await self._run(LEAD, self.keys.lease_ms)) == 1

    async def rescue(self) -> int:
        """Send the jobs of every lapsed node lease back to the cluster (their node died or lost the database)."""
        return _count(await self._run(RESCUE, self.keys.lease_ms * GONE_AFTER_LEASES))

    async def send_events(self, events: Sequence[tuple[str, bytes, bytes, int, bytes]]) -> None:
        """Packets for the nodes whose clients wait: (node, key, function, packet type, arguments after the
        handle joined by NUL), in order; each node is told on the events channel."""
        by_node: dict[bytes, list[Arg]] = {}
        for node, key, function, ptype, data in events:
            packed = EVENT_HEADER.pack(ptype, len(key), len(function)) + key + function + data
            by_node.setdefault(node.encode(), []).append(packed)
        base = self.keys.base
        commands: list[list[Arg]] = [[b"RPUSH", base + b":ev:" + node, *items] for node, items in by_node.items()]
        commands += [[b"PUBLISH", self.keys.events_channel, node] for node in by_node]
        await self._commands(commands)

    async def _commands(self, commands: Sequence[Sequence[Arg]]) -> None:
        conn = await self._connection()
        try:
            replies = await conn.call(*commands)
        except ConnectionLost as exc:
            conn.close()
            raise StoreUnavailable(f"{self.description}: {exc}") from exc
        for reply in replies:
            if isinstance(reply, StoreError):
                raise StoreError(f"{self.description}: {reply}")

    async def take_events(self) -> list[tuple[bytes, bytes, int, bytes]]:
        """The packets waiting for this node's clients, oldest first: (key, function, type, arguments)."""
        events = []
        taken = await self._run(TAKE_EVENTS)
        for packed in taken if isinstance(taken, list) else []:
            if not isinstance(packed, bytes) or len(packed) < EVENT_HEADER.size:
                continue
            ptype, key_size, function_size = EVENT_HEADER.unpack_from(packed)
            start = EVENT_HEADER.size
            key = packed[start : start + key_size]
            function = packed[start + key_size : start + key_size + function_size]
            events.append((key, function, ptype, packed[start + key_size + function_size :]))
        return events

    async def records(self, functions: Sequence[bytes]) -> list[tuple[bytes, bytes, bytes]]:
        """The records stored under reserved functions no node claims (the life cycle's: pauses, run-time policy
        and cron changes) as (function, key, data): the members of their waiting sets, in one script."""
        found = await self._run(RECORDS, *functions)
        records = []
        for fields in found if isinstance(found, list) else []:
            if isinstance(fields, list) and len(fields) == 3:
                function, key, data = (_text(field) for field in fields)
                records.append((function, key, data))
        return records

    async def dead_version(self) -> tuple[int, int]:
        """How many dead records the prefix holds, and the highest of their sequence numbers: each new record gets a
        higher one (in the script that stores it), so a change of the dead set changes one or the other."""
        dead = self.keys.base + b":dead"
        conn = await self._connection()
        try:
            count, highest = await conn.call([b"ZCARD", dead], [b"ZRANGE", dead, -1, -1, b"WITHSCORES"])
        except ConnectionLost as exc:
            conn.close()
            raise StoreUnavailable(f"{self.description}: {exc}") from exc
        score = highest[1] if isinstance(highest, list) and len(highest) == 2 else b"0"
        return _count(count), int(float(_text(score) or b"0"))

    async def dead_records(self, limit: int) -> list[StoredJob]:
        """The dead records of every node, oldest first: the newest ``limit`` of them (from the dead index)."""
        listed = await self._run(DEAD_RECORDS, limit)
        records = []
        for fields in reversed(listed) if isinstance(listed, list) else []:
            if not isinstance(fields, list) or len(fields) != 5:
                continue
            data, priority, key, name, reducer = fields
            stored_key = _text(key)
            records.append(
                StoredJob(
                    stored_key,
                    _text(name),
                    unique_from_key(stored_key),
                    int(_text(priority) or b"1"),
                    _text(data),
                    0,
                    reducer if isinstance(reducer, bytes) else None,
                )
            )
        return records

    async def revive(self, moves: Sequence[tuple[Removal, StoredJob]]) -> list[int]:
        """Move dead records back into the queue: each (dead record, live job) whose dead record is still there is
        forgotten and its job queued for any node, in one script (so a record two nodes move at once moves once).
        Returns the positions of those moved."""
        store = self.store
        moved: list[int] = []
        for start in range(0, len(moves), INDEX_CHUNK):
            args: list[Arg] = []
            for dead, job in moves[start : start + INDEX_CHUNK]:
                reducer = b"" if job.reducer is None else b"=" + job.reducer
                args += [store.job_key(dead.function, dead.key), dead.function, store.job_key(job.function, job.key)]
                args += [job.function, job.key, job.priority, job.data, reducer, job.handle, digest(job.data)]
            positions = await self._run(REVIVE, *args)
            moved += [start + p - 1 for p in positions if isinstance(p, int)] if isinstance(positions, list) else []
        return moved

    async def results(self, handles: Sequence[bytes]) -> list[StoredJob]:
        """The kept results (``gt:result:`` records) stored under these handles, by any node (from ``results``)."""
        records = []
        for part in chunks(list(handles), INDEX_CHUNK):
            found = await self._run(RESULTS, *part)
            for fields in found if isinstance(found, list) else []:
                if isinstance(fields, list) and len(fields) == 3:
                    data, key, name = (_text(field) for field in fields)
                    records.append(StoredJob(key, name, unique_from_key(key), 1, data))
        return records

    async def nodes(self) -> list[dict[str, Any]]:
        """The cluster's nodes as the API shows them."""
        listed = await self._run(NODES)
        if not isinstance(listed, list) or len(listed) < 2:
            return []
        now_ms, leader = listed[0], listed[1]
        assert isinstance(now_ms, int)
        found = []
        for fields in listed[2:]:
            if not isinstance(fields, list) or len(fields) != 5:
                continue
            node, address, started, heartbeat, jobs = (_text(field) for field in fields)
            found.append(
                {
                    "node": node.decode("utf-8", "replace"),
                    "address": address.decode("utf-8", "replace"),
                    "started": int(started or 0) / 1000,
                    "heartbeat_age": max(0.0, (now_ms - int(heartbeat or 0)) / 1000),
                    "jobs": int(jobs or 0),
                    "leader": node == leader,
                }
            )
        return sorted(found, key=lambda entry: str(entry["node"]))

    async def notifications(self) -> AsyncIterator[tuple[bool, bytes]]:
        """What the cluster's channels announce, as it comes: ``(False, function)`` for jobs waiting for any node,
        ``(True, node)`` for packets waiting for a node's clients. Raises StoreUnavailable when the subscribed
        connection is lost (the caller subscribes again)."""
        store, keys = self.store, self.keys
        channels = [keys.wake_channel, keys.events_channel]
        try:
            async for channel, payload in subscribe(store.host, store.port, store.password, channels, CONNECT_TIMEOUT):
                yield channel == keys.events_channel, payload
        except ConnectionLost as exc:
            raise StoreUnavailable(f"{self.description}: {exc}") from exc

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None


def _progress(state: Reply) -> Progress | None:
    if not isinstance(state, list) or len(state) != 3 or not all(isinstance(n, int) for n in state):
        return None
    held, numerator, denominator = state
    return held == 2, int(numerator or 0), int(denominator or 0)  # type: ignore[arg-type]


def _count(reply: Reply) -> int:
    return reply if isinstance(reply, int) else 0
