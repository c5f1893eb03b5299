"""python-gearman 2.x's API on geartrain: change ``import gearman`` to ``from geartrain.compat import gearman``.

``GearmanClient``, ``GearmanWorker``, ``GearmanAdminClient``, ``DataEncoder``, the ``PRIORITY_*`` and ``JOB_*``
constants, and the ``gearman.errors`` / ``gearman.constants`` / ``gearman.job`` / ``gearman.client`` /
``gearman.worker`` / ``gearman.admin_client`` namespaces (``from geartrain.compat.gearman.errors import
ServerUnavailable`` works too). See docs/cli.md ("python-gearman scripts") for what differs.
"""

from __future__ import annotations

import logging
import sys
import types

from geartrain.compat import _admin, _client, _errors, _jobs, _worker
from geartrain.compat._admin import GearmanAdminClient
from geartrain.compat._client import GearmanClient
from geartrain.compat._errors import (
    DEFAULT_GEARMAN_PORT,
    JOB_COMPLETE,
    JOB_CREATED,
    JOB_FAILED,
    JOB_PENDING,
    JOB_UNKNOWN,
    PRIORITY_HIGH,
    PRIORITY_LOW,
    PRIORITY_NONE,
    ConnectionError,
    ExceededConnectionAttempts,
    GearmanError,
    InvalidAdminClientState,
    InvalidClientState,
    InvalidWorkerState,
    ProtocolError,
    ServerUnavailable,
    UnknownCommandError,
)
from geartrain.compat._jobs import BytesEncoder, DataEncoder, GearmanJob, GearmanJobRequest, NoopEncoder
from geartrain.compat._worker import GearmanWorker

__version__ = "2.0.2"  # the python-gearman API this mirrors


def _namespace(name: str, doc: str, **members: object) -> types.ModuleType:
    module = types.ModuleType(f"{__name__}.{name}", doc)
    module.__dict__.update(members)
    sys.modules[module.__name__] = module  # so that `from geartrain.compat.gearman.errors import X` works
    return module


_ERRORS = (
    GearmanError,
    ConnectionError,
    ServerUnavailable,
    ProtocolError,
    UnknownCommandError,
    ExceededConnectionAttempts,
    InvalidClientState,
    InvalidWorkerState,
    InvalidAdminClientState,
)
errors = _namespace("errors", _errors.__doc__ or "", **{cls.__name__: cls for cls in _ERRORS})
constants = _namespace(
    "constants",
    "python-gearman's constants.",
    DEFAULT_GEARMAN_PORT=DEFAULT_GEARMAN_PORT,
    PRIORITY_NONE=PRIORITY_NONE,
    PRIORITY_LOW=PRIORITY_LOW,
    PRIORITY_HIGH=PRIORITY_HIGH,
    JOB_UNKNOWN=JOB_UNKNOWN,
    JOB_PENDING=JOB_PENDING,
    JOB_CREATED=JOB_CREATED,
    JOB_FAILED=JOB_FAILED,
    JOB_COMPLETE=JOB_COMPLETE,
)
job = _namespace("job", _jobs.__doc__ or "", GearmanJob=GearmanJob, GearmanJobRequest=GearmanJobRequest)
client = _namespace("client", _client.__doc__ or "", GearmanClient=GearmanClient)
worker = _namespace("worker", _worker.__doc__ or "", GearmanWorker=GearmanWorker)
admin_client = _namespace("admin_client", _admin.__doc__ or "", GearmanAdminClient=GearmanAdminClient)
connection_manager = _namespace(
    "connection_manager", "Data encoders.", DataEncoder=DataEncoder, NoopEncoder=NoopEncoder, BytesEncoder=BytesEncoder
)

# As python-gearman does for its own logger: a library stays quiet unless the application configures logging.
for _logger in ("gearman", "geartrain"):
    logging.getLogger(_logger).addHandler(logging.NullHandler())

__all__ = [
    "DEFAULT_GEARMAN_PORT",
    "JOB_COMPLETE",
    "JOB_CREATED",
    "JOB_FAILED",
    "JOB_PENDING",
    "JOB_UNKNOWN",
    "PRIORITY_HIGH",
    "PRIORITY_LOW",
    "PRIORITY_NONE",
    "BytesEncoder",
    "ConnectionError",
    "DataEncoder",
    "ExceededConnectionAttempts",
    "GearmanAdminClient",
    "GearmanClient",
    "GearmanError",
    "GearmanJob",
    "GearmanJobRequest",
    "GearmanWorker",
    "InvalidAdminClientState",
    "InvalidClientState",
    "InvalidWorkerState",
    "NoopEncoder",
    "ProtocolError",
    "ServerUnavailable",
    "UnknownCommandError",
    "admin_client",
    "client",
    "connection_manager",
    "constants",
    "errors",
    "job",
    "worker",
]
