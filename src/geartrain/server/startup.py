"""Start-up failures in one line: what could not be opened (a port, a file) and why, in an operator's words.

The parts of a node translate the OS's exceptions here, where they still know what they were opening (the OS's
own text says ``[Errno 98] error while attempting to bind on address ('127.0.0.1', 4730)`` at best, and nothing
of the address for a name that does not resolve); the command line prints the :class:`StartupError` as it is.
"""

from __future__ import annotations

import os

from geartrain.errors import StartupError


def file_error(what: str, path: str, error: OSError) -> StartupError:
    """The line for a file the server could not open: ``cannot write the pid file /run/x.pid: Permission denied``."""
    return StartupError(f"cannot {what} {path}: {error.strerror or error}")


def write_pid_file(path: str) -> None:
    """Write this process's id to ``path``; :class:`StartupError` when it cannot."""
    try:
        with open(path, "w") as stream:
            stream.write(f"{os.getpid()}\n")
    except OSError as error:
        raise file_error("write the pid file", path, error) from error
