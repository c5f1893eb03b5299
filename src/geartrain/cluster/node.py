"""One node's part in a cluster: claiming jobs, renewing its lease, waking up, and the leader's housekeeping.

It runs on the node's event loop beside the Gearman server and talks to the database through a
:class:`ClusterDb` (PostgreSQL: :mod:`geartrain.cluster.postgres`). What the engine decides stays in the engine
(:mod:`geartrain.server.core.cluster`): this module only moves jobs between it and the database.

* **Claims.** When the node's workers want jobs (a worker went to sleep, a job was announced on the channel, or the
  slow safety poll) it claims, per function, up to what :func:`~geartrain.server.core.cluster.wanted` says, and
  claims again at once while claims come back full (a burn-down runs in batches).
* **Lease.** Every ``lease / 3`` seconds it renews the lease of every job it holds. A node that could not renew for
  ``lease * 2 / 3`` seconds stops handing out jobs (its ``/readyz`` says why): after ``lease`` seconds the leader
  gives them to others, and it must not run them too. When the database answers again it hands back the queued jobs
  it held (others may have them now) and carries on.
* **Leader.** One node at a time (a lease in the database) sends the jobs of lapsed leases back to the cluster.
* **Life cycle.** Pauses, run-time policy and cron changes and the dead set are the cluster's: records in its table
  that every node reads back each :data:`SAFETY_POLL` (the dead records only when they changed); a ``dead retry`` on
  any node moves the dead
  records back into the queue in the database, once, for whichever node's worker is free. A kept result another
  node stored is looked up by handle when asked for (``result``, the HTTP route, GET_STATUS); the leader deletes
  those past their time whose node died or restarted before they expired.
* **Foreground jobs across nodes.** A node stores a foreground job for which it has no worker, for the cluster;
  the node that claims it runs it for a relay peer standing for the waiting node's clients, and the packets its
  worker sends (WORK_DATA ... WORK_COMPLETE) go back through the database (an events table and a channel) to the
  client's node, whose engine takes them from its own relay peer as if a worker there had sent them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

from geartrain.cluster.limits import ClusterLimits, LimitsDb
from geartrain.protocol.packets import Packet
from geartrain.server.core import cluster as rules
from geartrain.server.core.engine import Engine
from geartrain.server.core.jobs import Job
from geartrain.server.core.lifecycle import (
    PAUSED_FUNCTION,
    DeadJob,
    KeptResult,
    dead_from_record,
    result_from_record,
)
from geartrain.server.core.overrides import OVERRIDE_FUNCTIONS, sync_overrides
from geartrain.server.core.peers import PacketSink, Peer
from geartrain.server.core.records import Removal, StoredJob
from geartrain.server.core.sides import Side
from geartrain.store.base import StoreError

log = logging.getLogger("geartrain.cluster")

DEFAULT_LEASE = 15.0
SAFETY_POLL = 1.0  # seconds: claims also happen this often without a wake-up, in case one was missed
CLAIM_LIMIT = 500  # jobs per claim statement
RETRY = 1.0  # seconds before listening again after the listening connection was lost
# Seconds a pause or resume (or a run-time policy or cron change) made on this node wins over the cluster's records
# as read back (the read may have begun before the change was stored; a store takes milliseconds, and refuses a change
# it cannot store at once).
PAUSE_SETTLE = 3.0
#: The life cycle's records every node reads back each poll, in one read: pauses, then run-time changes.
SHARED_RECORDS = (PAUSED_FUNCTION, *OVERRIDE_FUNCTIONS)
# The most dead records a node reads back (the newest): the dead set is bounded by each function's dead_max anyway.
DEAD_LIMIT = 100_000
# Expired kept results the leader deletes per statement, and statements per round of housekeeping: a node that
# kept results and died (or restarted) before they expired leaves them to the leader.
SWEEP_LIMIT = 1000
SWEEP_ROUNDS = 10


#: A claimed job, the node whose client waits for it (``None``: background), the nodes whose clients coalesced
#: onto it (watchers), and its failed attempts so far with the time of the first (a retry another node began).
Claimed = tuple[StoredJob, str | None, tuple[str, ...], tuple[int, float]]

#: A stored job's state for GET_STATUS: whether a node holds (runs) it, and its last WORK_STATUS.
Progress = tuple[bool, int, int]

#: An event that is no packet: the node named in its data has clients that coalesced onto the job.
WATCH = 0


class ClusterDb(Protocol):
    """What a node needs of the cluster's database."""

    @property
    def description(self) -> str: ...
    async def register(self, address: str) -> int: ...
    async def claim(self, function: bytes, limit: int) -> list[Claimed]: ...
    async def watch(self, keys: Sequence[tuple[bytes, bytes]]) -> dict[tuple[bytes, bytes], str]: ...
    async def renew(self, jobs_held: int) -> bool: ...
    async def still_stored(self, keys: Sequence[tuple[bytes, bytes]]) -> dict[tuple[bytes, bytes], Progress]: ...
    async def status(self, handles: Sequence[bytes]) -> dict[bytes, Progress]: ...
    async def set_progress(self, updates: Sequence[tuple[bytes, bytes, int, int]]) -> None: ...
    async def release(self, keys: Sequence[Removal]) -> None: ...
    async def release_all(self) -> int: ...
    async def lead(self) -> bool: ...
    async def rescue(self) -> int: ...
    async def sweep_results(self, limit: int) -> int: ...
    async def nodes(self) -> list[dict[str, Any]]: ...
    async def records(self, functions: Sequence[bytes]) -> list[tuple[bytes, bytes, bytes]]: ...
    async def dead_version(self) -> tuple[int, int]: ...
    async def dead_records(self, limit: int) -> list[StoredJob]: ...
    async def revive(self, moves: Sequence[tuple[Removal, StoredJob]]) -> list[int]: ...
    async def results(self, handles: Sequence[bytes]) -> list[StoredJob]: ...
    def notifications(self) -> AsyncIterator[tuple[bool, bytes]]: ...
    async def send_events(self, events: Sequence[tuple[str, bytes, bytes, int, bytes]]) -> None: ...
    async def take_events(self) -> list[tuple[bytes, bytes, int, bytes]]: ...
    def limits(self) -> LimitsDb: ...
    async def close(self) -> None: ...


