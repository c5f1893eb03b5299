"""Client-side rules: submitting jobs (with coalescing and limits), status queries, echo, options, cancel."""

from __future__ import annotations

from geartrain.errors import ErrorCode
from geartrain.protocol.codec import LARGE_PACKET, encode
from geartrain.protocol.meta import OPTION as META_OPTION
from geartrain.protocol.meta import MetaError, split_meta
from geartrain.protocol.packets import PacketType
from geartrain.server.core import replies
from geartrain.server.core.durable import DurableRules
from geartrain.server.core.jobs import INT64_MAX, MAX_UNIQUE_SIZE, UNIQUE_BY_PAYLOAD, Job, leading_integer
from geartrain.server.core.peers import Peer, PendingAck
from geartrain.server.core.queues import PRIORITIES
from geartrain.server.core.state import Handler

P = PacketType
HIGH, NORMAL, LOW = PRIORITIES

# Submit packet type -> (priority, background).
SUBMIT_KINDS: dict[int, tuple[int, bool]] = {
    P.SUBMIT_JOB: (NORMAL, False),
    P.SUBMIT_JOB_BG: (NORMAL, True),
    P.SUBMIT_JOB_HIGH: (HIGH, False),
    P.SUBMIT_JOB_HIGH_BG: (HIGH, True),
    P.SUBMIT_JOB_LOW: (LOW, False),
    P.SUBMIT_JOB_LOW_BG: (LOW, True),
}


