"""Usage errors in one line, for every ``geartrain`` command.

argparse prints the whole usage above its error: forty lines of the server's flags, with the one that matters at
the bottom. Here the error is the line, and ``--help`` is named for the rest.
"""

from __future__ import annotations

import argparse
from typing import NoReturn


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, whose errors are ``prog: error: why (see prog --help)`` and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def port_number(text: str) -> int:
    """A TCP port, 0 to 65535 (argparse's ``int`` would take 70000, which the OS then reads modulo 65536)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: not a number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {port}: ports are 0 to 65535")
    return port
