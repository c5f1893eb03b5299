"""The asyncio admin client: gearmand's text protocol (``status``, ``workers``, ``cancel job`` ...) on the job port.

Commands go out with ``\\r\\n`` line ends, as gearadmin sends them (gearmand 1.1.20 drops the last character of a
``create function`` name that ends with a bare ``\\n``). Replies are a listing closed by a ``.`` line, an
``OK [value]`` line, or an ``ERR CODE text`` line. The admin protocol is not on any hot path, so this uses plain
asyncio streams, one command at a time per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from ssl import SSLContext
from typing import Any, TypeVar
from urllib.parse import quote

from geartrain.admin.records import (
    FunctionStatus,
    JobInfo,
    PriorityStatus,
    WorkerInfo,
    parse_jobs,
    parse_priority_status,
    parse_status,
    parse_unique_jobs,
    parse_workers,
)
from geartrain.client.transport import ServerSpec, auth_option, format_address, parse_address
from geartrain.errors import AdminError, ConnectionLost, GearmanTimeout, UnknownOption, server_error
from geartrain.protocol.codec import encode_request, split_args
from geartrain.protocol.packets import HEADER_SIZE, RES, PacketType

T = TypeVar("T")


def _check_word(value: str, what: str) -> bytes:
    raw = value.encode()
    if not raw or any(c in raw for c in b" \t\r\n"):
        raise ValueError(f"{what} must be one word without spaces: {value!r}")
    return raw


def _setting(key: str, value: str) -> bytes:
    """``key=value`` for an admin line, the value percent-encoded (the server decodes it): ``rate=100%2Fs``."""
    return _check_word(key, "key") + b"=" + quote(value, safe="").encode()


def _admin_error(line: bytes) -> AdminError:
    # "ERR UNKNOWN_COMMAND Unknown+server+commandfoo": gearmand writes spaces in the text as '+'.
    _, _, rest = line.partition(b" ")
    code, _, text = rest.partition(b" ")
    return AdminError(text.decode("utf-8", "replace").replace("+", " "), code.decode("utf-8", "replace") or "ERR")


class AdminClient:
    """Admin commands against one server (``"host:port"``); ``timeout`` bounds each command (seconds).

    The connection is opened on first use and reopened once if the server has closed it. Use as
    ``async with AdminClient("127.0.0.1:4730") as admin:`` or call :meth:`close`. ``tls`` connects over TLS;
    ``secret`` is presented (as a binary OPTION_REQ) before the first command of each connection.
    """

    def __init__(
        self,
        server: ServerSpec = "localhost:4730",
        *,
        timeout: float | None = 10.0,
        tls: SSLContext | None = None,
        secret: str | None = None,
    ) -> None:
        self.tls = tls
        self._auth = auth_option(secret) if secret is not None else None
        self.address = parse_address(server)
        self.name = format_address(self.address)
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> AdminClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    # ------------------------------------------------------------------ commands

    async def status(self) -> list[FunctionStatus]:
        """``status``: one record per function the server knows."""
        return await self._listing(b"status", parse_status)

    async def priority_status(self) -> list[PriorityStatus]:
        """``prioritystatus``: queued jobs per priority for each function."""
        return await self._listing(b"prioritystatus", parse_priority_status)

    async def workers(self) -> list[WorkerInfo]:
        """``workers``: one record per connection to the server."""
        return await self._listing(b"workers", parse_workers)

    async def show_jobs(self) -> list[JobInfo]:
        """``show jobs``: every job, queued or running."""
        return await self._listing(b"show jobs", parse_jobs)

    async def show_unique_jobs(self) -> list[str]:
        """``show unique jobs``: the unique key of every job (``""`` for jobs without one)."""
        return await self._listing(b"show unique jobs", parse_unique_jobs)

    async def version(self) -> str:
        """``version``: the server's version string (``1.1.20+ds`` for Debian's gearmand)."""
        return await self._value(b"version")

    async def verbose(self) -> str:
        """``verbose``: the server's log level name."""
        return await self._value(b"verbose")

    async def getpid(self) -> int:
        """``getpid``: the server's process id."""
        return int(await self._value(b"getpid"))

    async def cancel_job(self, handle: str) -> bool:
        """``cancel job HANDLE``: True if cancelled, False if the server does not know the job."""
        try:
            await self._value(b"cancel job " + _check_word(handle, "handle"))
        except AdminError as exc:
            if exc.code == "UNKNOWN_JOB":
                return False
            raise
        return True

    async def create_function(self, name: str) -> None:
        """``create function NAME``: make the function known (it then shows in ``status``)."""
        await self._value(b"create function " + _check_word(name, "function name"))

    async def drop_function(self, name: str) -> None:
        """``drop function NAME``; raises :class:`~geartrain.errors.AdminError` if it is unknown or still in use."""
        await self._value(b"drop function " + _check_word(name, "function name"))

    async def maxqueue(self, function: str, *sizes: int) -> None:
        """``maxqueue FUNC [N | HIGH NORMAL LOW]``: no size = unlimited, one = all priorities, three = each."""
        if len(sizes) > 3:
            raise ValueError("maxqueue takes at most three sizes (high, normal, low)")
        words = [b"maxqueue", _check_word(function, "function name"), *(str(int(s)).encode() for s in sizes)]
        await self._value(b" ".join(words))

    async def shutdown(self, graceful: bool = False) -> None:
        """``shutdown [graceful]`` (geartrain only: gearmand removed the command in 1.1.15 and answers ERR)."""
        await self._value(b"shutdown graceful" if graceful else b"shutdown")

    # ------------------------------------------------------------------ the job life cycle (geartrain, --policy-file)

    async def dead_list(self, function: str | None = None) -> list[dict[str, Any]]:
        """The dead set, oldest first: handle, function, unique, attempts, last_failed, error."""
        line = b"dead list" + (b" " + _check_word(function, "function") if function else b"")
        keys = ("handle", "function", "unique", "attempts", "last_failed", "error")
        rows = [raw.split(b"\t", 5) for raw in await self._run(line, listing=True)]
        return [
            {**dict(zip(keys, (field.decode("utf-8", "replace") for field in row), strict=False)),
             "attempts": int(row[3]), "last_failed": int(row[4])}
            for row in rows
            if len(row) == 6
        ]  # fmt: skip

    async def dead_show(self, handle: str) -> dict[str, Any]:
        return await self._json(b"dead show " + _check_word(handle, "handle"))

    async def dead_retry(self, selector: str) -> int:
        """Queue dead jobs again (a handle, a function, or ``all``); how many."""
        return int(await self._value(b"dead retry " + _check_word(selector, "selector")))

    async def dead_delete(self, selector: str) -> int:
        return int(await self._value(b"dead delete " + _check_word(selector, "selector")))

    async def pause(self, function: str) -> None:
        await self._value(b"pause " + _check_word(function, "function"))

    async def resume(self, function: str) -> None:
        await self._value(b"resume " + _check_word(function, "function"))

    async def paused(self) -> list[str]:
        return [line.decode("utf-8", "replace") for line in await self._run(b"paused", listing=True)]

    async def cron_list(self) -> list[dict[str, Any]]:
        """The cron entries: function, schedule, timezone, next and last firing (Unix times, None for never)."""
        entries = []
        for raw in await self._run(b"cron list", listing=True):
            fields = raw.decode("utf-8", "replace").split("\t")
            if len(fields) == 5:
                function, schedule, zone, following, last = fields
                times = [None if value == "-" else int(value) for value in (following, last)]
                entries.append({"function": function, "schedule": schedule, "timezone": zone, "next": times[0],
                                "last": times[1]})  # fmt: skip
        return entries

    async def policy_show(self, function: str | None = None) -> dict[str, Any]:
        """The policies in force (``defaults``, and per function its ``policy`` and the ``overrides`` set at run
        time): one function's, or every one the file or a run-time change names."""
        return await self._json(b"policy show" + (b" " + _check_word(function, "function") if function else b""))

    async def policy_set(self, function: str, settings: dict[str, str]) -> None:
        """Set keys of a function's policy (``{"retries": "5", "rate": "100/s"}``); the values are percent-encoded
        on the line, so they may hold spaces and ``/``."""
        if not settings:
            raise ValueError("policy set needs at least one KEY=VALUE")
        words = [b"policy set", _check_word(function, "function"), *(_setting(k, v) for k, v in settings.items())]
        await self._value(b" ".join(words))

    async def policy_unset(self, function: str, keys: Sequence[str] = ()) -> None:
        """Back to the policy file's settings for ``keys`` (or all keys) of a function."""
        words = [b"policy unset", _check_word(function, "function"), *(_check_word(k, "key") for k in keys)]
        await self._value(b" ".join(words))

    async def cron_add(self, function: str, schedule: str, **options: str) -> int:
        """Add a cron entry: ``schedule`` as in the policy file (``"0 7 * * *"``, ``"@every 10s"``), ``options``
        its other keys (payload, timezone, unique, priority, catch_up). Returns the first firing's Unix time."""
        fields = schedule.split()
        if not fields:
            raise ValueError("cron add needs a schedule, e.g. '0 7 * * *' or '@every 10s'")
        # A field with "=" would read as an option on the server's side; none of a valid schedule's has one.
        function_word = _check_word(quote(function, safe=""), "function")  # the server percent-decodes it
        words = [b"cron add", function_word, *(_check_word(field, "schedule field") for field in fields)]
        words += [_setting(key, value) for key, value in options.items()]
        return int(await self._value(b" ".join(words)))

    async def cron_remove(self, function: str, schedule: str | None = None) -> int:
        """Remove cron entries added at run time (of ``function``, at ``schedule`` or all); how many."""
        words = [b"cron remove", _check_word(function, "function"), *(schedule or "").encode().split()]
        return int(await self._value(b" ".join(words)))

    async def result(self, handle: str) -> dict[str, Any]:
        """How a background job ended, while its function's result_ttl keeps it."""
        return await self._json(b"result " + _check_word(handle, "handle"))

    async def status_json(self) -> dict[str, Any] | None:
        """geartrain's ``status json``: per function its queues, counters and oldest queued job's age, and the
        server's totals, read at one instant. ``None`` from a server without it (gearmand answers ``status``)."""
        try:
            lines = await self._run(b"status json", listing=True, json_line=True)
        except AdminError:
            return None
        if len(lines) != 1 or not lines[0].startswith(b"{"):
            return None
        try:
            value = json.loads(lines[0])
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    async def _json(self, command: bytes) -> dict[str, Any]:
        (line,) = await self._run(command, listing=False)
        try:
            value = json.loads(line)
        except ValueError:
            raise AdminError(f"unexpected reply {line!r}", "UNEXPECTED_REPLY") from None
        if not isinstance(value, dict):
            raise AdminError(f"unexpected reply {line!r}", "UNEXPECTED_REPLY")
        return value

    async def command(self, line: str) -> list[bytes]:
        """Send any command line and return the reply's lines (a listing without its ``.`` line, or one line).

        ``ERR`` replies raise :class:`~geartrain.errors.AdminError`.
        """
        words = line.lower().split()
        word = words[0] if words else ""
        listing = word in ("status", "prioritystatus", "workers", "show", "paused") or words[:2] in (
            ["dead", "list"],
            ["cron", "list"],
        )
        return await self._run(line.encode(), listing)

    # ------------------------------------------------------------------ plumbing

    async def _listing(self, command: bytes, parse: Callable[[list[bytes]], list[T]]) -> list[T]:
        return parse(await self._run(command, listing=True))

    async def _value(self, command: bytes) -> str:
        (line,) = await self._run(command, listing=False)
        if line == b"OK":
            return ""
        if line.startswith(b"OK "):
            return line[3:].decode("utf-8", "replace")
        raise AdminError(f"unexpected reply {line!r}", "UNEXPECTED_REPLY")

    async def _run(self, command: bytes, listing: bool, json_line: bool = False) -> list[bytes]:
        """``json_line``: a listing, or one JSON line in its place (a JSON line has no tab, every row has one)."""
        async with self._lock:
            try:
                async with asyncio.timeout(self.timeout):
                    return await self._exchange(command, listing, json_line, retry=True)
            except TimeoutError:
                await self.close()  # the reply may still come and would answer the next command
                raise GearmanTimeout(f"{self.name}: no reply to {command.decode()!r} in {self.timeout}s") from None

    async def _exchange(self, command: bytes, listing: bool, json_line: bool, retry: bool) -> list[bytes]:
        reader, writer = await self._connection()
        try:
            writer.write(command + b"\r\n")
            await writer.drain()
            lines = await self._read_reply(reader, listing, json_line)
        except (OSError, ConnectionLost, asyncio.IncompleteReadError) as exc:
            await self.close()
            if retry:  # the server may have closed an idle connection: one fresh try
                return await self._exchange(command, listing, json_line, retry=False)
            raise ConnectionLost(f"{self.name}: {exc}") from exc
        return lines

    async def _read_reply(self, reader: asyncio.StreamReader, listing: bool, json_line: bool = False) -> list[bytes]:
        lines: list[bytes] = []
        while True:
            raw = await reader.readline()
            if not raw.endswith(b"\n"):
                raise ConnectionLost("server closed the connection in the middle of a reply")
            line = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
            # An ERR line replaces the whole reply (a listing row always has a tab, or starts with a number).
            if not lines and line.startswith(b"ERR") and b"\t" not in line:
                raise _admin_error(line)
            if not listing or (json_line and not lines and line.startswith(b"{") and b"\t" not in line):
                return [line]
            if line == b".":
                return lines
            lines.append(line)

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            host, port = self.address
            try:
                self._reader, self._writer = await asyncio.open_connection(host, port, limit=1 << 24, ssl=self.tls)
            except OSError as exc:  # ssl.SSLError included
                raise ConnectionLost(f"cannot connect to {self.name}: {exc}") from exc
            if self._auth is not None:
                await self._authenticate(self._reader, self._writer, self._auth)
        return self._reader, self._writer

    async def _authenticate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, option: bytes) -> None:
        # The server reads binary packets and text lines on one connection, so the secret goes as OPTION_REQ.
        writer.write(encode_request(PacketType.OPTION_REQ, option))
        try:
            header = await reader.readexactly(HEADER_SIZE)
            body = await reader.readexactly(int.from_bytes(header[8:12], "big"))
        except asyncio.IncompleteReadError as exc:
            await self.close()
            raise ConnectionLost(f"{self.name} closed the connection while checking the secret") from exc
        ptype = int.from_bytes(header[4:8], "big")
        if header[:4] != RES or ptype not in (PacketType.OPTION_RES, PacketType.ERROR):
            await self.close()
            raise ConnectionLost(f"{self.name}: unexpected answer to the secret: {header!r}")
        if ptype == PacketType.ERROR:
            args = [arg.decode("utf-8", "replace") for arg in split_args(ptype, body) or ()]
            error = server_error(args[0] if args else "", args[1] if len(args) > 1 else "")
            if not isinstance(error, UnknownOption):  # UNKNOWN_OPTION: no access control there, nothing to do
                await self.close()
                raise error