class ClientRules(DurableRules):
    """Handlers for the packets clients send."""

    # ------------------------------------------------------------------ submitting

    def _submit_handler(self, ptype: int, priority: int, background: bool) -> Handler:
        """The handler of one SUBMIT_JOB* type: its priority and kind bound, the rest is :meth:`submit`."""

        def submit(peer: Peer, args: tuple[bytes, ...], now: float) -> None:
            name, unique, data = args
            if peer.meta:
                self._submit_with_meta(peer, name, unique, data, priority, background, now)
            else:
                self.submit(peer, name, unique, data, priority, background, now)

        submit.__name__ = f"_submit_{PacketType(ptype).name.lower()}"
        return submit

    def _submit_epoch(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        name, unique, raw_when, data = args
        when = leading_integer(raw_when)  # like gearmand's strtoll: no number is 0, a past time runs at once
        if when > INT64_MAX:  # gearmand hangs up on an overflow; an ERROR says why
            self.error(peer, ErrorCode.INVALID_ARGUMENT, "SUBMIT_JOB_EPOCH time out of range")
            return
        if peer.meta:
            self._submit_with_meta(peer, name, unique, data, NORMAL, True, now, when=max(when, 0))
        else:
            self.submit(peer, name, unique, data, NORMAL, True, now, when=max(when, 0))

    def _reduce_handler(self, background: bool) -> Handler:
        def submit_reduce(peer: Peer, args: tuple[bytes, ...], now: float) -> None:
            # libgearman sends (function, unique, reducer, aggregator, data); servers do not use the aggregator.
            name, unique, reducer, data = args[0], args[1], args[2], args[-1]
            if peer.meta:
                self._submit_with_meta(peer, name, unique, data, NORMAL, background, now, reducer=reducer)
            else:
                self.submit(peer, name, unique, data, NORMAL, background, now, reducer=reducer)

        return submit_reduce

    def submit(
        self,
        peer: Peer,
        name: bytes,
        unique: bytes,
        data: bytes,
        priority: int,
        background: bool,
        now: float,
        when: int = 0,
        reducer: bytes | None = None,
        meta: bytes = b"",
    ) -> Job | None:
        """Create a job (or attach to an equal one) and answer JOB_CREATED; ``None`` if refused. ``meta``: the
        job's metadata (the geartrain-meta option); a job joined keeps its own, or takes this if it has none."""
        if self.refuse_submits is not None:  # draining: no new work, not even attached to an existing job
            self._send_error(peer, self.refuse_submits)
            return None
        if len(unique) > MAX_UNIQUE_SIZE:
            self._send_error(peer, replies.UNIQUE_TOO_LARGE)
            return None
        function = self.function(name)
        if unique:
            if unique == UNIQUE_BY_PAYLOAD:
                index, key = function.by_payload, data
            else:
                index, key = function.by_unique, unique
            job = index.get(key)
            if job is not None:
                function.stats.coalesced += 1
                if meta and not job.meta:
                    self._attach_meta(job, meta)
                self._coalesce(peer, job, background)
                return job
        limit = function.max_queue[priority]
        if limit > 0 and function.total >= limit:
            function.stats.rejected += 1
            self._send_error(peer, replies.QUEUE_FULL)
            return None
        byte_cap = self.config.max_queued_bytes
        if byte_cap > 0 and self.queued_bytes + len(data) > byte_cap:
            function.stats.rejected += 1
            self._send_error(peer, replies.SERVER_QUEUE_FULL)
            return None
        if self.hungry is None:
            handle, created = self._new_handle.next_with_reply()
        else:
            handle = self._unused_handle()
            created = replies.job_created(handle)
        job = Job(handle, function, unique, data, priority, background, when, reducer, now)
        job.meta = meta
        self.jobs[handle] = job
        function.total += 1
        function.stats.submitted[priority * 2 + background] += 1
        self.queued_bytes += len(data)
        if unique:
            index[key] = job
        if not background:
            job.clients += (peer,)
            peer.waiting.add(job)
            if self.cluster_relay is not None and not function.worker_count and not when:
                self._store_new(peer, job, waiting=True)  # no worker here: another node's runs it
                return job
        elif self.config.persistent:
            self._store_new(peer, job)  # queued and acknowledged once the store holds it
            return job
        self._send_created(peer, handle, created)
        self._enqueue(job, now)
        return job

    def _submit_with_meta(
        self,
        peer: Peer,
        name: bytes,
        unique: bytes,
        data: bytes,
        priority: int,
        background: bool,
        now: float,
        when: int = 0,
        reducer: bytes | None = None,
    ) -> None:
        """A submit from a connection with the geartrain-meta option: its data starts with a meta block."""
        try:
            meta, payload = split_meta(data)
        except MetaError as error:
            self.error(peer, ErrorCode.INVALID_ARGUMENT, f"geartrain-meta: {error}")
            return
        self.submit(peer, name, unique, payload, priority, background, now, when, reducer, meta)

    def _coalesce(self, peer: Peer, job: Job, background: bool) -> None:
        if not background:
            job.clients += (peer,)
            peer.waiting.add(job)
        elif not job.background:
            # A background submit makes the job wanted whatever happens to its foreground clients.
            job.background = True
            if self.config.persistent:
                self._store_attached(peer, job)
                return
        if job.acks is not None:
            self._pending_ack(peer, job)  # the store does not hold the job yet
            return
        self._send_created(peer, job.handle, replies.job_created(job.handle))

    # ------------------------------------------------------------------ status, echo, options

    def _get_status(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        handle = args[0]
        job = self.jobs.get(handle)
        if job is None:
            if self.lifecycle is not None and self.lifecycle.result(handle, now) is not None:
                # Known and finished (result_ttl): not running, its progress complete.
                self._send(peer, encode(replies.STATUS_RES, handle, b"1", b"0", b"1", b"1"))
                return
            if self.hungry is not None and not peer.closed:
                self._look_up_status(peer, handle, None)  # left to the cluster, or another node's: the store knows
                return
            self._send(peer, encode(replies.STATUS_RES, handle, b"0", b"0", b"0", b"0"))
            return
        running = b"1" if job.worker is not None else b"0"
        numerator, denominator = str(job.numerator).encode(), str(job.denominator).encode()
        self._send(peer, encode(replies.STATUS_RES, handle, b"1", running, numerator, denominator))

    def _look_up_status(self, peer: Peer, handle: bytes, unique: bytes | None) -> None:
        """The reply waits in the peer's outbox (later replies queue behind it) until the cluster node has asked
        the store (:meth:`status_found`). ``unique``: for GET_STATUS_UNIQUE, of the job stored under ``handle``."""
        self.status_lookups.append((handle, unique, self._hold_place(peer)))

    def status_found(
        self, handle: bytes, unique: bytes | None, ack: PendingAck, found: tuple[bool, int, int] | None
    ) -> None:
        """The store's answer to a status this node could not give: whether a node runs the job and its last
        WORK_STATUS, or ``None`` (no such job anywhere any more)."""
        known, running, numerator, denominator = (b"0", b"0", b"0", b"0")
        if found is not None:
            known, running = b"1", b"1" if found[0] else b"0"
            numerator, denominator = str(found[1]).encode(), str(found[2]).encode()
        if unique is None:
            self._resolve(ack, encode(replies.STATUS_RES, handle, known, running, numerator, denominator))
            return
        if found is None:
            self.forget_elsewhere(unique, handle)
        self._resolve(ack, encode(replies.STATUS_RES_UNIQUE, unique, known, running, numerator, denominator, b"0"))

    def _get_status_unique(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        unique = args[0]
        job = self.find_unique(unique)
        if job is None:
            handle = self.elsewhere_by_unique.get(unique) if self.elsewhere_by_unique else None
            if handle is not None and not peer.closed:
                self._look_up_status(peer, handle, unique)  # left to the cluster: the store knows how it is doing
                return
            self._send(peer, encode(replies.STATUS_RES_UNIQUE, unique, b"0", b"0", b"0", b"0", b"0"))
            return
        fields = (b"1", b"1" if job.worker is not None else b"0", job.numerator, job.denominator)
        encoded = [f if isinstance(f, bytes) else str(f).encode() for f in fields]
        clients = str(len(job.clients)).encode()
        self._send(peer, encode(replies.STATUS_RES_UNIQUE, unique, *encoded, clients))

    def find_unique(self, unique: bytes) -> Job | None:
        """The newest live job with this unique id in any function (GET_STATUS_UNIQUE names no function)."""
        if not unique:
            return None
        found = [job for function in self.functions.values() if (job := function.by_unique.get(unique))]
        return max(found, key=lambda job: (job.created, job.handle_number)) if found else None

    def _echo(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        if len(args[0]) < LARGE_PACKET:  # _send_packet spelt out: the echo benchmark runs it once per packet
            self._send(peer, encode(replies.ECHO_RES, args[0]))
        else:
            self._send_packet(peer, replies.ECHO_RES, args)

    def _option(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        name = args[0]
        option = name.split(b"\0", 1)[0].lower()  # gearmand reads the name as a C string
        if option == b"exceptions":
            peer.exceptions = True
            self._send(peer, encode(replies.OPTION_RES, name))
        elif option == META_OPTION:
            peer.meta = True
            self._send(peer, encode(replies.OPTION_RES, name))
        else:
            self._send(peer, replies.UNKNOWN_OPTION)

    def _set_client_id(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        # gearmand keeps 127 bytes; the id is shown in `workers`, where spaces would break the columns.
        peer.client_id = args[0][:127] or b"-"
