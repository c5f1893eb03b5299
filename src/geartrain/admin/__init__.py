"""Admin protocol client: gearmand's text commands, answered as typed records."""

from geartrain.admin.client import AdminClient
from geartrain.admin.records import FunctionStatus, JobInfo, PriorityStatus, WorkerInfo
from geartrain.admin.sync import SyncAdminClient

__all__ = ["AdminClient", "FunctionStatus", "JobInfo", "PriorityStatus", "SyncAdminClient", "WorkerInfo"]
