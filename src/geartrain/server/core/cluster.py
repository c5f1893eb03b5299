"""The engine's side of a cluster (pure): which jobs this node wants from the store, and letting go of the ones it
holds. The database work (claims, leases, wake-ups) is :mod:`geartrain.cluster`'s.

In a cluster the store is the queue of record. A background job enters a node's queues when the node claims it
(:func:`wanted` says how many, per function) or keeps it at submit for a sleeping worker of its own
(``DurableRules._keep_here``); it leaves them when a worker finishes it (the store deletes it), or when the node
lets go of it (:func:`release_queued`: the node lost its lease, or stops), and then any node may claim it again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from geartrain.protocol.packets import PacketType
from geartrain.server.core.config import CLUSTER_PREFETCH
from geartrain.server.core.engine import Engine
from geartrain.server.core.jobs import Job
from geartrain.server.core.peers import Peer
from geartrain.server.core.queues import PRIORITIES
from geartrain.server.core.records import Removal, unique_from_key

# Jobs held per registered worker. A node refills when its queue is down to half of that (a worker taking a job then
# marks the function hungry); what it holds but has not started goes back to the cluster if it dies, unrun.
PREFETCH = CLUSTER_PREFETCH


def wanted(engine: Engine, prefetch: int = PREFETCH) -> dict[bytes, int]:
    """Per function with workers here: how many more jobs this node should claim (nothing while it holds them
    back, as when it cannot renew its lease)."""
    if engine.hold_queued:
        return {}
    if engine.hungry:
        engine.hungry.clear()
    shares = engine.lifecycle.shares if engine.lifecycle is not None else None
    slots = shares.slots if shares is not None else {}
    wants: dict[bytes, int] = {}
    for name, function in engine.functions.items():
        workers = function.worker_count
        if not workers or function.paused:  # a paused function's jobs stay for whichever node may run them
            continue
        held = sum(function.queued)
        target = workers * prefetch
        if name in slots:
            # Cluster-wide concurrency: no more than the slots this node holds let it start, and one a worker
            # besides, which is how it shows the cluster that it could use more (Shares.demand); the rest stays
            # for the nodes holding the slots.
            target = min(target, max(0, slots[name] - function.running) + workers)
        if function.sleepers or held <= target // 2:
            want = target - held
            if want > 0:
                wants[name] = want
    return wants


def release_queued(engine: Engine, relays: Iterable[Peer] = ()) -> list[Removal]:
    """Take every queued job this node holds for the store off its queues, without deleting it from the store;
    returns their keys, for the store to hand them back to the cluster. Jobs with a foreground client here stay
    (their client waits on this node), unless their clients are all ``relays`` (they wait on another node, and
    the job goes back to the cluster as it came); running jobs stay with their workers."""
    released: list[Removal] = []
    relayed = set(relays)
    for function in engine.functions.values():
        for priority in PRIORITIES:
            queue = function.queues[priority]
            kept: deque[Job] = deque()
            while queue:
                job = queue.popleft()
                if job.store_key is None or job.ignore or any(c not in relayed for c in job.clients):
                    kept.append(job)
                    continue
                function.queued[priority] -= 1
                released.append(Removal(job.store_key, function.name))
                for client in job.clients:
                    client.waiting.discard(job)
                job.clients = ()
                job.store_key = None  # gone from here, not from the store
                engine._free(job)
            queue.extend(kept)
    return released


# ---------------------------------------------------------------------- foreground jobs across nodes

#: The packets a runner sends back to the node whose client waits; the last three end the job.
RELAYED = (
    PacketType.WORK_DATA,
    PacketType.WORK_WARNING,
    PacketType.WORK_STATUS,
    PacketType.WORK_COMPLETE,
    PacketType.WORK_FAIL,
    PacketType.WORK_EXCEPTION,
)
ENDINGS = frozenset((PacketType.WORK_COMPLETE, PacketType.WORK_FAIL, PacketType.WORK_EXCEPTION))
SPLIT_TWICE = frozenset((PacketType.WORK_STATUS,))  # handle, numerator, denominator: two arguments after the handle


def run_for(engine: Engine, job: Job, relay: Peer) -> None:
    """A claimed job whose client waits on another node (``relay`` stands for that node's clients): run it as a
    foreground job of the relay's, so every packet its worker sends reaches the relay's output."""
    job.background = False
    job.clients = (relay,)
    relay.waiting.add(job)


def held_job(engine: Engine, key: bytes, function: bytes) -> Job | None:
    """The job this node holds under a stored key (claimed, or kept at submit), if it still does."""
    known = engine.functions.get(function)
    if known is None:
        return None
    job = known.by_unique.get(unique_from_key(key))
    return job if job is not None and job.store_key == key and not job.ignore else None


def watch_for(job: Job, relay: Peer) -> bool:
    """Clients on another node (``relay`` stands for them) coalesced onto a job this node holds: every packet its
    worker sends from now on reaches them too, as gearmand adds a client to a job with the same unique. ``False``
    when the relay is already one of its clients."""
    if relay in job.clients:
        return False
    job.clients += (relay,)
    relay.waiting.add(job)
    return True


def submit_again(engine: Engine, key: bytes, function: bytes) -> None:
    """The job this node's clients coalesced onto is gone from the store without a result reaching them (it ended
    as they joined, or its own client left and it was dropped): store it again as theirs, as gearmand makes a new
    job when a unique's job is gone. If yet another node stored one first meanwhile, they coalesce onto that."""
    remote = (key, function)
    job = engine.remote_jobs.pop(remote, None)
    engine.watched.discard(remote)
    relay = engine.cluster_relay
    if job is None or relay is None or relay.assigned.get(job.handle) is not job:
        return
    del relay.assigned[job.handle]
    job.worker = None
    job.function.running -= 1
    job.store_key = None
    engine._record_add(job, fresh=True, waiting=True)


def relayed(engine: Engine, key: bytes, function: bytes, ptype: int, rest: tuple[bytes, ...], now: float) -> None:
    """A packet the runner of a job of this node's client sent back: hand it to the engine as if a worker here
    had sent it, under this node's handle (unknown jobs, whose client left meanwhile, are ignored)."""
    relay = engine.cluster_relay
    job = engine.remote_jobs.get((key, function))
    if relay is None or job is None or relay.assigned.get(job.handle) is not job:
        engine.remote_jobs.pop((key, function), None)
        return
    if ptype in ENDINGS:
        del engine.remote_jobs[(key, function)]
        engine.watched.discard((key, function))
        job.store_key = None  # the runner deleted the record
    engine.handle(relay, ptype, (job.handle, *rest), now)
