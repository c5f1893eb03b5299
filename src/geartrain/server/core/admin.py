"""Admin commands run against the engine's state, answered exactly as gearmand 1.1.20 answers them.

Row order follows gearmand's hash tables (Jenkins one-at-a-time hash of the name modulo the bucket count, newest
first within a bucket), so listings compare byte for byte with the C server.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

from geartrain.lifecycle.overrides import parse_cron_tokens, parse_setting
from geartrain.lifecycle.policy import PolicyError, cron_ident
from geartrain.protocol.admin import (
    OK,
    AdminCommand,
    TooManyTokens,
    error_line,
    format_ok_value,
    format_table,
    parse,
    parse_maxqueue,
)
from geartrain.server.core import overrides
from geartrain.server.core.engine import Engine
from geartrain.server.core.jobs import Job
from geartrain.server.core.lifecycle import KeptResult, Lifecycle, dead_rows
from geartrain.server.core.peers import Peer, PendingAck
from geartrain.server.core.queues import Function
from geartrain.server.core.snapshot import functions_view, jobs_view, totals_view, workers_view


def gearmand_hash(key: bytes) -> int:
    """gearmand's Jenkins one-at-a-time hash: signed chars, arithmetic shifts on a signed 32-bit value, 0 -> 1."""
    value = 0
    for byte in key:
        value = (value + (byte - 256 if byte > 127 else byte)) & 0xFFFFFFFF
        value = (value + (value << 10)) & 0xFFFFFFFF
        value ^= _signed(value) >> 6 & 0xFFFFFFFF
    value = (value + (value << 3)) & 0xFFFFFFFF
    value ^= _signed(value) >> 11 & 0xFFFFFFFF
    value = (value + (value << 15)) & 0xFFFFFFFF
    return value or 1


def _signed(value: int) -> int:
    return value - 0x100000000 if value & 0x80000000 else value


