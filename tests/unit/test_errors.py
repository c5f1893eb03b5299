"""One exception tree and one list of wire error codes (rule 8: errors carry meaning).

Every exception class geartrain defines derives from `GearmanError`, so `except GearmanError` catches whatever the
library raises; every ERROR packet code the server sends is an `ErrorCode` member, and a code from a server that
geartrain does not know still decodes.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from types import ModuleType

import pytest

import geartrain
from geartrain.errors import (
    ERROR_CODES,
    ErrorCode,
    GearmanError,
    JobNotFound,
    QueueFull,
    ServerError,
    server_error,
)
from geartrain.protocol.codec import Decoder
from geartrain.protocol.packets import RES, Packet, PacketType
from geartrain.server.core import replies

PACKAGE_DIR = Path(geartrain.__file__).parent

# Calls that put an ERROR packet code on the wire (or into a ProtocolError that becomes one), and which positional
# argument is the code. A string literal there is a code outside the enum.
CODE_ARGUMENT = {
    "error_packet": 0,
    "ProtocolError": 0,
    "PeerProtocolError": 0,
    "LocalProtocolError": 0,
    "_fatal": 1,  # Decoder._fatal(out, code, text)
    "_error": 1,  # EngineState._error(peer, code, text)
}


def module_names() -> list[str]:
    """Every module of the package, found on disk: pkgutil.walk_packages would skip store/ and manager/, which are
    namespace packages (no __init__.py)."""
    names = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        if parts[-1] == "__main__":  # runs the CLI when imported
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def package_modules() -> list[ModuleType]:
    """Every module of the package that imports here; one whose optional dependency is missing is left out."""
    modules = []
    for name in module_names():
        try:
            modules.append(importlib.import_module(name))
        except ImportError as exc:
            if (exc.name or "").split(".")[0] == "geartrain":  # a broken import of ours, not a missing extra
                raise
    return modules


def exception_classes() -> list[type[Exception]]:
    return [
        value
        for module in package_modules()
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == module.__name__
    ]


def test_every_exception_class_is_a_gearman_error() -> None:
    classes = exception_classes()
    assert len(classes) > 20  # the walk found the package's modules
    outside = sorted(f"{cls.__module__}.{cls.__qualname__}" for cls in classes if not issubclass(cls, GearmanError))
    assert outside == []


def replies_error_codes() -> dict[str, str]:
    """The code of every ERROR packet the replies module holds, by the constant's name."""
    codes = {}
    for name, value in vars(replies).items():
        if isinstance(value, replies.ErrorReply):
            value = value.packet  # its arguments are checked against its packet in the next test
        if not isinstance(value, bytes):
            continue
        for packet in Decoder(accept=RES).feed(value):  # a header alone (the JOB_CREATED prefixes) gives nothing
            if isinstance(packet, Packet) and packet.type == PacketType.ERROR:
                codes[name] = packet.args[0].decode()
    return codes


def test_replies_send_only_known_codes() -> None:
    codes = replies_error_codes()
    assert {"NOT_EXPECTED", "NOT_FOUND_DATA", "QUEUE_FULL", "UNKNOWN_OPTION"} <= codes.keys()
    assert {name: code for name, code in codes.items() if code not in set(ErrorCode)} == {}


def test_error_replies_give_in_process_peers_the_arguments_of_their_packet() -> None:
    error_replies = [value for value in vars(replies).values() if isinstance(value, replies.ErrorReply)]
    assert len(error_replies) >= 5  # NOT_EXPECTED, UNIQUE_TOO_LARGE, QUEUE_FULL, SERVER_QUEUE_FULL, DRAINING
    for error in error_replies:
        (packet,) = Decoder(accept=RES).feed(error.packet)
        assert packet == Packet(PacketType.ERROR, error.args)


def literal_codes(path: Path) -> list[str]:
    """`file:line` of each call in ``path`` that gives an error code as a string literal."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        position = CODE_ARGUMENT.get(name or "")
        if position is None:
            continue
        given = [*node.args[position : position + 1], *(k.value for k in node.keywords if k.arg == "code")]
        if any(isinstance(arg, ast.Constant) and isinstance(arg.value, str) for arg in given):
            found.append(f"{path.relative_to(PACKAGE_DIR)}:{node.lineno}")
    return found


def test_error_codes_are_written_as_enum_members() -> None:
    assert [site for path in sorted(PACKAGE_DIR.rglob("*.py")) for site in literal_codes(path)] == []


@pytest.mark.parametrize("code", list(ErrorCode))
def test_a_member_encodes_like_its_string(code: ErrorCode) -> None:
    assert replies.error_packet(code, "text") == replies.error_packet(code.value, "text")
    assert type(code.value) is str and code == code.value


def test_error_codes_table_is_keyed_by_members() -> None:
    assert all(isinstance(code, ErrorCode) and cls.code is code for code, cls in ERROR_CODES.items())


def test_known_code_decodes_to_its_class() -> None:
    error = server_error("JOB_NOT_FOUND", "no such job")
    assert type(error) is JobNotFound
    assert (error.code, error.text, str(error)) == ("JOB_NOT_FOUND", "no such job", "JOB_NOT_FOUND: no such job")


def test_unknown_code_still_decodes() -> None:
    error = server_error("SOMETHING_NEW", "from a newer server")
    assert type(error) is ServerError
    assert (error.code, str(error)) == ("SOMETHING_NEW", "SOMETHING_NEW: from a newer server")


def test_message_without_text_is_a_plain_string() -> None:
    assert QueueFull().args == ("QUEUE_ERROR",)
    assert type(QueueFull().args[0]) is str
