"""The text admin protocol: parse a command line and format replies byte for byte as gearmand 1.1.20 does.

Tokens are separated by runs of spaces (only spaces: a tab is part of a word); a leading space makes an empty first
word and a trailing space an empty last one, as in gearmand. A line with more than five tokens is refused (gearmand
closes the connection without a word). Note gearmand's mixed line ends, kept here: listings end ``\\n`` and
``.\\n``, ``OK``/``ERR`` lines of most commands end ``\\r\\n``, ``OK <value>`` lines end ``\\n``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from geartrain.errors import GearmanError

MAX_TOKENS = 5
# geartrain's commands that take more tokens (a cron schedule, policy keys); gearmand knows neither.
_LONG_COMMANDS = frozenset({b"cron", b"policy"})
MAX_LONG_TOKENS = 32
_SPACES = re.compile(b" +")

OK = b"OK\r\n"
END_OF_LIST = b".\n"


@dataclass(frozen=True, slots=True)
class AdminCommand:
    """A parsed admin command: ``name`` is one of the names below, ``args`` its operands."""

    name: str
    args: tuple[bytes, ...] = ()


# Commands whose extra tokens gearmand ignores.
_SIMPLE = {
    b"status": "status",
    b"workers": "workers",
    b"version": "version",
    b"verbose": "verbose",
    b"getpid": "getpid",
    b"prioritystatus": "prioritystatus",
}


def unknown_command(word: bytes) -> bytes:
    return b"ERR UNKNOWN_COMMAND Unknown+server+command" + word + b"\r\n"


def error_line(code: str, text: str) -> bytes:
    """An admin error reply, ``ERR CODE text``, with the text's spaces written as ``+`` (gearmand's way)."""
    return b"ERR " + code.encode() + b" " + "+".join(text.split()).encode("utf-8", "replace") + b"\r\n"


def incomplete_arguments(word: bytes) -> bytes:
    return b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+" + word + b"\r\n"


# Listings that also come as one line of JSON (`status json`): the same data as the HTTP API.
JSON_COMMANDS = frozenset({"status", "prioritystatus", "workers"})


class TooManyTokens(GearmanError):
    """The line has more tokens than any command takes: the connection is closed."""


def parse(line: bytes) -> AdminCommand | bytes:
    """Parse one line (without its line end). Returns a command, or the exact error reply to send.

    Raises :class:`TooManyTokens` for a line gearmand would hang up on.
    """
    tokens = _SPACES.split(line)
    if len(tokens) > MAX_TOKENS and tokens[0].lower() not in _LONG_COMMANDS:
        raise TooManyTokens(line)
    word = tokens[0]
    command = word.lower()
    simple = _SIMPLE.get(command)
    count = len(tokens)
    if simple is not None:
        # geartrain's extension: `status json`, `workers json`... (gearmand ignores a second word here).
        if count >= 2 and tokens[1].lower() == b"json" and simple in JSON_COMMANDS:
            return AdminCommand(simple + " json")
        # geartrain's extension: `status cluster`, every node of this node's cluster.
        if count == 2 and simple == "status" and tokens[1].lower() == b"cluster":
            return AdminCommand("status cluster")
        return AdminCommand(simple)
    if command == b"show":
        if count == 2 and tokens[1].lower() == b"jobs":
            return AdminCommand("show jobs")
        if count == 3 and tokens[1].lower() == b"jobs" and tokens[2].lower() == b"json":
            return AdminCommand("show jobs json")
        if count == 3 and tokens[1].lower() == b"unique" and tokens[2].lower() == b"jobs":
            return AdminCommand("show unique jobs")
        if count == 1:
            return unknown_command(word)
        return b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"
    if command == b"cancel":
        if count < 3:
            return unknown_command(word)
        if count == 3 and tokens[1].lower() == b"job":
            return AdminCommand("cancel job", (tokens[2],))
        return b"ERR UNKNOWN_ERROR\r\n"
    if command in (b"create", b"drop"):
        if count == 3 and tokens[1].lower() == b"function":
            return AdminCommand(f"{command.decode()} function", (tokens[2],))
        return incomplete_arguments(word)
    if command == b"maxqueue":
        if count < 2:
            return incomplete_arguments(word)
        return AdminCommand("maxqueue", tuple(tokens[1:]))
    # geartrain's extensions for the job life cycle (core/lifecycle.py): the dead set, pause and resume.
    if command == b"dead":
        sub = tokens[1].lower() if count >= 2 else b""
        if sub == b"list" and count <= 3:
            return AdminCommand("dead list", tuple(tokens[2:]))
        if sub in (b"show", b"retry", b"delete") and count == 3:
            return AdminCommand(f"dead {sub.decode()}", (tokens[2],))
        return incomplete_arguments(word)
    if command in (b"pause", b"resume"):
        if count == 2:
            return AdminCommand(command.decode(), (tokens[1],))
        return incomplete_arguments(word)
    if command == b"paused" and count == 1:
        return AdminCommand("paused")
    if command == b"cron":
        sub = tokens[1].lower() if count >= 2 else b""
        if sub == b"list" and count == 2:
            return AdminCommand("cron list")
        if sub in (b"add", b"remove") and 3 <= count <= MAX_LONG_TOKENS:
            return AdminCommand(f"cron {sub.decode()}", tuple(tokens[2:]))
        return incomplete_arguments(word)
    if command == b"policy":
        sub = tokens[1].lower() if count >= 2 else b""
        if sub == b"show" and count <= 3:
            return AdminCommand("policy show", tuple(tokens[2:]))
        if sub in (b"set", b"unset") and (4 if sub == b"set" else 3) <= count <= MAX_LONG_TOKENS:
            return AdminCommand(f"policy {sub.decode()}", tuple(tokens[2:]))
        return incomplete_arguments(word)
    if command == b"result" and count == 2:
        return AdminCommand("result", (tokens[1],))
    if command == b"shutdown":
        if count >= 2 and tokens[1].lower() == b"graceful":
            return AdminCommand("shutdown graceful")
        return AdminCommand("shutdown")
    return unknown_command(word)


def parse_maxqueue(args: tuple[bytes, ...]) -> tuple[bytes, list[int]]:
    """``maxqueue FUNC [N | HIGH NORMAL [LOW]]`` -> (function, limits per priority); 0 = unlimited.

    One number sets all three priorities; with two, LOW becomes unlimited; a number <= 0 (or not a number) is
    unlimited, as in gearmand.
    """
    name, numbers = args[0], [_c_int(arg) for arg in args[1:]]
    if not numbers:
        limits = [0, 0, 0]
    elif len(numbers) == 1:
        limits = [numbers[0]] * 3
    else:
        limits = ([*numbers, 0])[:3]
    return name, [max(limit, 0) for limit in limits]


def _c_int(value: bytes) -> int:
    match = re.match(rb"\s*([+-]?\d+)", value)
    return int(match.group(1)) if match else 0


def format_ok_value(value: bytes) -> bytes:
    return b"OK " + value + b"\n"


def format_table(rows: list[tuple[bytes | int, ...]]) -> bytes:
    """Tab-separated rows, then the ``.`` line."""
    lines = [b"\t".join(v if isinstance(v, bytes) else str(v).encode() for v in row) + b"\n" for row in rows]
    return b"".join(lines) + END_OF_LIST
