"""Redis store (redis-py), on gearmand's ``-q redis`` key layout.

gearmand keeps each job in a hash at ``<prefix>-<function>-<unique>`` with the fields ``data`` and ``priority``.
Every released gearmand (1.1.20 to 2.0.0) reads back exactly those two fields and refuses to start on a hash with
any other field (1.1.20 expects four array elements; its git HEAD rejects unknown fields). So, for gearmand to read
our queue, a job hash holds those two fields and nothing else, and geartrain's own record of the job lives beside
it, in a hash ``gt:<job key>`` that gearmand never looks at (it only walks keys starting with the prefix):

* ``function`` and ``key`` (the stored unique): exact bytes, so names containing ``-`` come back whole (gearmand
  splits the key at ``-``, #159);
* ``seq`` from the counter ``gt:<prefix>:seq`` (INCRBY): replay is in submission order, which Redis cannot give;
* ``when`` (epoch jobs, which gearmand refuses with redis) and ``reducer`` when there is one;
* ``digest`` of the data: if gearmand has meanwhile finished our job and stored another under the same key, the stale
  record is noticed and ignored.

Replay (:meth:`RedisStore.load`) walks ``<prefix>-*`` with SCAN, never KEYS (which blocks the server). It also
deletes side hashes whose job hash is gone: gearmand, finishing a job of ours, deletes only the job hash. Records
without our side hash were written by gearmand: git HEAD's ``function``/``unique`` fields are used when present,
otherwise the key is split at the first ``-`` after the prefix (best effort: a gearmand job whose function name
contains ``-`` comes back under a shorter name; its key is rebuilt unchanged, so it is still deleted when done);
gearmand up to 1.1.15 stored a plain string value (the data; priority normal). Such records come first, in key
order, then ours by ``seq``. Values are bytes throughout, so binary data and NULs survive.

A batch is one MULTI/EXEC transaction. redis-py's own retries are off: a lost connection surfaces as
StoreUnavailable and the server decides when to reopen, as with the other stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from geartrain.server.core.records import Removal, StoredJob, unique_from_key
from geartrain.store import resp
from geartrain.store.base import ConnectionLost, StoreError, StoreUnavailable
from geartrain.store.common import chunks, net_batch, require_driver, translate_errors
from geartrain.store.holder import LEASE, RENEWAL, Holder, StoreHold
from geartrain.store.resp import Arg, RespConnection, RespError

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from redis import Redis

    from geartrain.cluster.redis import RedisClusterKeys

SIDE_PREFIX = b"gt:"
FETCH_CHUNK = 1000  # keys per pipelined round trip during replay
CONNECT_TIMEOUT = 10
IO_TIMEOUT = 60
NORMAL_PRIORITY = 1
WRITER_PIPELINE = 8


# Replay reads a chunk of keys per script run: a round trip and a command per thousand jobs, where a pipeline of
# HGETALLs costs redis-py about 10 µs of Python per command. A million jobs: 52 s with such a pipeline, 22 s with
# these scripts (46 s without hiredis, whose C parser the redis extra installs).
READ_SEQS = """
local seqs = {}
for i, key in ipairs(KEYS) do seqs[i] = redis.call('HGET', ARGV[1] .. key, 'seq') or '' end
return seqs
"""
READ_RECORDS = """
local records = {}
for i, key in ipairs(KEYS) do
    local kind = redis.call('TYPE', key).ok
    local value = {}
    if kind == 'hash' then
        value = redis.call('HGETALL', key)
    elseif kind == 'string' then
        value = redis.call('GET', key)
    end
    records[i] = {redis.call('HGETALL', ARGV[1] .. key), kind, value}
