"""Applies an access :class:`~geartrain.security.policy.Policy` to a running engine, at the packet boundary.

The guard wraps only the engine handlers of the packets it checks (submits, CAN_DO, status queries, OPTION_REQ)
and hooks the admin command runner, so a server without an ACL file pays nothing per packet. Without a policy,
only the loopback rule applies: admin write commands from other hosts are refused unless allowed by a flag.

A secret is presented as ``OPTION_REQ "auth=<secret>"`` (binary, so admin text connections can send it too,
before their first command). It is answered ``OPTION_RES "auth"``, or an ERROR PERMISSION_DENIED that closes the
connection, so each guess costs a connection.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from geartrain.errors import ErrorCode
from geartrain.protocol.admin import AdminCommand, error_line
from geartrain.protocol.codec import encode
from geartrain.protocol.packets import PacketType
from geartrain.security.policy import ADMIN_READ, ADMIN_WRITE, SUBMIT, WORK, Policy
from geartrain.security.tls import certificate_names
from geartrain.server.core.admin import AdminCommands
from geartrain.server.core.engine import Engine
from geartrain.server.core.jobs import Job
from geartrain.server.core.peers import Peer
from geartrain.server.core.state import Handler

P = PacketType
log = logging.getLogger("geartrain.access")

AUTH_OPTION = b"auth="
DECISION_CACHE_SIZE = 4096
DENIED_CODE = ErrorCode.PERMISSION_DENIED

SUBMIT_PACKETS = (
    P.SUBMIT_JOB,
    P.SUBMIT_JOB_BG,
    P.SUBMIT_JOB_HIGH,
    P.SUBMIT_JOB_HIGH_BG,
    P.SUBMIT_JOB_LOW,
    P.SUBMIT_JOB_LOW_BG,
    P.SUBMIT_JOB_EPOCH,
    P.SUBMIT_REDUCE_JOB,
    P.SUBMIT_REDUCE_JOB_BACKGROUND,
)
WORK_PACKETS = (P.CAN_DO, P.CAN_DO_TIMEOUT)

# Admin commands by the permission they need. `version` stays open: it is the liveness ping of monitoring tools
# and of gearmand's own test harness. A command not listed here (a later addition) needs admin write.
ADMIN_OPEN = frozenset({"version"})
ADMIN_READ_COMMANDS = frozenset(
    {"status", "prioritystatus", "workers", "verbose", "getpid", "show jobs", "show unique jobs"}
    | {"status json", "prioritystatus json", "workers json", "show jobs json", "status cluster"}
    | {"dead list", "dead show", "paused", "cron list", "result", "policy show"}
)


def is_local(address: str) -> bool:
    """A loopback address (IPv4, IPv6, or IPv4-mapped IPv6), or a Unix socket."""
    if address == "unix":
        return True
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool((mapped or ip).is_loopback)


def _function_name(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class AccessGuard:
    """Access control for one engine. ``policy`` ``None``: no ACL, only the loopback rule for admin writes
    (unless ``allow_remote_admin``). ``denials`` counts refusals by action, for logs and metrics."""

    def __init__(
        self, engine: Engine, admin: AdminCommands, policy: Policy | None, *, allow_remote_admin: bool = False
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.allow_remote_admin = allow_remote_admin
        self.denials: Counter[str] = Counter()
        self._repeats: dict[str, int] = {}
        self._decisions: list[dict[tuple[tuple[str, ...], bytes], bool]] = []  # per guarded action; see reload
        if policy is not None:
            guard_submit = self._guard_by_function(SUBMIT, SUBMIT)
            guard_work = self._guard_by_function(WORK, "work (CAN_DO)")
            for ptype in SUBMIT_PACKETS:
                engine.wrap_handler(ptype, guard_submit)
            for ptype in WORK_PACKETS:
                engine.wrap_handler(ptype, guard_work)
            # The lookups go through self.engine at each query, as the job table is the engine's to manage.
            engine.wrap_handler(P.GET_STATUS, self._guard_status(lambda handle: self.engine.jobs.get(handle)))
            engine.wrap_handler(P.GET_STATUS_UNIQUE, self._guard_status(lambda unique: self.engine.find_unique(unique)))
            engine.wrap_handler(P.OPTION_REQ, self._guard_option)
        if policy is not None or not allow_remote_admin:
            admin.guard = self.check_admin

    def reload(self, policy: Policy) -> None:
        """Put ``policy`` in force from the next packet on (SIGHUP with --acl-file). Only a guard that started with a
        policy guards packets at all, so only it can take a new one. Connections keep the names they proved:
        a secret the new policy drops is refused at the next connection that presents it, not on this one."""
        if self.policy is None:
            raise ValueError("the server runs without access control; start it with --acl-file")
        self.policy = policy
        for decisions in self._decisions:
            decisions.clear()  # cached answers of the old policy
        self._repeats.clear()

    @property
    def active(self) -> bool:
        """Whether anything is checked at all."""
        return self.policy is not None or not self.allow_remote_admin

    # ------------------------------------------------------------------ identities

    def connected(self, peer: Peer, transport: Any) -> None:
        """A connection is up (after its TLS handshake): its verified certificate names become its identity."""
        if self.policy is not None:
            peer.identity = certificate_names(transport.get_extra_info("ssl_object"))

    def allows(self, peer: Peer, action: str, function: str | None) -> bool:
        """The policy's answer for this connection (always yes without a policy)."""
        return self.policy is None or self.policy.allows(peer.identity, action, function)

    # ------------------------------------------------------------------ for other front ends (HTTP)

    def identity_for(self, ssl_object: Any, secret: bytes | None) -> tuple[str, ...] | None:
        """The identity of a request that came with this TLS object and presented this secret (``None``: none);
        ``None`` when the secret is unknown (counted and logged as a refused ``auth``)."""
        names = certificate_names(ssl_object) if self.policy is not None else ()
        if secret is None or self.policy is None:
            return names
        name = self.policy.identify(secret)
        if name is None:
            self._record("auth", "unknown secret")
            return None
        return names if name in names else (*names, name)

    def check(
        self, identity: tuple[str, ...], address: str, action: str, function: str | None, what: str | None = None
    ) -> str | None:
        """``None`` when ``identity`` (from ``address``) may do ``action`` on ``function``, else why not (the
        refusal is counted and logged; ``what`` names the request in it, default the action). Without a policy
        only the loopback rule for admin writes applies."""
        what = what or action
        if self.policy is None:
            if action != ADMIN_WRITE or self.allow_remote_admin or is_local(address):
                return None
            self._record(action, f"{what} from {address} (not loopback)")
            return f"{what} is limited to loopback connections (see --allow-remote-admin)"
        if self.policy.allows(identity, action, function):
            return None
        who = ",".join(identity) or "anonymous"
        target = f"function {function!r}" if function is not None else "the server"
        self._record(action, f"{what} on {target} for {who} from {address}")
        return f"{what} on {target} is not allowed for {who}"

    def _record(self, action: str, what: str) -> None:
        """Count a refusal, and log it. A client retrying a refused request in a loop must not flood the log: the
        1st, 2nd, 4th, 8th ... refusal of the same request is logged, with the count so far."""
        self.denials[action] += 1
        count = self._repeats.get(what, 0) + 1
        if len(self._repeats) >= DECISION_CACHE_SIZE:
            self._repeats.clear()
        self._repeats[what] = count
        if count & (count - 1) == 0:
            log.warning("access denied: %s%s", what, f" ({count} times)" if count > 1 else "")

    def _refuse(self, peer: Peer, action: str, function: str | None, what: str) -> None:
        # Only called once the policy said no: check() repeats the (cached) decision and words the refusal.
        reason = self.check(peer.identity, peer.address, action, function, what) or f"{what} refused"
        self.engine.error(peer, DENIED_CODE, reason)  # an HTTP submission's in-process peer hears it too

    # ------------------------------------------------------------------ binary packets

    def _guard_by_function(self, action: str, what: str) -> Callable[[Handler], Handler]:
        """A wrapper for packets whose first argument names the function (submits, CAN_DO): one cached decision
        per (identity, raw name), so a busy function costs one dictionary lookup per packet."""
        decisions: dict[tuple[tuple[str, ...], bytes], bool] = {}
        self._decisions.append(decisions)

        def wrap(handler: Handler) -> Handler:
            def guarded(peer: Peer, args: tuple[bytes, ...], now: float) -> None:
                key = (peer.identity, args[0])
                allowed = decisions.get(key)
                if allowed is None:
                    if len(decisions) >= DECISION_CACHE_SIZE:
                        decisions.clear()
                    allowed = decisions[key] = self.allows(peer, action, _function_name(args[0]))
                if allowed:
                    handler(peer, args, now)
                else:
                    self._refuse(peer, action, _function_name(args[0]), what)

            return guarded

        return wrap

    def _guard_status(self, find: Callable[[bytes], Job | None]) -> Callable[[Handler], Handler]:
        """A wrapper for GET_STATUS and GET_STATUS_UNIQUE, which differ only in ``find``: how their first argument
        names the job (its handle, its unique). A job's status is the business of those who may submit to its
        function; an unknown job reveals nothing, so it is answered as usual."""

        def wrap(handler: Handler) -> Handler:
            def guarded(peer: Peer, args: tuple[bytes, ...], now: float) -> None:
                job = find(args[0]) if args else None
                function = _function_name(job.function.name) if job is not None else None
                if function is None or self.allows(peer, SUBMIT, function):
                    handler(peer, args, now)
                else:
                    self._refuse(peer, SUBMIT, function, "job status")

            return guarded

        return wrap

    def _guard_option(self, handler: Handler) -> Handler:
        def guarded(peer: Peer, args: tuple[bytes, ...], now: float) -> None:
            if args and args[0][: len(AUTH_OPTION)].lower() == AUTH_OPTION:
                self._authenticate(peer, args[0][len(AUTH_OPTION) :])
            else:
                handler(peer, args, now)

        return guarded

    def _authenticate(self, peer: Peer, secret: bytes) -> None:
        assert self.policy is not None
        name = self.policy.identify(secret)
        if name is None:
            self._record("auth", f"unknown secret from {peer.address}")
            self.engine.error(peer, DENIED_CODE, "Unknown secret")
            peer.close_after_flush = True
            return
        if name not in peer.identity:
            peer.identity = (*peer.identity, name)
        log.info("%s authenticated as %s", peer.address, name)
        self.engine.reply(peer, encode(P.OPTION_RES, AUTH_OPTION[:-1]))

    # ------------------------------------------------------------------ admin text commands

    def check_admin(self, peer: Peer, command: AdminCommand) -> bytes | None:
        """``None`` to run the command, else the ``ERR PERMISSION_DENIED`` line to answer instead."""
        name = command.name
        if name in ADMIN_OPEN:
            return None
        action = ADMIN_READ if name in ADMIN_READ_COMMANDS else ADMIN_WRITE
        function = self._admin_function(command) if self.policy is not None else None
        refusal = self.check(peer.identity, peer.address, action, function, name)
        return _admin_refusal(refusal) if refusal is not None else None

    def _admin_function(self, command: AdminCommand) -> str | None:
        """The function an admin command concerns; ``None`` for a server-wide one."""
        if command.name == "cancel job":
            job = self.engine.jobs.get(command.args[0]) if command.args else None
            return _function_name(job.function.name) if job is not None else None
        if command.name in ("create function", "drop function", "maxqueue") and command.args:
            return _function_name(command.args[0])
        return None


def _admin_refusal(text: str) -> bytes:
    return error_line(DENIED_CODE, text)
