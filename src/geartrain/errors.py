"""One exception tree for geartrain.

Every exception geartrain defines derives from :class:`GearmanError`. Wire error codes (the ``code`` field of an
ERROR packet, gearmand's ``gearman_return_t`` names without the ``GEARMAN_`` prefix) are the members of
:class:`ErrorCode`, and map to exception classes in one table, :data:`ERROR_CODES`, in both directions.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    """The ERROR packet codes geartrain sends or gives its own errors.

    A member is a ``str`` equal to its value, so it encodes to the same bytes as the bare string did. A code read
    from a server stays a plain ``str``: servers may send codes this list does not know.
    """

    # Sent by the server: gearmand's names for the same refusals, and PERMISSION_DENIED for the access policy.
    JOB_NOT_FOUND = "JOB_NOT_FOUND"
    QUEUE_ERROR = "QUEUE_ERROR"
    ARGUMENT_TOO_LARGE = "ARGUMENT_TOO_LARGE"
    UNKNOWN_OPTION = "UNKNOWN_OPTION"
    INVALID_COMMAND = "INVALID_COMMAND"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    SERVER_ERROR = "SERVER_ERROR"
    # Sent by the server for a byte stream it cannot decode (protocol.codec).
    INVALID_MAGIC = "INVALID_MAGIC"
    INVALID_PACKET = "INVALID_PACKET"
    # Never sent: the client's code for a server reply out of step with its requests.
    UNEXPECTED_PACKET = "UNEXPECTED_PACKET"


class GearmanError(Exception):
    """Root of every error geartrain raises."""


class ProtocolError(GearmanError):
    """A byte stream or packet that breaks the Gearman protocol.

    ``code`` and ``text`` are what goes into the ERROR packet; ``fatal`` says whether the stream can no longer be
    framed (the connection must be closed after the ERROR is sent).
    """

    def __init__(self, code: str, text: str, *, fatal: bool = False) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text
        self.fatal = fatal


class PeerProtocolError(ProtocolError):
    """The peer sent something malformed (its fault)."""


class LocalProtocolError(ProtocolError):
    """We were asked to send something the protocol cannot carry (our caller's fault)."""


class ServerError(GearmanError):
    """The server answered a request with an ERROR packet."""

    code: str = ErrorCode.SERVER_ERROR

    def __init__(self, text: str = "", code: str | None = None) -> None:
        shown = code or self.code
        super().__init__(f"{shown}: {text}" if text else str(shown))  # str(): a plain string, not the enum member
        if code is not None:
            self.code = code
        self.text = text


class JobNotFound(ServerError):
    code = ErrorCode.JOB_NOT_FOUND


class QueueFull(ServerError):
    """The function's queue is at its ``maxqueue`` limit, or the store could not take the job."""

    code = ErrorCode.QUEUE_ERROR


class ArgumentTooLarge(ServerError):
    code = ErrorCode.ARGUMENT_TOO_LARGE


class UnknownOption(ServerError):
    code = ErrorCode.UNKNOWN_OPTION


class InvalidCommand(ServerError):
    code = ErrorCode.INVALID_COMMAND


class PermissionDenied(ServerError):
    """The server's access policy does not allow this request (or refused the secret presented)."""

    code = ErrorCode.PERMISSION_DENIED


class AdminError(ServerError):
    """The server answered an admin text command with an ``ERR <code> <text>`` line.

    ``code`` is the word after ``ERR`` (``UNKNOWN_JOB``, ``UNKNOWN_COMMAND`` ...); ``text`` is the rest of the line
    with gearmand's ``+`` separators turned back into spaces.
    """

    code = "ADMIN_ERROR"  # not an ErrorCode: admin ERR lines have words of their own, not ERROR packet codes


class JobFailed(GearmanError):
    """A job ended with WORK_FAIL (raised by the client), or a worker function wants to send WORK_FAIL (raise it).

    ``handle`` is the job handle the server gave, when known.
    """

    def __init__(self, message: str = "job failed", handle: str = "") -> None:
        super().__init__(message)
        self.handle = handle


class JobException(GearmanError):
    """A job ended with WORK_EXCEPTION; ``data`` is what the worker sent."""

    def __init__(self, data: bytes, handle: str = "") -> None:
        super().__init__(data.decode("utf-8", "replace"))
        self.data = data
        self.handle = handle


class GearmanTimeout(GearmanError, TimeoutError):
    """A client operation did not finish within its timeout (also a :class:`TimeoutError`)."""


class ConnectionLost(GearmanError):
    """The connection to a server went away (or could not be made)."""


class NoServersAvailable(GearmanError):
    """None of the configured servers could be reached."""


class StartupError(GearmanError):
    """The server could not start: a port it cannot listen on, a file it cannot write, a part that failed.

    The message is one line naming what failed and why (``cannot listen on 127.0.0.1:4730: address already in
    use``): the command line prints it as it is, after the program's name.
    """


ERROR_CODES: dict[str, type[ServerError]] = {
    cls.code: cls for cls in (JobNotFound, QueueFull, ArgumentTooLarge, UnknownOption, InvalidCommand, PermissionDenied)
}


def server_error(code: str, text: str) -> ServerError:
    """Translate an ERROR packet's code and text into the matching exception."""
    cls = ERROR_CODES.get(code, ServerError)
    if cls is ServerError:
        return ServerError(text, code)
    return cls(text)
