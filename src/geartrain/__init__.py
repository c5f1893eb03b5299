"""geartrain: a Gearman-compatible job server, client and worker library, and tools."""

from geartrain.admin import AdminClient, FunctionStatus, JobInfo, PriorityStatus, SyncAdminClient, WorkerInfo
from geartrain.client import (
    Client,
    Job,
    JobEvent,
    JobStatus,
    SyncClient,
    SyncJob,
    UniqueStatus,
    WorkComplete,
    WorkData,
    WorkException,
    WorkFail,
    WorkStatus,
    WorkWarning,
)
from geartrain.errors import (
    AdminError,
    ConnectionLost,
    GearmanError,
    GearmanTimeout,
    JobException,
    JobFailed,
    NoServersAvailable,
    ProtocolError,
    ServerError,
)
from geartrain.protocol.packets import Priority
from geartrain.worker import JobData, SyncWorker, ThreadJob, Worker, WorkerJob

__version__ = "0.1.0"

__all__ = [
    "AdminClient",
    "AdminError",
    "Client",
    "ConnectionLost",
    "FunctionStatus",
    "GearmanError",
    "GearmanTimeout",
    "Job",
    "JobData",
    "JobEvent",
    "JobException",
    "JobFailed",
    "JobInfo",
    "JobStatus",
    "NoServersAvailable",
    "Priority",
    "PriorityStatus",
    "ProtocolError",
    "ServerError",
    "SyncAdminClient",
    "SyncClient",
    "SyncJob",
    "SyncWorker",
    "ThreadJob",
    "UniqueStatus",
    "WorkComplete",
    "WorkData",
    "WorkException",
    "WorkFail",
    "WorkStatus",
    "WorkWarning",
    "Worker",
    "WorkerInfo",
    "WorkerJob",
    "__version__",
]
