"""The Gearman worker: asyncio :class:`Worker` and its blocking form :class:`SyncWorker`."""

from geartrain.worker.job import JobData, ThreadJob, WorkerJob
from geartrain.worker.sync import SyncWorker
from geartrain.worker.worker import Worker

__all__ = ["JobData", "SyncWorker", "ThreadJob", "Worker", "WorkerJob"]
