"""python-gearman's constants and exception names (``gearman.constants``, ``gearman.errors``)."""

from __future__ import annotations

from geartrain.errors import GearmanError as _GeartrainError

DEFAULT_GEARMAN_PORT = 4730

PRIORITY_NONE = None
PRIORITY_LOW = "LOW"
PRIORITY_HIGH = "HIGH"

JOB_UNKNOWN = "UNKNOWN"  # not submitted yet, or its connection failed
JOB_PENDING = "PENDING"  # submitted, waiting for the server's handle
JOB_CREATED = "CREATED"  # accepted by the server (a background request is then complete)
JOB_FAILED = "FAILED"  # WORK_FAIL or WORK_EXCEPTION (or refused by the server)
JOB_COMPLETE = "COMPLETE"  # WORK_COMPLETE


class GearmanError(_GeartrainError):
    """Root of python-gearman's exceptions (and a :class:`geartrain.errors.GearmanError`)."""


class ConnectionError(GearmanError):  # python-gearman's name (it shadows the builtin here only)
    pass


class ServerUnavailable(GearmanError):
    pass


class ProtocolError(GearmanError):
    pass


class UnknownCommandError(GearmanError):
    pass


class ExceededConnectionAttempts(GearmanError):
    pass


class InvalidClientState(GearmanError):
    pass


class InvalidWorkerState(GearmanError):
    pass


class InvalidAdminClientState(GearmanError):
    pass
