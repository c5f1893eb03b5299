"""geartrain: a Gearman-compatible job server, client and worker library, and tools.

The public names below are imported on first use (PEP 562), so that importing the sans-IO protocol or the server
core does not load asyncio and the client libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from geartrain import _pure

__version__ = "0.1.0"

_pure.install_if_requested()  # GEARTRAIN_PURE_PYTHON=1: the .py source even where a compiled module is installed

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "AdminClient": "geartrain.admin",
    "AdminError": "geartrain.errors",
    "Client": "geartrain.client",
    "ConnectionLost": "geartrain.errors",
    "ErrorCode": "geartrain.errors",
    "FunctionStatus": "geartrain.admin",
    "GearmanError": "geartrain.errors",
    "GearmanTimeout": "geartrain.errors",
    "Job": "geartrain.client",
    "JobData": "geartrain.worker",
    "JobEvent": "geartrain.client",
    "JobException": "geartrain.errors",
    "JobFailed": "geartrain.errors",
    "JobInfo": "geartrain.admin",
    "JobStatus": "geartrain.client",
    "NoServersAvailable": "geartrain.errors",
    "Priority": "geartrain.protocol.packets",
    "PriorityStatus": "geartrain.admin",
    "ProtocolError": "geartrain.errors",
    "ServerError": "geartrain.errors",
    "SyncAdminClient": "geartrain.admin",
    "SyncClient": "geartrain.client",
    "SyncJob": "geartrain.client",
    "SyncWorker": "geartrain.worker",
    "ThreadJob": "geartrain.worker",
    "UniqueStatus": "geartrain.client",
    "WorkComplete": "geartrain.client",
    "WorkData": "geartrain.client",
    "WorkException": "geartrain.client",
    "WorkFail": "geartrain.client",
    "WorkStatus": "geartrain.client",
    "WorkWarning": "geartrain.client",
    "Worker": "geartrain.worker",
    "WorkerInfo": "geartrain.admin",
    "WorkerJob": "geartrain.worker",
}

__all__ = [
    "AdminClient",
    "AdminError",
    "Client",
    "ConnectionLost",
    "ErrorCode",
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'geartrain' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # the same names, for type checkers and editors
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
        ErrorCode,
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
