"""The Gearman client: asyncio :class:`Client` and its blocking form :class:`SyncClient`.

The names below are imported on first use (PEP 562), as in :mod:`geartrain`: the shared connection layer of this
package (``transport``, ``loopthread``) is used by the worker, the admin client and the manager, and importing it
should not load the client, which itself uses the admin client (``Client.cancel``) and would close an import
cycle ``client`` -> ``admin`` -> ``client``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "Client": "geartrain.client.client",
    "Job": "geartrain.client.job",
    "JobEvent": "geartrain.client.events",
    "JobStatus": "geartrain.client.events",
    "SyncClient": "geartrain.client.sync",
    "SyncJob": "geartrain.client.sync",
    "UniqueStatus": "geartrain.client.events",
    "WorkComplete": "geartrain.client.events",
    "WorkData": "geartrain.client.events",
    "WorkException": "geartrain.client.events",
    "WorkFail": "geartrain.client.events",
    "WorkStatus": "geartrain.client.events",
    "WorkWarning": "geartrain.client.events",
}

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'geartrain.client' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # the same names, for type checkers and editors
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