end
return records
"""

# The owner record (geartrain.store.holder): a key that expires unless its holder renews it. Swapped and deleted
# only while it still names the expected holder, in one step.
READ_OWNER = """
local holder = redis.call('GET', KEYS[1])
if not holder then return nil end
return {holder, redis.call('PTTL', KEYS[1])}
"""
REPLACE_OWNER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
DELETE_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


def _pairs(fields: list[bytes]) -> dict[bytes, bytes]:
    return dict(zip(fields[::2], fields[1::2], strict=True))


def digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=8).digest()


def glob_escape(value: bytes) -> bytes:
    """``value`` as a literal inside a SCAN MATCH pattern."""
    for special in (b"\\", b"*", b"?", b"[", b"]"):
        value = value.replace(special, b"\\" + special)
    return value


class RedisStore:
    """Jobs under one key prefix of one Redis database."""

    hold_renewal = RENEWAL

    def __init__(self, host: str, port: int, password: str | None, db: int, prefix: str = "_gear_") -> None:
        require_driver("redis", "redis")
        self.host, self.port, self.password, self.db = host, port, password, db
        self.prefix = prefix.encode("utf-8")
        self.seq_key = SIDE_PREFIX + self.prefix + b":seq"
        self.description = f"redis://{host}:{port}/{db}?prefix={prefix}"  # no password
        self.owner_key = SIDE_PREFIX + self.prefix + b":owner"
        self._client: Redis | None = None
        self.cluster: RedisClusterKeys | None = None  # set when this server is a node of a cluster on the prefix
        self._hold = StoreHold(
            self.description, lambda: RedisOwnerRecords(self._connection(), self.owner_key), self._errors
        )

    async def connect_async(self) -> RespConnection:
        """A connection on the event loop (:mod:`geartrain.store.resp`); ConnectionLost when it cannot be made."""
        return await resp.connect(self.host, self.port, self.password, self.db, CONNECT_TIMEOUT, IO_TIMEOUT)

    def job_key(self, function: bytes, key: bytes) -> bytes:
        """gearmand's key for a job."""
        return self.prefix + b"-" + function + b"-" + key

    def open(self) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.close()
        client = redis.Redis(
            host=self.host,
            port=self.port,
            db=self.db,
            password=self.password,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=IO_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            with self._errors():
                client.ping()
        except BaseException:
            client.close()
            raise
        self._client = client
        if self.cluster is not None:
            with self._errors():
                self.cluster.build_index(client, self)

    def load(self) -> Iterator[StoredJob]:
        client = self._connection()
        with self._errors():
            # Side records are listed before job hashes: a job stored meanwhile (by another server on the same
            # prefix) then has its job hash in the second listing whenever its side record is in the first.
            sides = list(client.scan_iter(match=SIDE_PREFIX + glob_escape(self.prefix) + b"-*", count=FETCH_CHUNK))
            keys = sorted(set(client.scan_iter(match=glob_escape(self.prefix) + b"-*", count=FETCH_CHUNK)))
            self._sweep_orphans(client, sides, set(keys))
            # Order first, from each side record's seq alone (a million full records would be held twice);
            # then records and payloads a chunk at a time, in that order.
            ours: list[tuple[int, bytes]] = []
            legacy: list[bytes] = []
            seqs = client.register_script(READ_SEQS)
            for part in chunks(keys, FETCH_CHUNK):
                for key, seq in zip(part, seqs(keys=part, args=[SIDE_PREFIX]), strict=True):
                    if seq.isdigit():
                        ours.append((int(seq), key))
                    else:
                        legacy.append(key)
            ours.sort()
            order = legacy + [key for _, key in ours]
            del ours, keys
            records = client.register_script(READ_RECORDS)
            for part in chunks(order, FETCH_CHUNK):
                yield from self._jobs(part, records(keys=part, args=[SIDE_PREFIX]))

    def _sweep_orphans(self, client: Redis, sides: list[bytes], job_keys: set[bytes]) -> None:
        """Delete the side hashes of jobs that are gone (finished by gearmand, which never looks at ``gt:``)."""
        orphans = [side for side in sides if side[len(SIDE_PREFIX) :] not in job_keys]
        for part in chunks(orphans, FETCH_CHUNK):
            client.delete(*part)

    def _jobs(self, part: Sequence[bytes], replies: list[list[Any]]) -> Iterator[StoredJob]:
        """The jobs of READ_RECORDS' replies for the keys ``part``."""
        for key, (side_fields, kind, value) in zip(part, replies, strict=True):
            if kind == b"string":  # gearmand <= 1.1.15 stored the data as a plain string
                record = {b"data": value, b"priority": str(NORMAL_PRIORITY).encode()}
            elif kind == b"hash":
                record = _pairs(value)
            else:  # finished between SCAN and now
                continue
            side = _pairs(side_fields)
            ours = b"function" in side and b"key" in side
            job = self._job(key, side if ours else None, record)
            if job is not None:
                yield job

    def _job(self, key: bytes, side: dict[bytes, bytes] | None, record: dict[bytes, bytes]) -> StoredJob | None:
        data = record.get(b"data", b"")
        try:
            priority = int(record.get(b"priority", NORMAL_PRIORITY))
        except ValueError:
            priority = NORMAL_PRIORITY
        if side is not None and side.get(b"digest") == digest(data):
            stored_key, reducer = side[b"key"], side.get(b"reducer")
            when = int(side.get(b"when", 0))
            return StoredJob(stored_key, side[b"function"], unique_from_key(stored_key), priority, data, when, reducer)
        if record.get(b"function") and record.get(b"unique"):  # gearmand's git HEAD writes these
            function, unique = record[b"function"], record[b"unique"]
        else:
            function, sep, unique = key[len(self.prefix) + 1 :].partition(b"-")
            if not sep:  # not a job key of gearmand's; nothing we could delete later either
                return None
        if self.job_key(function, unique) != key:
            return None
        return StoredJob(unique, function, unique_from_key(unique), priority, data)

    def apply(self, adds: Sequence[StoredJob], removes: Sequence[Removal]) -> None:
        client = self._connection()
        adds, removes = net_batch(adds, removes)
        with self._errors():
            # The counter moves outside the transaction (its value is needed to build it); a failed batch only
            # leaves a gap in the numbering.
            first = int(client.incrby(self.seq_key, len(adds))) - len(adds) + 1 if adds else 0
            pipe = client.pipeline(transaction=True)
            for command in self.batch_commands(adds, removes, first):
                pipe.execute_command(*command)  # type: ignore[no-untyped-call]
            pipe.execute()

    def batch_commands(self, adds: Sequence[StoredJob], removes: Sequence[Removal], first: int) -> list[list[Arg]]:
        """The commands that store ``adds`` (numbered from ``first``) and delete ``removes``, to run atomically."""
        commands: list[list[Arg]] = []
        for number, job in enumerate(adds, first):
            key = self.job_key(job.function, job.key)
            commands.append([b"DEL", key, SIDE_PREFIX + key])  # a re-add replaces every field, ours and gearmand's
            commands.append([b"HSET", key, b"data", job.data, b"priority", job.priority])
            side: list[Arg] = [b"HSET", SIDE_PREFIX + key, b"function", job.function, b"key", job.key]
            side += [b"seq", number, b"when", job.when, b"digest", digest(job.data)]
            if job.reducer is not None:
                side += [b"reducer", job.reducer]
            commands.append(side)
        if removes:
            commands.append(self.removal_command(removes))
        return commands

    def removal_command(self, removes: Sequence[Removal]) -> list[Arg]:
        """One DEL of the jobs' records, gearmand's and ours: atomic by itself."""
        gone: list[Arg] = [b"DEL"]
        for removal in removes:
            key = self.job_key(removal.function, removal.key)
            gone += [key, SIDE_PREFIX + key]
        return gone

    def hold(self, holder: Holder) -> None:
        self._hold.take(holder)
        # A server of its own on the prefix does not keep a cluster's queue index: a cluster started on it later
        # builds the index again from the jobs (geartrain.cluster.redis).
        with self._errors():
            self._connection().delete(SIDE_PREFIX + self.prefix + b":indexed")

    def renew_hold(self) -> bool:
        return self._hold.renew()

    def release_hold(self) -> None:
        self._hold.release()

    def batch_writer(self) -> RedisWriter:
        return RedisWriter(self)

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            # already gone: nothing left to release
            with contextlib.suppress(Exception):
                client.close()

    def _connection(self) -> Redis:
        if self._client is None:
            raise StoreUnavailable(f"{self.description}: not open")
        return self._client

    def _errors(self) -> AbstractContextManager[None]:
        import redis

        return translate_errors(
            self.description,
            unavailable=(redis.ConnectionError, redis.TimeoutError, OSError),
            failed=(redis.RedisError, ValueError, TypeError),
        )


class RedisOwnerRecords:
    """:class:`~geartrain.store.holder.OwnerRecords` as one key that expires :data:`LEASE` seconds after its last
    renewal (so a record found is never older than the lease)."""

    def __init__(self, client: Redis, key: bytes) -> None:
        self._client = client
        self._key = key
        self._lease_ms = int(LEASE * 1000)

    def read_owner(self) -> tuple[str, float] | None:
        found = self._client.eval(READ_OWNER, 1, self._key)
        if not found:
            return None
        holder, left_ms = found
        return holder.decode("utf-8", "replace"), max(0.0, (self._lease_ms - int(left_ms)) / 1000)

    def insert_owner(self, text: str) -> bool:
        return bool(self._client.set(self._key, text.encode(), nx=True, px=self._lease_ms))

    def replace_owner(self, old: str, new: str) -> bool:
        return bool(self._client.eval(REPLACE_OWNER, 1, self._key, old.encode(), new.encode(), self._lease_ms))

    def delete_owner(self, text: str) -> None:
        self._client.eval(DELETE_OWNER, 1, self._key, text.encode())


class RedisWriter:
    """The store's batches from the event loop (:mod:`geartrain.store.resp`): the same commands as
    :meth:`RedisStore.apply`, one round trip for a batch of removals, two with adds (the counter first). Batches in
    flight at once share the connection: Redis runs each connection's commands in the order they were sent."""

    concurrency = WRITER_PIPELINE

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._conn: RespConnection | None = None
        self._connecting = asyncio.Lock()

    async def open(self) -> None:
        self.close()
        await self._connect()

    async def _connect(self) -> None:
        store = self._store
        try:
            self._conn = await store.connect_async()
        except ConnectionLost as exc:
            raise StoreUnavailable(f"{store.description}: {exc}") from exc

    async def apply(
        self, adds: Sequence[StoredJob], removes: Sequence[Removal]
    ) -> frozenset[tuple[bytes, bytes]] | None:
        """Returns, in a cluster, the keys of the adds the prefix already held (another node stored them)."""
        if self._conn is None or self._conn.lost is not None:
            async with self._connecting:  # batches side by side share the one connection: one of them makes it
                if self._conn is None or self._conn.lost is not None:
                    await self._connect()
        conn, store = self._conn, self._store
        assert conn is not None
        adds, removes = net_batch(adds, removes)
        if store.cluster is not None:
            try:
                return await store.cluster.apply(conn, adds, removes)
            except ConnectionLost as exc:
                self.close()
                raise StoreUnavailable(f"{store.description}: {exc}") from exc
        try:
            first = 0
            if adds:
                (counter,) = await conn.call([b"INCRBY", store.seq_key, len(adds)])
                if not isinstance(counter, int):
                    raise StoreError(f"{store.description}: INCRBY {store.seq_key!r}: {counter!r}")
                first = counter - len(adds) + 1
            commands = store.batch_commands(adds, removes, first)
            if len(commands) == 1:  # one DEL: atomic by itself
                replies = await conn.call(*commands)
            elif commands:
                replies = (await conn.call([b"MULTI"], *commands, [b"EXEC"]))[-1:]
            else:
                return None
        except ConnectionLost as exc:
            self.close()
            raise StoreUnavailable(f"{store.description}: {exc}") from exc
        for reply in replies:
            errors = reply if isinstance(reply, list) else [reply]
            failed = [error for error in errors if isinstance(error, RespError)]
            if failed or reply is None:  # None: EXEC aborted
                raise StoreError(f"{store.description}: {failed[0] if failed else 'transaction aborted'}")
        return None

    def remove_now(self, removes: Sequence[Removal], done: Callable[[BaseException | None], None]) -> bool:
        conn, store = self._conn, self._store
        if conn is None or conn.lost is not None:
            return False
        if store.cluster is not None:  # a node: the cluster's script, which also takes the jobs out of its index
            command = resp.encode_command(store.cluster.removal_command(removes))
        elif len(removes) == 1:  # a drain with one worker: the DEL spelt out, for it is sent once per job
            key = store.prefix + b"-" + removes[0].function + b"-" + removes[0].key
            side = SIDE_PREFIX + key
            command = b"*3\r\n$3\r\nDEL\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(side), side)
        else:
            command = resp.encode_command(store.removal_command(removes))
        return conn.send_commands_then(command, 1, partial(self._removed, done))

    def _removed(self, done: Callable[[BaseException | None], None], replies: list[resp.Reply] | BaseException) -> None:
        if isinstance(replies, ConnectionLost):
            done(StoreUnavailable(f"{self._store.description}: {replies}"))
        elif isinstance(replies, BaseException):
            done(replies)
        elif isinstance(replies[0], RespError):
            done(StoreError(f"{self._store.description}: {replies[0]}"))
        else:
            done(None)

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()
