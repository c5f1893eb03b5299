"""python-gearman's ``GearmanAdminClient`` on geartrain's :class:`~geartrain.admin.SyncAdminClient`.

Replies are shaped as python-gearman shapes them: tuples of dicts for listings (``status`` rows label the total as
``queued``), the raw reply line for ``version``, ``getpid`` and ``cancel job``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from geartrain.admin import SyncAdminClient
from geartrain.client import SyncClient
from geartrain.compat._client import unlist
from geartrain.compat._errors import InvalidAdminClientState, ProtocolError, ServerUnavailable
from geartrain.compat._hosts import server_list, server_tls
from geartrain.errors import AdminError, ConnectionLost, GearmanTimeout, NoServersAvailable

ECHO_STRING = "ping? pong!"
DEFAULT_ADMIN_CLIENT_TIMEOUT = 10.0


def _raw(error: AdminError) -> str:
    """An ``ERR`` reply line as the server sent it (gearmand writes spaces in the text as ``+``)."""
    text = error.text.replace(" ", "+")
    return f"ERR {error.code} {text}" if text else f"ERR {error.code}"


def _split(line: bytes, fields: int, separator: str = "\t") -> list[str]:
    tokens = line.decode("utf-8", "surrogateescape").split(separator)
    if len(tokens) != fields:
        raise ProtocolError(f"Received {len(tokens)} tokens, expected {fields} tokens: {tokens!r}")
    return tokens


class GearmanAdminClient:
    """Admin commands against the one server of ``host_list``; each waits at most ``poll_timeout`` seconds."""

    def __init__(self, host_list: Sequence[Any] | None = None, poll_timeout: float = DEFAULT_ADMIN_CLIENT_TIMEOUT):
        self.host_list = list(host_list or [])
        self.poll_timeout = poll_timeout
        self.current_connection = unlist(server_list(self.host_list))
        self._tls = server_tls(self.host_list)
        self._admin: SyncAdminClient | None = None

    def _command(self, line: str) -> list[bytes]:
        if self.current_connection is None:
            raise ServerUnavailable(f"Found no valid connections in list: {self.host_list!r}")
        if self._admin is None:
            self._admin = SyncAdminClient(self.current_connection, timeout=self.poll_timeout, tls=self._tls)
        try:
            return self._admin.command(line)
        except GearmanTimeout:
            raise InvalidAdminClientState(f"Admin client timed out after {self.poll_timeout:f} second(s)") from None
        except ConnectionLost as exc:
            raise ServerUnavailable(f"Found no valid connections in list: {self.host_list!r} ({exc})") from exc

    def _value(self, line: str) -> str:
        try:
            (reply,) = self._command(line)
        except AdminError as exc:
            return _raw(exc)
        return reply.decode("utf-8", "surrogateescape")

    def _listing(self, line: str) -> list[bytes]:
        try:
            return self._command(line)
        except AdminError as exc:
            raise ProtocolError(f"Received an error reply to {line!r}: {_raw(exc)}") from exc

    def shutdown(self) -> None:
        """Close the admin connection."""
        admin, self._admin = self._admin, None
        if admin is not None:
            admin.close()

    # ------------------------------------------------------------------ python-gearman's commands

    def ping_server(self) -> float:
        """ECHO_REQ round trip; returns the seconds it took."""
        if self.current_connection is None:
            raise ServerUnavailable(f"Found no valid connections in list: {self.host_list!r}")
        start = time.time()
        with SyncClient(self.current_connection, exceptions=False, tls=self._tls) as client:
            try:
                answer = client.echo(ECHO_STRING, timeout=self.poll_timeout)
            except GearmanTimeout:
                raise InvalidAdminClientState(f"Admin client timed out after {self.poll_timeout:f} second(s)") from None
            except NoServersAvailable as exc:
                raise ServerUnavailable(f"Found no valid connections in list: {self.host_list!r} ({exc})") from exc
        if answer != ECHO_STRING.encode():
            raise InvalidAdminClientState(f"Echo string mismatch: got {answer!r}, expected {ECHO_STRING!r}")
        return time.time() - start

    def send_maxqueue(self, task: str, max_size: int) -> str:
        reply = self._value(f"maxqueue {task} {max_size}")
        if reply != "OK":
            raise ProtocolError(f"Expected 'OK', received: {reply}")
        return reply

    def send_shutdown(self, graceful: bool = True) -> None:
        """``shutdown [graceful]`` (geartrain servers; gearmand 1.1.20 no longer has it, and this returns None)."""
        self._value("shutdown graceful" if graceful else "shutdown")

    def get_status(self) -> tuple[dict[str, Any], ...]:
        rows = []
        for line in self._listing("status"):
            task, total, running, workers = _split(line, 4)
            rows.append({"task": task, "queued": int(total), "running": int(running), "workers": int(workers)})
        return tuple(rows)

    def get_version(self) -> str:
        return self._value("version")

    def get_workers(self) -> tuple[dict[str, Any], ...]:
        rows = []
        for line in self._listing("workers"):
            tokens = line.decode("utf-8", "surrogateescape").split(" ")
            if len(tokens) < 4 or tokens[3] != ":":
                raise ProtocolError(f"Malformed worker response: {tokens!r}")
            rows.append(
                {"file_descriptor": tokens[0], "ip": tokens[1], "client_id": tokens[2], "tasks": tuple(tokens[4:])}
            )
        return tuple(rows)

    def get_pid(self) -> str:
        return self._value("getpid")

    def cancel_job(self, handle: str) -> str:
        return self._value(f"cancel job {handle}")

    def get_jobs(self) -> tuple[dict[str, Any], ...]:
        rows = []
        for line in self._listing("show jobs"):
            handle, retries, ignore, stored = _split(line, 4)
            rows.append({"handle": handle, "queued": int(retries), "canceled": int(ignore), "enabled": int(stored)})
        return tuple(rows)

    def get_unique_jobs(self) -> tuple[dict[str, Any], ...]:
        # python-gearman puts each key in a one-element list; kept so that its scripts read it the same way.
        return tuple({"unique": _split(line, 1)} for line in self._listing("show unique jobs"))
