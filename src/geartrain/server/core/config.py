"""The engine's settings: a frozen record of every rule switch the server's flags can turn."""

from __future__ import annotations

from dataclasses import dataclass

VERBOSE_LEVELS = ("FATAL", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG")

# Cluster mode: jobs a node holds per registered worker (see geartrain.server.core.cluster.wanted). A worker
# finishing one finds the next here, not in the database, and one claim serves many jobs; the node claims again
# when its queue is down to half of that.
CLUSTER_PREFETCH = 16


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Rules of the job engine.

    ``job_retries``: a job is dropped (its clients get WORK_FAIL) when it has been handed out this many times
    without a result; 0 = unlimited (gearmand 1.1.20's meaning). ``worker_wakeup``: how many sleeping workers
    one new job wakes; 0 = all. ``round_robin``: a worker's function that just supplied a job moves to the back
    of its list. ``global_priority``: serve a worker's highest-priority job across all its functions (gearmand
    2.0) instead of per function in registration order (1.1.20). ``exceptions``: forward WORK_EXCEPTION to every
    client, not only to those that asked with OPTION_REQ. ``min_worker_timeout``: CAN_DO_TIMEOUT values below
    this many seconds are raised to it, as gearmand raises 1-999 ms to one second. ``persistent``: background jobs
    go to a store and are acknowledged once it holds them. ``max_queued_bytes``: the workloads of every job the
    server holds may add up to this many bytes; a submit beyond it gets ERROR QUEUE_ERROR (0 = no cap).
    ``hold_after_result``: on a persistent server, a worker's next reply after the result of a stored job waits until
    the store has deleted it (``--store-ack all``, the default); ``False`` sends it at once and the deletion follows
    in the next transaction (``--store-ack submits``).
    """

    handle_prefix: bytes = b"H:localhost"
    job_retries: int = 0
    worker_wakeup: int = 0
    round_robin: bool = False
    global_priority: bool = False
    exceptions: bool = False
    version: str = "1.1.20+geartrain"
    verbose: str = "ERROR"
    pid: int = 0
    hashtable_buckets: int = 991
    min_worker_timeout: float = 1.0
    persistent: bool = False
    max_queued_bytes: int = 0
    hold_after_result: bool = True
    #: In a cluster the store is the queue of record: a background job enters this node's queues only when this
    #: node claims it (or keeps it at submit, for an idle worker of its own). See geartrain.server.core.cluster.
    cluster: bool = False

    @property
    def side_records(self) -> bool:
        """Whether jobs get side records (core/sides.py): on a persistent server, not in a cluster (whose table
        hands every record to claims)."""
        return self.persistent and not self.cluster