OpenPeer = Callable[[str, PacketSink], Peer]


class Discard:
    """Where the output of the relay peer standing for other nodes' workers goes: nowhere (nobody reads it)."""

    def packets(self, packets: list[Packet]) -> None:
        pass

    def close(self) -> None:
        pass

    abort = close


class RelaySink:
    """The output of the relay peer standing for one node's clients: the packets of the jobs run for them, turned
    into events for that node (by stored key, since handles are each node's own)."""

    def __init__(self, cluster: ClusterNode, node: str) -> None:
        self.cluster = cluster
        self.node = node

    def packets(self, packets: list[Packet]) -> None:
        for packet in packets:
            if packet.args:
                self.cluster.relay(self.node, packet.type, packet.args)

    def close(self) -> None:
        pass

    abort = close


class ClusterNode:
    """Moves jobs between one node's engine and the cluster's database."""

    def __init__(
        self,
        db: ClusterDb,
        engine: Engine,
        flush: Callable[[], None],
        open_peer: OpenPeer,
        node: str,
        lease: float,
    ) -> None:
        self.db = db
        self.engine = engine
        self.flush = flush
        self.open_peer = open_peer
        self._relays: dict[str, Peer] = {}  # per node whose clients wait for jobs run here
        self._relayed: dict[tuple[bytes, str], tuple[bytes, bytes]] = {}  # (handle here, clients' node) -> stored key
        self._watched_misses: dict[tuple[bytes, bytes], int] = {}  # watched jobs not found in the store, per poll
        self._outgoing: list[tuple[str, bytes, bytes, int, bytes]] = []
        self._sending: asyncio.Task[None] | None = None
        self._incoming = asyncio.Event()
        self.node = node
        self.lease = lease
        self.leader = False
        self.suspended = False  # cannot renew its lease: hands out nothing
        self.claimed = 0  # jobs claimed from the cluster (counters for /metrics and the API)
        self.rescued = 0  # jobs this node, as leader, sent back after their node's lease lapsed
        self.known_nodes: list[dict[str, Any]] = []  # the cluster as of the last heartbeat
        self._wanted = asyncio.Event()
        self._revive_wanted = asyncio.Event()
        # The cluster's dead records as last read, and what they were read at (dead_version): read again on change.
        self._dead_version: tuple[int, int] | None = None
        self._dead_stored: list[DeadJob] = []
        self._lookups: set[asyncio.Task[None]] = set()  # `result` look-ups under way (held until they end)
        self._last_renewal = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []
        # Cluster-wide concurrency and rate (cluster/limits.py), with a policy file.
        shares = engine.lifecycle.shares if engine.lifecycle is not None else None
        self.limits = ClusterLimits(db.limits(), engine, shares, flush) if shares is not None else None

    async def start(self, address: str) -> None:
        """Join: enter the node table (handing back what an earlier run of this node held), then run."""
        handed_back = await self.db.register(address)
        if handed_back:
            log.warning("cluster: handed back %d jobs an earlier run of node %s held", handed_back, self.node)
        self.engine.cluster_relay = self.open_peer("cluster", Discard())
        if self.engine.lifecycle is not None:
            self.engine.lifecycle.on_revive = self._revive_wanted.set
        with contextlib.suppress(StoreError):  # before the first claim: a function paused elsewhere claims nothing
            await self._sync_lifecycle()
        loop = asyncio.get_running_loop()
        for work in (self._claims, self._listen, self._housekeeping, self._poll, self._receive, self._revive):
            self._tasks.append(loop.create_task(self._keep_running(work)))
        if self.limits is not None:
            self._tasks.append(loop.create_task(self._keep_running(self.limits.run)))
        log.warning("cluster: node %s joined on %s (lease %.0f s)", self.node, self.db.description, self.lease)

    async def _keep_running(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run one of the node's loops; a bug of ours in it is logged and the loop started again, rather than
        leaving the node without claims or lease renewals."""
        while True:
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cluster: internal error in %s; starting it again", work.__name__)
                await asyncio.sleep(RETRY)

    def kick(self) -> None:
        """Some worker here wants a job: claim soon."""
        self._wanted.set()
        if self.limits is not None:
            self.limits.kick()

    async def nodes(self) -> list[dict[str, Any]]:
        """Every node of the cluster (from the database)."""
        return await self.db.nodes()

    @property
    def ready(self) -> tuple[bool, str]:
        if self.suspended:
            return False, "cluster: cannot renew this node's lease; handing out nothing"
        return True, "ready"

    async def stop(self) -> None:
        """Leave: hand the queued jobs this node holds back to the cluster, at once rather than after the lease."""
        if self._sending is not None:  # results already sent by workers here reach their clients' nodes
            with contextlib.suppress(asyncio.TimeoutError, StoreError):
                await asyncio.wait_for(asyncio.shield(self._sending), 5)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.limits is not None:
            await self.limits.stop()
        self._release_queued()
        with contextlib.suppress(StoreError):
            handed_back = await self.db.release_all()
            if handed_back:
                log.warning("cluster: handed %d jobs back to the cluster", handed_back)
        await self.db.close()

    # ------------------------------------------------------------------ claims

    async def _claims(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            try:
                full = await self._claim_once()
            except StoreError as error:
                log.error("cluster: claim failed: %s", error)
                await asyncio.sleep(RETRY)
                continue
            if full:
                self._wanted.set()  # more may be waiting: claim again without waiting for a wake-up

    async def _claim_once(self) -> bool:
        if self.engine.watch_requests:
            await self._watch()
        if self.engine.status_lookups:
            await self._look_up_status()
        full = False
        for function, want in rules.wanted(self.engine).items():
            limit = min(want, CLAIM_LIMIT)
            jobs = await self.db.claim(function, limit)
            if not jobs:
                continue
            now = time.time()
            if self.suspended:  # lost the lease while claiming: these go back at once
                await self.db.release([Removal(job.key, job.function) for job, _, _, _ in jobs])
                return False
            lifecycle = self.engine.lifecycle
            for stored, client_node, watchers, (attempts, first_failed) in jobs:
                job = self.engine.restore(stored, now)
                job.function.stats.claimed += 1  # submitted on whichever node stored it
                if attempts and lifecycle is not None:  # a retry another node began: its attempts count on here
                    lifecycle.restore_failures(job, Side(job.meta, attempts, first_failed), now)
                if client_node is not None:
                    rules.run_for(self.engine, job, self._relay_for(client_node))
                    self._relayed[(job.handle, client_node)] = (stored.key, stored.function)
                for watcher in watchers:
                    self._watch_for(job, watcher)
            self.claimed += len(jobs)
            self.flush()
            if self.limits is not None:
                self.limits.kick()  # jobs to start: slots or tokens may be wanted
            full = full or len(jobs) == limit
        return full

    async def _listen(self) -> None:
        while True:
            try:
                async for is_event, name in self.db.notifications():
                    if is_event:
                        if name == self.node.encode():
                            self._incoming.set()
                        continue
                    known = self.engine.functions.get(name)
                    if known is not None and known.worker_count:
                        self._wanted.set()
            except StoreError as error:
                log.error("cluster: lost the wake-up channel (%s); listening again", error)
            await asyncio.sleep(RETRY)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(SAFETY_POLL)
            if self.engine.lifecycle is not None:
                try:
                    await self._sync_lifecycle()
                except StoreError as error:
                    log.debug("cluster: cannot read the pause list, policy changes or the dead set: %s", error)
                if self.engine.lifecycle.revive_requests:
                    self._revive_wanted.set()
            self._wanted.set()
            if self.engine.remote_jobs:
                self._incoming.set()
            if self.engine.watched or self._watched_misses:
                with contextlib.suppress(StoreError):
                    await self._check_watched()
            if self.engine.progress:
                progress = self.engine.progress
                self.engine.progress = {}
                with contextlib.suppress(StoreError):
                    await self.db.set_progress([(*key, *numbers) for key, numbers in progress.items()])

    async def _sync_lifecycle(self) -> None:
        """The life cycle's pauses are the cluster's: `pause F` on any node stores a record every node reads here
        (within :data:`SAFETY_POLL`), so no node hands out, or claims, a paused function's jobs. So are run-time
        policy and cron changes (`policy set`, `cron add`...): the same read brings them."""
        lifecycle = self.engine.lifecycle
        if lifecycle is None:
            return
        shared = await self.db.records(SHARED_RECORDS)
        stored = {key for function, key, _ in shared if function == PAUSED_FUNCTION}
        paused, resumed = lifecycle.sync_paused(stored, time.time(), PAUSE_SETTLE)
        for function in paused:
            log.warning("cluster: %s paused on another node", function.decode("utf-8", "replace"))
        for function in resumed:
            log.warning("cluster: %s resumed on another node", function.decode("utf-8", "replace"))
        changes = sync_overrides(
            lifecycle, [record for record in shared if record[0] != PAUSED_FUNCTION], time.time(), PAUSE_SETTLE
        )
        for change in changes:
            log.warning("cluster: %s on another node", change)
        if resumed or changes:
            self.flush()  # sleeping workers were woken (a resume, a limit lifted): their NOOPs go now
            self._wanted.set()
        # The dead set: every node's dead jobs, as the table holds them (read again only when they changed: the
        # count and the sum of their sequence numbers tell, without reading the records).
        version = await self.db.dead_version()
        if version != self._dead_version:
            records = await self.db.dead_records(DEAD_LIMIT)
            self._dead_stored = [dead for record in records if (dead := dead_from_record(record)) is not None]
            self._dead_version = version
        lifecycle.sync_dead(self._dead_stored, time.time(), PAUSE_SETTLE)

    async def _revive(self) -> None:
        """``dead retry`` on this node: move the dead records back into the queue. The database decides which are
        still dead (a job retried on two nodes at once, or already retried elsewhere, is queued once); the jobs go
        to whichever node claims them. A move that fails leaves them dead (listed again at the next read)."""
        while True:
            await self._revive_wanted.wait()
            self._revive_wanted.clear()
            lifecycle = self.engine.lifecycle
            if lifecycle is None or not lifecycle.revive_requests:
                continue
            requests, lifecycle.revive_requests = lifecycle.revive_requests, []
            try:
                moved = await self.db.revive([(dead.removal(), dead.revived()) for dead in requests])
            except StoreError as error:
                log.error("cluster: cannot queue %d dead jobs again (%s); they stay dead", len(requests), error)
                continue
            for position in moved:
                self.engine.function(requests[position].function).stats.revived += 1
            if len(moved) < len(requests):
                log.info("cluster: %d of %d dead jobs were no longer dead", len(requests) - len(moved), len(requests))
            self._dead_version = None  # read back at the next poll

    # ------------------------------------------------------------------ foreground jobs across nodes

    def _release_queued(self) -> list[Removal]:
        released = rules.release_queued(self.engine, self._relays.values())
        for handle, node in list(self._relayed):
            job = self.engine.jobs.get(handle)
            if job is None or not job.clients:  # released: no packet of it goes back from here
                del self._relayed[(handle, node)]
        return released

    def _relay_for(self, node: str) -> Peer:
        relay = self._relays.get(node)
        if relay is None or relay.closed:
            relay = self.open_peer(f"cluster:{node}", RelaySink(self, node))
            relay.exceptions = True  # the client's node decides who hears of an exception
            self._relays[node] = relay
        return relay

    def relay(self, node: str, ptype: int, args: Sequence[bytes]) -> None:
        """A packet the engine sent to the relay of ``node``'s clients: queue it for that node."""
        entry = self._relayed.get((args[0], node))
        if entry is None:
            return
        if ptype in rules.ENDINGS:
            del self._relayed[(args[0], node)]
        key, function = entry
        self._outgoing.append((node, key, function, ptype, b"\0".join(args[1:])))
        if self._sending is None or self._sending.done():
            self._sending = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        while self._outgoing:
            events, self._outgoing = self._outgoing, []
            for attempt in range(30):
                try:
                    await self.db.send_events(events)
                    break
                except StoreError as error:
                    log.error("cluster: cannot send results to the clients' nodes (%s); retrying", error)
                    await asyncio.sleep(min(0.1 * 2**attempt, 5.0))

    async def _receive(self) -> None:
        while True:
            await self._incoming.wait()
            self._incoming.clear()
            try:
                events = await self.db.take_events()
            except StoreError as error:
                log.error("cluster: cannot read results for this node's clients (%s)", error)
                await asyncio.sleep(RETRY)
                self._incoming.set()
                continue
            now = time.time()
            for key, function, ptype, data in events:
                if ptype == WATCH:
                    job = rules.held_job(self.engine, key, function)
                    if job is not None:  # gone: the watcher finds it gone from the store and submits it again
                        self._watch_for(job, data.decode("utf-8", "replace"))
                    continue
                rest = tuple(data.split(b"\0", 1)) if ptype in rules.SPLIT_TWICE else (data,)
                rules.relayed(self.engine, key, function, ptype, rest, now)
            if events:
                self.flush()

    def _watch_for(self, job: Job, node: str) -> None:
        """Clients on ``node`` coalesced onto ``job``, held here: relay its packets to that node too."""
        if job.store_key is not None and rules.watch_for(job, self._relay_for(node)):
            self._relayed[(job.handle, node)] = (job.store_key, job.function.name)

    async def _watch(self) -> None:
        """Clients here coalesced onto jobs other nodes stored first: note this node on each in the store (the node
        that claims one later relays to it) and tell the node that holds one now; a job already gone is stored
        again for them."""
        requests = list(self.engine.watch_requests)
        self.engine.watch_requests.clear()
        try:
            owners = await self.db.watch(requests)
        except StoreError:
            self.engine.watch_requests.extend(requests)  # again at the next claim
            raise
        events = []
        for key, function in requests:
            owner = owners.get((key, function))
            if owner is None:
                rules.submit_again(self.engine, key, function)
            elif owner:
                events.append((owner, key, function, WATCH, self.node.encode()))
        if events:
            await self.db.send_events(events)
        self.flush()

    async def _look_up_status(self) -> None:
        """GET_STATUS of jobs this node does not hold: the store knows the jobs of every node by handle."""
        engine = self.engine
        lookups = list(engine.status_lookups)
        engine.status_lookups.clear()
        handles = list({handle for handle, _, _ in lookups})
        try:
            found = await self.db.status(handles)
            missing = [handle for handle in handles if handle not in found]
            if missing and engine.lifecycle is not None:
                for kept in await self._kept_results(missing):
                    found[kept.handle] = (False, 1, 1)  # known and finished, as on the node that keeps it
        except StoreError as error:
            log.error("cluster: cannot look up a job's status (%s); answered unknown", error)
            found = {}
        for handle, unique, ack in lookups:
            engine.status_found(handle, unique, ack, found.get(handle))
        self.flush()

    async def _kept_results(self, handles: Sequence[bytes]) -> list[KeptResult]:
        """The kept results (result_ttl) other nodes stored under these handles, those not expired."""
        now = time.time()
        found = [result_from_record(record) for record in await self.db.results(handles)]
        return [kept for kept in found if kept is not None and kept.expires > now]

    async def result(self, handle: bytes) -> KeptResult | None:
        """How a background job ended, kept by whichever node ran it (this node's own are the engine's); raises
        StoreError when the database cannot say."""
        kept = await self._kept_results([handle])
        return kept[0] if kept else None

    def look_up_result(self, handle: bytes, answer: Callable[[KeptResult | None], None]) -> None:
        """The admin ``result`` for a handle this node keeps no result of: ``answer`` is called with what the
        database keeps (``None``: nothing, or the database cannot say), then the node's output is flushed."""

        async def look_up() -> None:
            try:
                kept = await self.result(handle)
            except StoreError as error:
                log.error("cluster: cannot look up a kept result (%s); answered unknown", error)
                kept = None
            answer(kept)
            self.flush()

        task = asyncio.get_running_loop().create_task(look_up())
        self._lookups.add(task)
        task.add_done_callback(self._lookups.discard)

    async def _check_watched(self) -> None:
        """Jobs this node's clients coalesced onto that are gone from the store without their result (twice in a
        row: a result is sent just after its deletion) are submitted again for them."""
        engine = self.engine
        misses = self._watched_misses
        for remote in [remote for remote in misses if remote not in engine.watched]:
            del misses[remote]
        if not engine.watched:
            return
        watched = list(engine.watched)
        stored = await self.db.still_stored(watched)
        for remote in watched:
            if remote in stored:
                misses.pop(remote, None)
            elif misses.get(remote, 0) >= 1:
                del misses[remote]
                rules.submit_again(engine, *remote)
            else:
                misses[remote] = 1
        self.flush()

    # ------------------------------------------------------------------ lease and leader

    async def _housekeeping(self) -> None:
        while True:
            await self._renew()
            if not self.suspended:
                await self._lead()
                with contextlib.suppress(StoreError):
                    self.known_nodes = await self.db.nodes()
            await asyncio.sleep(self.lease / 3)

    def status_rows(self) -> list[tuple[bytes | int, ...]]:
        """`status cluster`: the nodes as of the last heartbeat (this node's database view)."""
        return [
            (
                str(node["node"]).encode(),
                str(node["address"]).encode(),
                round(float(node["heartbeat_age"])),
                int(node["jobs"]),
                int(bool(node["leader"])),
            )
            for node in self.known_nodes
        ]

    @property
    def jobs_held(self) -> int:
        return sum(1 for job in self.engine.jobs.values() if job.store_key is not None)

    async def _renew(self) -> None:
        engine = self.engine
        try:
            forgotten = await self.db.renew(self.jobs_held)
        except StoreError as error:
            silent_for = time.monotonic() - self._last_renewal
            if not self.suspended and silent_for >= self.lease * 2 / 3:
                self.suspended = True
                engine.hold_queued = True  # workers get NO_JOB: the leader will give these jobs to others
                log.error("cluster: no lease renewal for %.0f s (%s): handing out nothing", silent_for, error)
            return
        if forgotten:
            silent = time.monotonic() - self._last_renewal
            log.warning("cluster: this node was forgotten by the cluster (silent for %.0f s); entered again", silent)
            # Its clients' jobs waiting in the store were dropped with it: looked for, and stored again if gone.
            engine.watched.update(engine.remote_jobs)
        self._last_renewal = time.monotonic()
        if self.suspended:
            released = self._release_queued()
            try:
                await self.db.release(released)  # those still ours; others may already run the rest
            except StoreError:
                return
            self.suspended = False
            engine.hold_queued = engine.refuse_submits is not None  # a drain under way keeps holding them
            log.warning("cluster: lease renewed; handed back %d queued jobs and rejoined", len(released))
            self.flush()
            self._wanted.set()

    async def _lead(self) -> None:
        try:
            leading = await self.db.lead()
            if leading != self.leader:
                log.warning("cluster: node %s %s the leader", self.node, "is now" if leading else "is no longer")
            self.leader = leading
            if self.engine.lifecycle is not None:
                self.engine.lifecycle.fires_here = leading  # cron: the leader alone submits each firing
            if leading:
                rescued = await self.db.rescue()
                if rescued:
                    self.rescued += rescued
                    log.warning("cluster: %d jobs of lapsed leases sent back to the cluster", rescued)
                await self._sweep_results()
        except StoreError as error:
            log.error("cluster: housekeeping failed: %s", error)

    async def _sweep_results(self) -> None:
        """Delete the kept results (result_ttl) past their time that no node deletes: the node that kept them
        deletes its own when they expire, but not once it died or restarted (a restarted node knows only what it
        keeps). Bounded: at most :data:`SWEEP_ROUNDS` statements of :data:`SWEEP_LIMIT` rows a round."""
        swept = 0
        for _ in range(SWEEP_ROUNDS):
            count = await self.db.sweep_results(SWEEP_LIMIT)
            swept += count
            if count < SWEEP_LIMIT:
                break
        if swept:
            log.info("cluster: deleted %d expired kept results", swept)
