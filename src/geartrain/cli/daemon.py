"""How the server's start went, told to whoever started it: on stderr, or, with ``-d``, through the first process.

gearmand's ``-d`` forks and exits 0 at once: a server that then cannot open its port dies with its reason written
to /dev/null, and the shell (or a service manager waiting for the fork) believes it runs. Here the first process
waits until the detached server has started (exit 0) or has failed (its one line on stderr, its status).
"""

from __future__ import annotations

import contextlib
import os
import sys

_STARTED = b"0\n"


class StartReport:
    """Where the start's outcome goes: this process's stderr, or the pipe the waiting first process reads."""

    def __init__(self, pipe: int | None = None) -> None:
        self._pipe = pipe

    def started(self) -> None:
        """The server runs (with ``-d``: the first process exits 0 now)."""
        self._send(_STARTED)

    def failed(self, status: int, line: str) -> None:
        """The start failed: ``line`` (one line, the program's name first) and the exit status."""
        if self._pipe is None:
            print(line, file=sys.stderr)
        else:
            self._send(f"{status}\n{line}\n".encode())

    def _send(self, report: bytes) -> None:
        if self._pipe is None:
            return
        pipe, self._pipe = self._pipe, None
        with contextlib.suppress(OSError):  # the first process was killed: nobody is waiting
            os.write(pipe, report)
        os.close(pipe)


def detach(prog: str) -> StartReport:
    """Fork twice, start a new session, put stdio on /dev/null; the first process waits for the report."""
    read_end, write_end = os.pipe()  # not inherited by programs the server might run (PEP 446)
    if os.fork() > 0:
        os.close(write_end)
        os._exit(_wait_for_report(read_end, prog))
    os.close(read_end)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    return StartReport(write_end)


def _wait_for_report(pipe: int, prog: str) -> int:
    report = b""
    while chunk := os.read(pipe, 4096):
        report += chunk
    if report == _STARTED:
        return 0
    status, _, line = report.decode(errors="replace").partition("\n")
    if not status.isdigit():  # it died without a word (killed, or a bug whose traceback went to /dev/null)
        status, line = "1", f"{prog}: the server exited before it had started (run it without -d to see why)\n"
    os.write(2, line.encode())
    return int(status)
