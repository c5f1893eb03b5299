"""The access policy: which identities may do what to which functions. Pure: no I/O but :func:`load_policy`.

An ACL file (TOML) names identities and grants them actions on function patterns::

    [secrets]                       # secrets a connection may present (OPTION_REQ "auth=<secret>")
    frontend = "sha256:5e88...d8"   # the hex SHA-256 of the secret, or "plain:<secret>"

    [[allow]]
    who = ["frontend", "*.web.example.com"]   # identity patterns (fnmatch)
    actions = ["submit"]                       # submit, work, admin_read, admin_write
    functions = ["reverse", "thumbnail.*"]     # function patterns (fnmatch)

A connection's identities are the names in its verified TLS client certificate (subject CN, DNS/email/URI
subject-alternative names) and the name of the secret it presented. Every connection also counts as
``anonymous``, so what ``anonymous`` is allowed is allowed to all. Anything not allowed is denied.
"""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from geartrain.errors import GearmanError

SUBMIT = "submit"
WORK = "work"
ADMIN_READ = "admin_read"
ADMIN_WRITE = "admin_write"
ACTIONS = (SUBMIT, WORK, ADMIN_READ, ADMIN_WRITE)
ANONYMOUS = "anonymous"
ALL_FUNCTIONS = "*"

_CACHE_LIMIT = 4096


class PolicyError(GearmanError, ValueError):  # ValueError: what it was before, for callers that catch that
    """The ACL file is not valid; the message says where."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``[[allow]]`` table: identities matching any of ``who`` may do ``actions`` on ``functions``."""

    who: tuple[str, ...]
    actions: frozenset[str]
    functions: tuple[str, ...]

    def covers(self, names: Iterable[str], action: str, function: str | None) -> bool:
        if action not in self.actions:
            return False
        if not any(fnmatchcase(name, pattern) for name in names for pattern in self.who):
            return False
        if function is None:  # a server-wide command (status, shutdown ...) needs a grant on every function
            return ALL_FUNCTIONS in self.functions
        return any(fnmatchcase(function, pattern) for pattern in self.functions)


class Policy:
    """The rules of one ACL file, with the secrets that name identities.

    :meth:`allows` answers are cached per (identities, action, function), so the per-packet cost of a busy
    function is one dictionary lookup.
    """

    def __init__(self, rules: Iterable[Rule], secrets: dict[str, bytes] | None = None) -> None:
        self.rules = tuple(rules)
        self._secrets = dict(secrets or {})  # identity -> SHA-256 digest of its secret
        self._cache: dict[tuple[tuple[str, ...], str, str | None], bool] = {}

    def allows(self, identity: tuple[str, ...], action: str, function: str | None) -> bool:
        """May a connection known by ``identity`` (its names; empty = anonymous) do ``action`` on ``function``?

        ``function`` ``None`` means a command that concerns the whole server: it needs a rule granting ``*``.
        """
        key = (identity, action, function)
        answer = self._cache.get(key)
        if answer is None:
            names = (*identity, ANONYMOUS)
            answer = any(rule.covers(names, action, function) for rule in self.rules)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = answer
        return answer

    def identify(self, secret: bytes) -> str | None:
        """The identity whose secret this is, or ``None``. Compares digests in constant time."""
        digest = hashlib.sha256(secret).digest()
        found = None
        for name, expected in self._secrets.items():
            if hmac.compare_digest(digest, expected):
                found = name
        return found

    @property
    def has_secrets(self) -> bool:
        return bool(self._secrets)


def secret_digest(secret: str) -> str:
    """The ``sha256:<hex>`` form of a secret, for the ``[secrets]`` table of an ACL file."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


def parse_policy(text: str, source: str = "ACL") -> Policy:
    """Build a :class:`Policy` from the TOML text of an ACL file; raises :class:`PolicyError`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"ACL file {source}: not valid TOML: {exc}") from exc
    unknown = set(data) - {"secrets", "allow"}
    if unknown:
        raise PolicyError(f"{source}: unknown section(s) {', '.join(sorted(unknown))}")
    secrets = {name: _parse_secret(source, name, value) for name, value in _table(source, data, "secrets").items()}
    allow = data.get("allow", [])
    if not isinstance(allow, list):
        raise PolicyError(f"{source}: 'allow' must be an array of tables ([[allow]])")
    return Policy([_parse_rule(source, index, entry) for index, entry in enumerate(allow, 1)], secrets)


def load_policy(path: str) -> Policy:
    """Read and parse an ACL file."""
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except OSError as exc:
        raise PolicyError(f"cannot read the ACL file {path}: {exc.strerror}") from exc
    return parse_policy(text, path)


def _table(source: str, data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise PolicyError(f"{source}: [{name}] must be a table")
    return value


def _parse_secret(source: str, name: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise PolicyError(f"{source}: secret {name!r} must be a string")
    kind, _, rest = value.partition(":")
    if kind == "plain" and rest:
        return hashlib.sha256(rest.encode()).digest()
    if kind == "sha256":
        try:
            digest = bytes.fromhex(rest)
        except ValueError:
            digest = b""
        if len(digest) == 32:
            return digest
    raise PolicyError(f"{source}: secret {name!r} must be 'sha256:<64 hex digits>' or 'plain:<secret>'")


def _strings(source: str, where: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(item, str) and item for item in value):
        raise PolicyError(f"{source}: {where} must be a non-empty string or list of strings")
    return tuple(value)


def _parse_rule(source: str, index: int, entry: object) -> Rule:
    where = f"[[allow]] #{index}"
    if not isinstance(entry, dict):
        raise PolicyError(f"{source}: {where} must be a table")
    unknown = set(entry) - {"who", "actions", "functions"}
    if unknown:
        raise PolicyError(f"{source}: {where}: unknown key(s) {', '.join(sorted(unknown))}")
    actions = {action.replace("-", "_") for action in _strings(source, f"{where} actions", entry.get("actions"))}
    bad = actions - set(ACTIONS)
    if bad:
        raise PolicyError(f"{source}: {where}: unknown action(s) {', '.join(sorted(bad))} (use {', '.join(ACTIONS)})")
    return Rule(
        who=_strings(source, f"{where} who", entry.get("who")),
        actions=frozenset(actions),
        functions=_strings(source, f"{where} functions", entry.get("functions", [ALL_FUNCTIONS])),
    )
