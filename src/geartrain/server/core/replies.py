"""Packets the engine sends often, encoded once."""

from __future__ import annotations

from geartrain.errors import ErrorCode
from geartrain.protocol.codec import encode
from geartrain.protocol.packets import RES, PacketType

P = PacketType

# Packet types the handlers encode, as plain ints: reading a PacketType member goes through the enum metaclass's
# __getattr__ hook (85 ns on Python 3.11, more than encoding the packet), and some are read once per job.
JOB_ASSIGN = int(P.JOB_ASSIGN)
JOB_ASSIGN_UNIQ = int(P.JOB_ASSIGN_UNIQ)
JOB_ASSIGN_ALL = int(P.JOB_ASSIGN_ALL)
JOB_CREATED = int(P.JOB_CREATED)
ERROR = int(P.ERROR)
WORK_COMPLETE = int(P.WORK_COMPLETE)
WORK_FAIL = int(P.WORK_FAIL)
WORK_EXCEPTION = int(P.WORK_EXCEPTION)
WORK_STATUS = int(P.WORK_STATUS)
STATUS_RES = int(P.STATUS_RES)
STATUS_RES_UNIQUE = int(P.STATUS_RES_UNIQUE)
ECHO_RES = int(P.ECHO_RES)
OPTION_RES = int(P.OPTION_RES)

NOOP = encode(P.NOOP)
NO_JOB = encode(P.NO_JOB)
_JOB_CREATED_HEAD = RES + P.JOB_CREATED.to_bytes(4, "big")
# Headers of JOB_CREATED by handle length: the reply to every submit is then one concatenation.
_JOB_CREATED_HEADS = [_JOB_CREATED_HEAD + size.to_bytes(4, "big") for size in range(256)]


def job_created(handle: bytes) -> bytes:
    if len(handle) < 256:
        return _JOB_CREATED_HEADS[len(handle)] + handle
    return _JOB_CREATED_HEAD + len(handle).to_bytes(4, "big") + handle


def error_packet(code: str, text: str) -> bytes:
    return encode(P.ERROR, code.encode(), text.encode())


class ErrorReply:
    """An ERROR a client may be sent: its arguments, and the packet encoded once for sockets (an in-process peer
    is given the arguments, ``EngineState._send_error``)."""

    __slots__ = ("args", "packet")

    def __init__(self, code: str, text: str) -> None:
        self.args = (code.encode(), text.encode())
        self.packet = encode(P.ERROR, *self.args)


NOT_EXPECTED = ErrorReply(ErrorCode.INVALID_COMMAND, "Command not expected")
NOT_FOUND_RESULT = error_packet(ErrorCode.JOB_NOT_FOUND, "Job given in work result not found")
NOT_FOUND_DATA = error_packet(ErrorCode.JOB_NOT_FOUND, "Job does not exist on server")
NOT_FOUND_EXCEPTION = error_packet(ErrorCode.JOB_NOT_FOUND, "An exception was received for a job that does not exist")
UNIQUE_TOO_LARGE = ErrorReply(ErrorCode.ARGUMENT_TOO_LARGE, "Unique value too large")
QUEUE_FULL = ErrorReply(ErrorCode.QUEUE_ERROR, "Job queue is full")
SERVER_QUEUE_FULL = ErrorReply(
    ErrorCode.QUEUE_ERROR, "Server queue is full: queued workloads reached --max-queued-bytes"
)
DRAINING = ErrorReply(ErrorCode.QUEUE_ERROR, "Server is shutting down (graceful drain): job not accepted")
UNKNOWN_OPTION = error_packet(ErrorCode.UNKNOWN_OPTION, "Server does not recognize given option")
