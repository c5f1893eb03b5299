"""The blocking form of :class:`~geartrain.admin.client.AdminClient`, on a private loop thread."""

from __future__ import annotations

from collections.abc import Sequence
from ssl import SSLContext
from typing import Any

from geartrain.admin.client import AdminClient
from geartrain.admin.records import FunctionStatus, JobInfo, PriorityStatus, WorkerInfo
from geartrain.client.loopthread import LoopThread
from geartrain.client.transport import ServerSpec


class SyncAdminClient:
    """Same commands as :class:`~geartrain.admin.client.AdminClient`, without ``await``."""

    def __init__(
        self,
        server: ServerSpec = "localhost:4730",
        *,
        timeout: float | None = 10.0,
        tls: SSLContext | None = None,
        secret: str | None = None,
    ) -> None:
        self._thread = LoopThread("geartrain-admin")
        self.admin = AdminClient(server, timeout=timeout, tls=tls, secret=secret)

    def __enter__(self) -> SyncAdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._thread.closed:
            try:
                self._thread.run(self.admin.close(), timeout=10)
            finally:
                self._thread.stop()

    def status(self) -> list[FunctionStatus]:
        return self._thread.run(self.admin.status())

    def priority_status(self) -> list[PriorityStatus]:
        return self._thread.run(self.admin.priority_status())

    def workers(self) -> list[WorkerInfo]:
        return self._thread.run(self.admin.workers())

    def show_jobs(self) -> list[JobInfo]:
        return self._thread.run(self.admin.show_jobs())

    def show_unique_jobs(self) -> list[str]:
        return self._thread.run(self.admin.show_unique_jobs())

    def version(self) -> str:
        return self._thread.run(self.admin.version())

    def verbose(self) -> str:
        return self._thread.run(self.admin.verbose())

    def getpid(self) -> int:
        return self._thread.run(self.admin.getpid())

    def cancel_job(self, handle: str) -> bool:
        return self._thread.run(self.admin.cancel_job(handle))

    def create_function(self, name: str) -> None:
        self._thread.run(self.admin.create_function(name))

    def drop_function(self, name: str) -> None:
        self._thread.run(self.admin.drop_function(name))

    def maxqueue(self, function: str, *sizes: int) -> None:
        self._thread.run(self.admin.maxqueue(function, *sizes))

    def shutdown(self, graceful: bool = False) -> None:
        self._thread.run(self.admin.shutdown(graceful))

    # ------------------------------------------------------------------ the job life cycle (geartrain, --policy-file)

    def dead_list(self, function: str | None = None) -> list[dict[str, Any]]:
        return self._thread.run(self.admin.dead_list(function))

    def dead_show(self, handle: str) -> dict[str, Any]:
        return self._thread.run(self.admin.dead_show(handle))

    def dead_retry(self, selector: str) -> int:
        return self._thread.run(self.admin.dead_retry(selector))

    def dead_delete(self, selector: str) -> int:
        return self._thread.run(self.admin.dead_delete(selector))

    def pause(self, function: str) -> None:
        self._thread.run(self.admin.pause(function))

    def resume(self, function: str) -> None:
        self._thread.run(self.admin.resume(function))

    def paused(self) -> list[str]:
        return self._thread.run(self.admin.paused())

    def cron_list(self) -> list[dict[str, Any]]:
        return self._thread.run(self.admin.cron_list())

    def cron_add(self, function: str, schedule: str, **options: str) -> int:
        return self._thread.run(self.admin.cron_add(function, schedule, **options))

    def cron_remove(self, function: str, schedule: str | None = None) -> int:
        return self._thread.run(self.admin.cron_remove(function, schedule))

    def policy_show(self, function: str | None = None) -> dict[str, Any]:
        return self._thread.run(self.admin.policy_show(function))

    def policy_set(self, function: str, settings: dict[str, str]) -> None:
        self._thread.run(self.admin.policy_set(function, settings))

    def policy_unset(self, function: str, keys: Sequence[str] = ()) -> None:
        self._thread.run(self.admin.policy_unset(function, keys))

    def result(self, handle: str) -> dict[str, Any]:
        return self._thread.run(self.admin.result(handle))

    def status_json(self) -> dict[str, Any] | None:
        return self._thread.run(self.admin.status_json())

    def command(self, line: str) -> list[bytes]:
        return self._thread.run(self.admin.command(line))
