"""``geartrain result HANDLE`` and ``geartrain dead [list|show|retry|delete] ...`` (issue 15): the life-cycle
commands of ``geartrain admin`` under the names the issue gives them, with its options anywhere on the line
(``-s``, ``--json``, ``-t``, TLS): ``geartrain dead retry all -s host:4730`` is ``geartrain admin -s host:4730
dead-retry all``."""

from __future__ import annotations

from collections.abc import Sequence

from geartrain.cli.admin import build_parser
from geartrain.cli.admin import main as admin

# `geartrain dead VERB ...` -> the `geartrain admin` command; without a verb, `dead [FUNCTION]` lists.
DEAD_VERBS = {"list": "dead", "show": "dead-show", "retry": "dead-retry", "delete": "dead-delete"}


def admin_argv(command: str, argv: Sequence[str]) -> list[str]:
    """The ``geartrain admin`` arguments a shortcut stands for: its options first, then the admin command."""
    takes_value = {
        option for action in build_parser()._actions for option in action.option_strings if action.nargs != 0
    }
    options: list[str] = []
    words: list[str] = []
    index = 0
    while index < len(argv):
        item = argv[index]
        index += 1
        if item.startswith("-") and item != "-":
            options.append(item)
            if item in takes_value and index < len(argv):  # "-s HOST" (not "--server=HOST": one item)
                options.append(argv[index])
                index += 1
        else:
            words.append(item)
    if command == "dead":
        verb = DEAD_VERBS.get(words[0]) if words else None
        return [*options, *(["dead", *words] if verb is None else [verb, *words[1:]])]
    return [*options, command, *words]


def main(command: str, argv: Sequence[str]) -> int:
    return admin(admin_argv(command, argv))
