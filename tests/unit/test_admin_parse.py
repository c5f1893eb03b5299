"""Admin text lines: reference §2's error table, tokenising rules and `maxqueue` arguments."""

from __future__ import annotations

import pytest

from geartrain.protocol.admin import AdminCommand, TooManyTokens, parse, parse_maxqueue


def unknown(word: bytes) -> bytes:
    return b"ERR UNKNOWN_COMMAND Unknown+server+command" + word + b"\r\n"


def incomplete(word: bytes) -> bytes:
    return b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+" + word + b"\r\n"


# Reference §2, "Error lines", row by row.
ERROR_TABLE = [
    (b"foo", unknown(b"foo")),
    (b"", unknown(b"")),
    (b"show", unknown(b"show")),
    (b"cancel job", unknown(b"cancel")),
    (b"cancel", unknown(b"cancel")),
    (b"cancel foo bar", b"ERR UNKNOWN_ERROR\r\n"),
    (b"cancel job a b", b"ERR UNKNOWN_ERROR\r\n"),
    (b"show foo", b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"),
    (b"show unique", b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"),
    (b"show jobs extra", b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"),
    (b"show unique jobs extra", b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"),
    (b"create", incomplete(b"create")),
    (b"create function", incomplete(b"create")),
    (b"create table x", incomplete(b"create")),
    (b"drop", incomplete(b"drop")),
    (b"drop function", incomplete(b"drop")),
    (b"maxqueue", incomplete(b"maxqueue")),
]


@pytest.mark.parametrize(("line", "reply"), ERROR_TABLE, ids=[row[0].decode() or "<empty>" for row in ERROR_TABLE])
def test_error_table(line: bytes, reply: bytes) -> None:
    assert parse(line) == reply


@pytest.mark.parametrize(
    ("line", "name"),
    [
        (b"status", "status"),
        (b"workers", "workers"),
        (b"version", "version"),
        (b"verbose", "verbose"),
        (b"getpid", "getpid"),
        (b"prioritystatus", "prioritystatus"),
        (b"show jobs", "show jobs"),
        (b"show unique jobs", "show unique jobs"),
        (b"shutdown", "shutdown"),
        (b"shutdown graceful", "shutdown graceful"),
        (b"shutdown now", "shutdown"),
    ],
)
def test_commands_without_operands(line: bytes, name: str) -> None:
    assert parse(line) == AdminCommand(name)


def test_commands_with_operands() -> None:
    assert parse(b"cancel job H:vm:1") == AdminCommand("cancel job", (b"H:vm:1",))
    assert parse(b"create function f1") == AdminCommand("create function", (b"f1",))
    assert parse(b"drop function f1") == AdminCommand("drop function", (b"f1",))
    assert parse(b"maxqueue f") == AdminCommand("maxqueue", (b"f",))
    assert parse(b"maxqueue f 10") == AdminCommand("maxqueue", (b"f", b"10"))
    assert parse(b"maxqueue f 1 2 3") == AdminCommand("maxqueue", (b"f", b"1", b"2", b"3"))


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        (b"STATUS", AdminCommand("status")),
        (b"Workers", AdminCommand("workers")),
        (b"PRIORITYSTATUS", AdminCommand("prioritystatus")),
        (b"SHOW JOBS", AdminCommand("show jobs")),
        (b"Show Unique Jobs", AdminCommand("show unique jobs")),
        (b"SHUTDOWN GRACEFUL", AdminCommand("shutdown graceful")),
        # Operands keep their case; only command words are case-insensitive.
        (b"CANCEL JOB H:VM:1", AdminCommand("cancel job", (b"H:VM:1",))),
        (b"Create Function Foo", AdminCommand("create function", (b"Foo",))),
        (b"DROP FUNCTION Foo", AdminCommand("drop function", (b"Foo",))),
        (b"MAXQUEUE Foo 3", AdminCommand("maxqueue", (b"Foo", b"3"))),
    ],
)
def test_command_words_are_case_insensitive(line: bytes, parsed: AdminCommand) -> None:
    assert parse(line) == parsed


def test_case_is_kept_in_the_unknown_command_reply() -> None:
    assert parse(b"FOO") == unknown(b"FOO")
    assert parse(b"Show") == unknown(b"Show")
    assert parse(b"CREATE") == incomplete(b"CREATE")


def test_runs_of_spaces_separate_tokens() -> None:
    assert parse(b"show    jobs") == AdminCommand("show jobs")
    assert parse(b"show  unique   jobs") == AdminCommand("show unique jobs")
    assert parse(b"cancel   job    H:1") == AdminCommand("cancel job", (b"H:1",))
    assert parse(b"maxqueue  f   1  2") == AdminCommand("maxqueue", (b"f", b"1", b"2"))


def test_a_leading_space_makes_an_empty_command_word() -> None:
    assert parse(b" status") == unknown(b"")
    assert parse(b"   show jobs") == unknown(b"")


def test_a_trailing_space_makes_an_empty_last_token() -> None:
    assert parse(b"status ") == AdminCommand("status")  # extra tokens are ignored by simple commands
    assert parse(b"show jobs ") == b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"
    assert parse(b"show ") == b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"
    assert parse(b"cancel job ") == AdminCommand("cancel job", (b"",))
    assert parse(b"create function f ") == incomplete(b"create")
    assert parse(b"maxqueue ") == AdminCommand("maxqueue", (b"",))


def test_tabs_are_not_separators() -> None:
    assert parse(b"status\t") == unknown(b"status\t")
    assert parse(b"show\tjobs") == unknown(b"show\tjobs")
    assert parse(b"show jobs\t") == b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"
    assert parse(b"create function a\tb") == AdminCommand("create function", (b"a\tb",))


def test_extra_tokens_after_simple_commands_are_ignored() -> None:
    assert parse(b"status a b c d") == AdminCommand("status")
    assert parse(b"workers x") == AdminCommand("workers")
    assert parse(b"version 1 2") == AdminCommand("version")
    assert parse(b"getpid now") == AdminCommand("getpid")


@pytest.mark.parametrize(
    "line",
    [b"a b c d e f", b"status a b c d e", b"maxqueue f 1 2 3 4", b"a b c d e ", b" a b c d e", b"a  b c d e f g"],
)
def test_more_than_five_tokens_raises(line: bytes) -> None:
    with pytest.raises(TooManyTokens):
        parse(line)


def test_five_tokens_are_fine() -> None:
    assert parse(b"a b c d e") == unknown(b"a")
    assert parse(b"status a b c ") == AdminCommand("status")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((b"f",), (b"f", [0, 0, 0])),
        ((b"f", b"5"), (b"f", [5, 5, 5])),
        ((b"f", b"5", b"6"), (b"f", [5, 6, 0])),
        ((b"f", b"1", b"2", b"3"), (b"f", [1, 2, 3])),
        ((b"f", b"0"), (b"f", [0, 0, 0])),
        ((b"f", b"-4"), (b"f", [0, 0, 0])),
        ((b"f", b"3", b"-1", b"2"), (b"f", [3, 0, 2])),
        ((b"f", b"abc"), (b"f", [0, 0, 0])),
        ((b"f", b"7x"), (b"f", [7, 7, 7])),
        ((b"f", b"+8"), (b"f", [8, 8, 8])),
        ((b"Func", b"10", b"20", b"30"), (b"Func", [10, 20, 30])),
    ],
)
def test_maxqueue_argument_forms(args: tuple[bytes, ...], expected: tuple[bytes, list[int]]) -> None:
    assert parse_maxqueue(args) == expected


def test_maxqueue_through_parse() -> None:
    parsed = parse(b"maxqueue f 4 5")
    assert isinstance(parsed, AdminCommand)
    assert parse_maxqueue(parsed.args) == (b"f", [4, 5, 0])
