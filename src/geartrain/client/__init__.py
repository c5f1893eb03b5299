"""The Gearman client: asyncio :class:`Client` and its blocking form :class:`SyncClient`."""

from geartrain.client.client import Client
from geartrain.client.events import (
    JobEvent,
    JobStatus,
    UniqueStatus,
    WorkComplete,
    WorkData,
    WorkException,
    WorkFail,
    WorkStatus,
    WorkWarning,
)
from geartrain.client.job import Job
from geartrain.client.sync import SyncClient, SyncJob

__all__ = [
    "Client",
    "Job",
    "JobEvent",
    "JobStatus",
    "SyncClient",
    "SyncJob",
    "UniqueStatus",
    "WorkComplete",
    "WorkData",
    "WorkException",
    "WorkFail",
    "WorkStatus",
    "WorkWarning",
]
