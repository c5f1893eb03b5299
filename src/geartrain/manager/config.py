"""The worker manager's configuration: a TOML file read into frozen records, with errors that name the place.

Only parsing and checking live here (no processes), so every rule is testable on its own::

    servers = ["127.0.0.1:4730"]          # default for every group

    [manager]
    stop_timeout = 30                     # seconds a stopping process gets before SIGKILL
    backoff_initial = 0.5                 # first restart delay after a crash, doubling ...
    backoff_max = 30                      # ... up to this
    stable_after = 10                     # a process that ran this long has its backoff reset

    [groups.reverse]                      # a Python callable, run with geartrain's worker library
    callable = "myapp.jobs:reverse"
    functions = ["reverse"]               # the Gearman functions it serves (default: the group's name)
    processes = 4
    concurrency = 1                       # jobs at once in each process
    recycle_jobs = 1000                   # replace a process after this many jobs ...
    recycle_seconds = 3600                # ... or after this long
    env = { MYAPP_MODE = "prod" }

    [groups.wc]                           # any command that is itself a Gearman worker
    command = "gearman -w -f wc -- wc -l" # a string (split like a shell would) or a list
    processes = 2
"""

from __future__ import annotations

import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from geartrain.errors import GearmanError

DEFAULT_SERVERS = ("localhost:4730",)

_MANAGER_KEYS = {"stop_timeout", "backoff_initial", "backoff_max", "stable_after"}
_GROUP_KEYS = {
    "callable",
    "command",
    "functions",
    "processes",
    "concurrency",
    "recycle_jobs",
    "recycle_seconds",
    "servers",
    "env",
    "cwd",
    "stop_timeout",
}
_TOP_KEYS = {"servers", "manager", "groups"}


class ConfigError(GearmanError, ValueError):  # ValueError: what it was before, for callers that catch that
    """The configuration cannot be used; the message says where (``file: groups.wc.processes: ...``) and why."""


@dataclass(frozen=True)
class ManagerSettings:
    """How the manager treats its processes (the ``[manager]`` table)."""

    stop_timeout: float = 30.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    stable_after: float = 10.0


@dataclass(frozen=True)
class GroupConfig:
    """One worker group: ``processes`` copies of a Python callable (``callable``) or of a ``command``.

    Two groups are the same when every field is equal: that is what a reload compares.
    """

    name: str
    servers: tuple[str, ...]
    processes: int = 1
    callable: str | None = None
    functions: tuple[str, ...] = ()
    concurrency: int = 1
    command: tuple[str, ...] = ()
    recycle_jobs: int = 0  # 0: never
    recycle_seconds: float = 0.0  # 0: never
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    stop_timeout: float = 30.0

    @property
    def is_python(self) -> bool:
        return self.callable is not None

    def updatable_in_place(self, other: GroupConfig) -> bool:
        """True when only ``processes`` or ``stop_timeout`` differ: the running processes can stay (the group
        grows or shrinks); any other change needs new processes."""
        return _process_settings(self) == _process_settings(other)


def _process_settings(group: GroupConfig) -> GroupConfig:
    """The group without the fields that a running process does not depend on."""
    return replace(group, processes=0, stop_timeout=0.0)


@dataclass(frozen=True)
class ManagerConfig:
    """The whole file: manager settings and the groups by name."""

    settings: ManagerSettings = field(default_factory=ManagerSettings)
    groups: Mapping[str, GroupConfig] = field(default_factory=dict)


def load_config(path: str | Path) -> ManagerConfig:
    """Read and check a TOML file; raises :class:`ConfigError` naming the file and the offending key."""
    where = str(path)
    try:
        with open(path, "rb") as stream:
            document = tomllib.load(stream)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    return parse_config(document, where)


def parse_config(document: Mapping[str, Any], where: str = "<config>") -> ManagerConfig:
    """Check an already parsed document (see the module docstring for the keys)."""
    _no_unknown_keys(document, _TOP_KEYS, where, "")
    servers = _servers(document.get("servers", list(DEFAULT_SERVERS)), where, "servers")
    settings = _settings(document.get("manager", {}), where)
    groups_table = document.get("groups", {})
    if not isinstance(groups_table, dict):
        raise ConfigError(f"{where}: groups: must be a table of groups ([groups.NAME])")
    if not groups_table:
        raise ConfigError(f"{where}: no worker groups: add at least one [groups.NAME] table")
    groups = {name: _group(name, table, servers, settings, where) for name, table in groups_table.items()}
    return ManagerConfig(settings, groups)