class AdminCommands:
    """Executes parsed admin lines for one engine."""

    def __init__(self, engine: Engine, clock: Callable[[], float] | None = None) -> None:
        self.engine = engine
        self.clock = clock  # for job ages in `show jobs json`; the transport passes time.time in
        #: Access control: called with each parsed command; a reply it returns is sent instead of running it.
        self.guard: Callable[[Peer, AdminCommand], bytes | None] | None = None
        #: A cluster node's view of its cluster for `status cluster`: one row per node (set by the composition root).
        self.cluster_rows: Callable[[], list[tuple[bytes | int, ...]]] | None = None
        #: A cluster node's look-up of a kept result another node stored, for `result` (set by the composition
        #: root): called with the handle and what to call with the answer, once the database has given it.
        self.result_lookup: Callable[[bytes, Callable[[KeptResult | None], None]], None] | None = None
        self._commands: dict[str, Callable[[Peer, AdminCommand], bytes]] = {
            "status": self._status,
            "prioritystatus": self._prioritystatus,
            "workers": self._workers,
            "version": lambda peer, cmd: format_ok_value(engine.config.version.encode()),
            "verbose": lambda peer, cmd: format_ok_value(engine.config.verbose.encode()),
            "getpid": lambda peer, cmd: format_ok_value(str(engine.config.pid).encode()),
            "show jobs": self._show_jobs,
            "show unique jobs": self._show_unique_jobs,
            "cancel job": self._cancel_job,
            "create function": self._create_function,
            "drop function": self._drop_function,
            "maxqueue": self._maxqueue,
            "shutdown": self._shutdown,
            "shutdown graceful": self._shutdown,
            "status json": self._status_json,
            "prioritystatus json": self._status_json,
            "workers json": lambda peer, cmd: _json_line({"workers": workers_view(engine)}),
            "show jobs json": self._show_jobs_json,
            "status cluster": self._status_cluster,
            "dead list": self._lifecycle(self._dead_list),
            "dead show": self._lifecycle(self._dead_show),
            "dead retry": self._lifecycle(self._dead_retry),
            "dead delete": self._lifecycle(self._dead_delete),
            "pause": self._lifecycle(self._pause),
            "resume": self._lifecycle(self._resume),
            "paused": self._lifecycle(lambda lifecycle, cmd: format_table([(f,) for f in sorted(lifecycle.paused)])),
            "cron list": self._lifecycle(self._cron_list),
            "cron add": self._lifecycle(self._cron_add),
            "cron remove": self._lifecycle(self._cron_remove),
            "policy show": self._lifecycle(self._policy_show),
            "policy set": self._lifecycle(self._policy_set),
            "policy unset": self._lifecycle(self._policy_unset),
            "result": self._result,
        }

    def run(self, peer: Peer, line: bytes) -> None:
        """Answer one admin line on ``peer`` (appending to its outbox)."""
        try:
            parsed = parse(line)
        except TooManyTokens:
            self.engine.reply(peer, b"ERR INVALID_ARGUMENTS Too+many+arguments\r\n")
            peer.close_after_flush = True
            return
        if isinstance(parsed, bytes):
            self.engine.reply(peer, parsed)
            return
        if self.guard is not None and (refusal := self.guard(peer, parsed)) is not None:
            self.engine.reply(peer, refusal)
            return
        reply = self._commands[parsed.name](peer, parsed)
        if reply:  # empty: the answer waits in the peer's outbox for the database (_result on a cluster)
            self.engine.reply(peer, reply)

    # ------------------------------------------------------------------ listings

    def functions_in_order(self) -> list[Function]:
        buckets = self.engine.config.hashtable_buckets
        return sorted(
            self.engine.functions.values(),
            key=lambda f: (gearmand_hash(f.name) % buckets, -f.created_seq),
        )

    def _status(self, peer: Peer, command: AdminCommand) -> bytes:
        rows: list[tuple[bytes | int, ...]] = [
            (f.name, f.total, f.running, f.worker_count) for f in self.functions_in_order()
        ]
        return format_table(rows)

    def _status_cluster(self, peer: Peer, command: AdminCommand) -> bytes:
        """NODE, ADDRESS, SECONDS SINCE ITS HEARTBEAT, JOBS HELD, LEADER (1/0), per node, as of the last heartbeat."""
        if self.cluster_rows is None:
            return b"ERR NOT_IN_CLUSTER this+server+is+not+a+node+of+a+cluster+(--cluster)\r\n"
        return format_table(self.cluster_rows())

    def _prioritystatus(self, peer: Peer, command: AdminCommand) -> bytes:
        rows: list[tuple[bytes | int, ...]] = [
            (f.name, f.queued[0], f.queued[1], f.queued[2], f.worker_count) for f in self.functions_in_order()
        ]
        return format_table(rows)

    def _workers(self, peer: Peer, command: AdminCommand) -> bytes:
        lines = []
        for other in sorted(self.engine.peers.values(), key=lambda p: -p.id):
            names = b"".join(b" " + f.name for f in other.abilities)
            lines.append(b"%d %s %s :%s\n" % (other.fd, other.address.encode(), other.client_id, names))
        return b"".join(lines) + b".\n"

    def jobs_in_order(self) -> list[Job]:
        buckets = self.engine.config.hashtable_buckets
        jobs = list(self.engine.jobs.values())
        position = {id(job): index for index, job in enumerate(jobs)}
        return sorted(jobs, key=lambda j: (gearmand_hash(j.handle) % buckets, -position[id(j)]))

    def _show_jobs(self, peer: Peer, command: AdminCommand) -> bytes:
        rows: list[tuple[bytes | int, ...]] = [
            (job.handle, job.retries, int(job.ignore), int(self._in_store(job))) for job in self.jobs_in_order()
        ]
        return format_table(rows)

    def _in_store(self, job: Job) -> bool:
        """The QUEUED_IN_PERSISTENT_STORE column: gearmand marks every live background job, store or not."""
        if self.engine.config.persistent:
            return job.store_key is not None
        return job.background and not job.ignore

    def _show_unique_jobs(self, peer: Peer, command: AdminCommand) -> bytes:
        # gearmand lists its unique index: bucket of the unique's hash (the workload's for "-"; 0 for none).
        buckets = self.engine.config.hashtable_buckets
        jobs = list(self.engine.jobs.values())
        position = {id(job): index for index, job in enumerate(jobs)}

        def bucket(job: Job) -> int:
            if not job.unique:
                return 0
            return gearmand_hash(job.data if job.unique == b"-" else job.unique) % buckets

        ordered = sorted(jobs, key=lambda job: (bucket(job), -position[id(job)]))
        return b"".join(job.unique + b"\n" for job in ordered) + b".\n"

    def _status_json(self, peer: Peer, command: AdminCommand) -> bytes:
        now = self.clock() if self.clock is not None else None  # for the oldest queued job's age
        return _json_line({"functions": functions_view(self.engine, now), "totals": totals_view(self.engine)})

    def _show_jobs_json(self, peer: Peer, command: AdminCommand) -> bytes:
        now = self.clock() if self.clock is not None else 0.0
        return _json_line(jobs_view(self.engine, now, limit=len(self.engine.jobs)))

    # ------------------------------------------------------------------ actions

    def _cancel_job(self, peer: Peer, command: AdminCommand) -> bytes:
        return OK if self.engine.cancel(command.args[0]) else b"ERR UNKNOWN_JOB\r\n"

    def _create_function(self, peer: Peer, command: AdminCommand) -> bytes:
        # gearmand 1.1.20 drops the name's last character when the line ends in a bare LF; we keep it whole.
        self.engine.function(command.args[0])
        return OK

    def _drop_function(self, peer: Peer, command: AdminCommand) -> bytes:
        # Names match case-insensitively, and gearmand answers once for every function that matches. Unlike
        # gearmand, a function with queued jobs is not dropped (that would leave them without a function).
        wanted = command.args[0].lower()
        answers = []
        for function in [f for f in self.functions_in_order() if f.name.lower() == wanted]:
            if function.workers or function.total:
                answers.append(b"ERR there are still connected workers or executing clients\r\n")
            else:
                del self.engine.functions[function.name]
                answers.append(OK)
        return b"".join(answers) or b"ERR function not found\r\n"

    def _maxqueue(self, peer: Peer, command: AdminCommand) -> bytes:
        name, limits = parse_maxqueue(command.args)
        function = self.engine.functions.get(name)
        if function is not None:  # gearmand does not create a function for maxqueue
            function.max_queue = limits
        return OK

    # ------------------------------------------------------------------ the job life cycle (core/lifecycle.py)

    def _lifecycle(self, handler: Callable[[Lifecycle, AdminCommand], bytes]) -> Callable[[Peer, AdminCommand], bytes]:
        def run(peer: Peer, command: AdminCommand) -> bytes:
            lifecycle = self.engine.lifecycle
            return NO_POLICY_FILE if lifecycle is None else handler(lifecycle, command)

        return run

    def _now(self) -> float:
        return self.clock() if self.clock is not None else 0.0

    def _dead_list(self, lifecycle: Lifecycle, command: AdminCommand) -> bytes:
        """HANDLE, FUNCTION, UNIQUE, ATTEMPTS, LAST FAILED (Unix time), LAST ERROR; oldest first."""
        selector = command.args[0] if command.args else None
        return format_table(dead_rows(lifecycle.dead_jobs(selector)))

    def _dead_show(self, lifecycle: Lifecycle, command: AdminCommand) -> bytes:
        dead = lifecycle.dead.get(command.args[0])
        if dead is None:
            return b"ERR UNKNOWN_JOB\r\n"
        view = dead.view()
        view["data"] = dead.data.decode("utf-8", "replace")
        view["data_base64"] = base64.b64encode(dead.data).decode()
        return _json_line(view)

    def _dead_retry(self, lifecycle: Lifecycle, command: AdminCommand) -> bytes:
        return format_ok_value(str(lifecycle.retry_dead(command.args[0], self._now())).encode())

    def _dead_delete(self, lifecycle: Lifecycle, command: AdminCommand) -> bytes:
        return format_ok_value(str(lifecycle.delete_dead(command.args[0], self._now())).encode())

    def _result(self, peer: Peer, command: AdminCommand) -> bytes:
        """How a background job ended, while its function's result_ttl keeps it: one line of JSON. On a cluster a
        result this node does not keep is looked up in the database; the reply waits in the peer's outbox (later
        replies behind it, in order) until the database answers."""
        lifecycle = self.engine.lifecycle
        if lifecycle is None:
            return NO_POLICY_FILE
        kept = lifecycle.result(command.args[0], self._now())
        if kept is None and self.result_lookup is not None and not peer.closed:
            pending = self._hold_reply(peer)
            self.result_lookup(command.args[0], lambda found: self.engine._resolve(pending, _result_line(found)))
            return b""
        return _result_line(kept)

    def _hold_reply(self, peer: Peer) -> PendingAck:
        """A place in ``peer``'s outbox for a reply to come, as the engine holds a JOB_CREATED for the store."""
        return self.engine._hold_place(peer)

    def _cron_list(self, lifecycle: Lifecycle, command: AdminCommand) -> bytes:
        """FUNCTION, SCHEDULE, TIME ZONE, NEXT FIRING, LAST FIRING (Unix times; - for never), per entry."""
        rows: list[tuple[bytes | int, ...]] = [
            (
                firing.entry.function,
                firing.entry.schedule.encode(),
                firing.entry.timezone.encode(),
                b"-" if firing.next_at is None else int(firing.next_at),
                b"-" if firing.last_at is None else int(firing.last_at),
            )
            for firing in lifecycle.crons.values()
        ]
        return format_table(rows)

    def _cron_add(self, lifecycle: Lifecycle, command: AdminCommand) -> bytes:
        """``cron add FUNCTION SCHEDULE... [payload=..] [timezone=..] [unique=..] [priority=..] [catch_up=..]``."""
        try:
            entry = overrides.add_cron(lifecycle, parse_cron_tokens(command.args), self._now())
        except PolicyError as error:
            return error_line("INVALID_ARGUMENTS", str(error))
        firing = lifecycle.crons.get(cron_ident(entry))
        next_at = firing.next_at if firing is not None and firing.next_at is not None else 0
        return format_ok_value(str(int(next_at)).encode())  # OK and the first firing's Unix time

    def _cron_remove(self, lifecycle: Lifecycle, command: AdminCommand) -> bytes:
        """``cron remove FUNCTION [SCHEDULE...]``: entries added at run time (the file's stay until edited)."""
        function = command.args[0]
        schedule = b" ".join(command.args[1:]).decode("utf-8", "replace") or None
        return format_ok_value(str(overrides.remove_cron(lifecycle, function, schedule, self._now())).encode())

    def _policy_show(self, lifecycle: Lifecycle, command: AdminCommand) -> bytes:
        return _json_line(overrides.policy_view(lifecycle, command.args[0] if command.args else None))

    def _policy_set(self, lifecycle: Lifecycle, command: AdminCommand) -> bytes:
        """``policy set FUNCTION key=value...`` (values percent-decoded: ``rate=100/s``, ``timeout=30s``)."""
        try:
            settings = dict(parse_setting(token) for token in command.args[1:])
            overrides.set_policy(lifecycle, command.args[0], settings, self._now())
        except PolicyError as error:
            return error_line("INVALID_ARGUMENTS", str(error))
        return OK

    def _policy_unset(self, lifecycle: Lifecycle, command: AdminCommand) -> bytes:
        """``policy unset FUNCTION [key...]``: back to the file's settings."""
        keys = tuple(token.decode("utf-8", "replace").lower() for token in command.args[1:])
        overrides.unset_policy(lifecycle, command.args[0], keys, self._now())
        return OK

    def _pause(self, lifecycle: Lifecycle, command: AdminCommand) -> bytes:
        lifecycle.pause(command.args[0], self._now())
        return OK

    def _resume(self, lifecycle: Lifecycle, command: AdminCommand) -> bytes:
        lifecycle.resume(command.args[0], self._now())
        return OK

    def _shutdown(self, peer: Peer, command: AdminCommand) -> bytes:
        # gearmand dropped `shutdown` in 1.1.15; geartrain keeps it (graceful: stop taking jobs, exit when idle).
        self.engine.shutdown_mode = "graceful" if command.name == "shutdown graceful" else "now"
        return OK


NO_POLICY_FILE = b"ERR NO_POLICY_FILE start+the+server+with+--policy-file+(an+empty+file+will+do)\r\n"


def _result_line(kept: KeptResult | None) -> bytes:
    return b"ERR UNKNOWN_JOB\r\n" if kept is None else _json_line(kept.view())


def _json_line(data: object) -> bytes:
    """A JSON reply on the admin port: one line, so a line-reading client gets it whole."""
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"