def _no_unknown_keys(table: Mapping[str, Any], known: set[str], where: str, prefix: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{where}: {prefix}{unknown[0]}: unknown key (expected one of: {', '.join(sorted(known))})")


def _integer(table: Mapping[str, Any], key: str, default: int, where: str, prefix: str, minimum: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: {prefix}{key}: must be a whole number, not {value!r}")
    if value < minimum:
        raise ConfigError(f"{where}: {prefix}{key}: must be at least {minimum}, not {value!r}")
    return value


def _seconds(table: Mapping[str, Any], key: str, default: float, where: str, prefix: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: {prefix}{key}: must be a number of seconds, not {value!r}")
    if value < 0:
        raise ConfigError(f"{where}: {prefix}{key}: must not be negative, not {value!r}")
    return float(value)


def _servers(value: Any, where: str, key: str) -> tuple[str, ...]:
    from geartrain.client.transport import parse_address

    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise ConfigError(f'{where}: {key}: must be a non-empty list of "host:port" strings')
    for item in value:
        try:
            parse_address(item)
        except ValueError:
            raise ConfigError(f"{where}: {key}: {item!r} is not a valid host:port address") from None
    return tuple(item.strip() for item in value)


def _settings(table: Any, where: str) -> ManagerSettings:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: manager: must be a table ([manager])")
    _no_unknown_keys(table, _MANAGER_KEYS, where, "manager.")
    defaults = ManagerSettings()
    settings = ManagerSettings(
        **{key: _seconds(table, key, getattr(defaults, key), where, "manager.") for key in table}
    )
    if settings.backoff_max < settings.backoff_initial:
        raise ConfigError(f"{where}: manager.backoff_max: must not be less than manager.backoff_initial")
    return settings


def _group(name: str, table: Any, servers: tuple[str, ...], settings: ManagerSettings, where: str) -> GroupConfig:
    prefix = f"groups.{name}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: {prefix}: must be a table ([{prefix}])")
    _no_unknown_keys(table, _GROUP_KEYS, where, f"{prefix}.")
    has_callable, has_command = "callable" in table, "command" in table
    if has_callable == has_command:
        raise ConfigError(f"{where}: {prefix}: give either 'callable' (a Python function) or 'command', not both")
    fields: dict[str, Any] = {
        "name": name,
        "servers": _servers(table["servers"], where, f"{prefix}.servers") if "servers" in table else servers,
        "processes": _integer(table, "processes", 1, where, f"{prefix}.", minimum=0),
        "recycle_jobs": _integer(table, "recycle_jobs", 0, where, f"{prefix}.", minimum=0),
        "recycle_seconds": _seconds(table, "recycle_seconds", 0.0, where, f"{prefix}."),
        "stop_timeout": _seconds(table, "stop_timeout", settings.stop_timeout, where, f"{prefix}."),
        "env": _env(table.get("env", {}), where, f"{prefix}.env"),
        "cwd": _optional_text(table.get("cwd"), where, f"{prefix}.cwd"),
    }
    if has_callable:
        fields["callable"] = _import_path(table["callable"], where, f"{prefix}.callable")
        fields["functions"] = _functions(table.get("functions", [name]), where, f"{prefix}.functions")
        fields["concurrency"] = _integer(table, "concurrency", 1, where, f"{prefix}.", minimum=1)
    else:
        for python_only in ("functions", "concurrency", "recycle_jobs"):
            if python_only in table:
                hint = " (a command counts its own jobs: e.g. gearman -w -c N, and exit 0 gets it restarted)"
                raise ConfigError(
                    f"{where}: {prefix}.{python_only}: only for Python groups ('callable')"
                    + (hint if python_only == "recycle_jobs" else "")
                )
        fields["command"] = _command(table["command"], where, f"{prefix}.command")
    return GroupConfig(**fields)


def _import_path(value: Any, where: str, key: str) -> str:
    module, colon, attribute = value.partition(":") if isinstance(value, str) else ("", "", "")
    dotted = all(part.isidentifier() for part in module.split(".")) and all(
        part.isidentifier() for part in attribute.split(".")
    )
    if not colon or not dotted:
        raise ConfigError(f'{where}: {key}: must be "package.module:function", not {value!r}')
    return str(value)


def _functions(value: Any, where: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(item, str) and item for item in value):
        raise ConfigError(f"{where}: {key}: must be a non-empty list of function names")
    for item in value:
        if any(c in item for c in " \t\r\n\0"):
            raise ConfigError(f"{where}: {key}: {item!r}: a function name cannot hold spaces or NUL")
    return tuple(value)


def _command(value: Any, where: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {key}: cannot split {value!r}: {exc}") from None
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        words = list(value)
    else:
        raise ConfigError(f"{where}: {key}: must be a string or a list of strings")
    if not words:
        raise ConfigError(f"{where}: {key}: is empty")
    return tuple(words)


def _env(value: Any, where: str, key: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise ConfigError(f'{where}: {key}: must be a table of strings (env = {{ NAME = "value" }})')
    for name, text in value.items():
        if not isinstance(text, str):
            raise ConfigError(f"{where}: {key}.{name}: must be a string, not {text!r}")
        if not name or "=" in name or "\0" in name:
            raise ConfigError(f"{where}: {key}: {name!r} is not a valid environment variable name")
    return tuple(sorted(value.items()))


def _optional_text(value: Any, where: str, key: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}: {key}: must be a string")
    return value
