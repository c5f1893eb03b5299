"""The job engine: every Gearman rule, as pure state transitions.

The engine takes ``(peer, packet, now)`` and appends the bytes to send to each affected peer's ``outbox``, listing
those peers in ``dirty`` for the transport to flush. It never touches a socket, a database or the clock: ``now``
(seconds since the epoch, as a float) is passed in, and timers are exposed as :meth:`Engine.next_deadline` and
:meth:`Engine.tick`.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable

from geartrain.errors import ProtocolError
from geartrain.protocol.codec import encode
from geartrain.protocol.packets import RES, PacketType
from geartrain.server.core.config import EngineConfig
from geartrain.server.core.jobs import MAX_UNIQUE_SIZE, UNIQUE_BY_PAYLOAD, HandleFactory, Job, atoi
from geartrain.server.core.peers import Peer
from geartrain.server.core.queues import PRIORITIES, Function

log = logging.getLogger("geartrain.engine")

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

_NOOP = encode(P.NOOP)
_NO_JOB = encode(P.NO_JOB)
_JOB_CREATED_HEAD = RES + P.JOB_CREATED.to_bytes(4, "big")


def _job_created(handle: bytes) -> bytes:
    return _JOB_CREATED_HEAD + len(handle).to_bytes(4, "big") + handle


def error_packet(code: str, text: str) -> bytes:
    return encode(P.ERROR, code.encode(), text.encode())


_NOT_EXPECTED = error_packet("INVALID_COMMAND", "Command not expected")
_NOT_FOUND_RESULT = error_packet("JOB_NOT_FOUND", "Job given in work result not found")
_NOT_FOUND_DATA = error_packet("JOB_NOT_FOUND", "Job does not exist on server")
_NOT_FOUND_EXCEPTION = error_packet("JOB_NOT_FOUND", "An exception was received for a job that does not exist")
_UNIQUE_TOO_LARGE = error_packet("ARGUMENT_TOO_LARGE", "Unique value too large")
_QUEUE_FULL = error_packet("QUEUE_ERROR", "Job queue is full")
_UNKNOWN_OPTION = error_packet("UNKNOWN_OPTION", "Server does not recognize given option")

Handler = Callable[[Peer, tuple[bytes, ...], float], None]


class Engine:
    """All jobs, functions and connections of one server."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self.functions: dict[bytes, Function] = {}
        self.jobs: dict[bytes, Job] = {}
        self.peers: dict[int, Peer] = {}
        self.dirty: list[Peer] = []
        self.shutdown_mode: str | None = None  # None, "now" or "graceful": set by the admin `shutdown` command
        self._new_handle = HandleFactory(self.config.handle_prefix)
        self._next_peer_id = 1
        self._seq = 0  # tie-breaker for timer heaps and creation order of functions
        self._epoch_heap: list[tuple[int, int, Job]] = []
        self._timeout_heap: list[tuple[float, int, Job, Peer, int]] = []
        self._handlers: dict[int, Handler] = self._build_dispatch()

    # ------------------------------------------------------------------ connections

    def connect(self, fd: int = -1, address: str = "127.0.0.1") -> Peer:
        """Register a new connection and return its state."""
        peer = Peer(self._next_peer_id, fd, address)
        self._next_peer_id += 1
        self.peers[peer.id] = peer
        return peer

    def disconnect(self, peer: Peer, now: float) -> None:
        """The connection is gone: requeue what it was working on, detach it from what it was waiting for."""
        if peer.closed:
            return
        peer.closed = True
        peer.outbox.clear()
        self.peers.pop(peer.id, None)
        for job in list(peer.assigned.values()):
            self._requeue(job, now)
        for function in set(peer.abilities):
            function.workers.pop(peer, None)
            function.sleepers.pop(peer, None)
        peer.abilities.clear()
        for job in peer.waiting:
            job.clients = [client for client in job.clients if client is not peer]
            if not job.clients and not job.background:
                self._abandon(job)
        peer.waiting.clear()

    # ------------------------------------------------------------------ input

    def handle(self, peer: Peer, ptype: int, args: tuple[bytes, ...], now: float) -> None:
        """Process one binary packet from ``peer``."""
        handler = self._handlers.get(ptype)
        if handler is None:
            self._send(peer, _NOT_EXPECTED)
            return
        handler(peer, args, now)

    def protocol_error(self, peer: Peer, error: ProtocolError) -> None:
        """Answer bad input with an ERROR packet; after a fatal one, close once it is sent."""
        self._send(peer, error_packet(error.code, error.text))
        if error.fatal:
            peer.close_after_flush = True

    def _build_dispatch(self) -> dict[int, Handler]:
        handlers: dict[int, Handler] = {
            P.CAN_DO: self._can_do,
            P.CAN_DO_TIMEOUT: self._can_do_timeout,
            P.CANT_DO: self._cant_do,
            P.RESET_ABILITIES: self._reset_abilities,
            P.PRE_SLEEP: self._pre_sleep,
            P.GRAB_JOB: self._grab_job,
            P.GRAB_JOB_UNIQ: self._grab_job_uniq,
            P.GRAB_JOB_ALL: self._grab_job_all,
            P.SUBMIT_JOB_EPOCH: self._submit_epoch,
            P.SUBMIT_REDUCE_JOB: self._reduce_handler(background=False),
            P.SUBMIT_REDUCE_JOB_BACKGROUND: self._reduce_handler(background=True),
            P.WORK_COMPLETE: self._work_complete,
            P.WORK_FAIL: self._work_fail,
            P.WORK_EXCEPTION: self._work_exception,
            P.WORK_STATUS: self._work_status,
            P.WORK_DATA: self._forward_handler(P.WORK_DATA),
            P.WORK_WARNING: self._forward_handler(P.WORK_WARNING),
            P.GET_STATUS: self._get_status,
            P.GET_STATUS_UNIQUE: self._get_status_unique,
            P.ECHO_REQ: self._echo,
            P.OPTION_REQ: self._option,
            P.SET_CLIENT_ID: self._set_client_id,
        }
        for ptype, (priority, background) in SUBMIT_KINDS.items():
            handlers[ptype] = self._submit_handler(ptype, priority, background)
        return handlers

    # ------------------------------------------------------------------ output

    def _send(self, peer: Peer, data: bytes) -> None:
        if peer.closed:
            return
        if not peer.outbox:
            self.dirty.append(peer)
        peer.outbox.append(data)

    def reply(self, peer: Peer, data: bytes) -> None:
        """Queue already-encoded bytes (an admin reply, say) for ``peer``."""
        self._send(peer, data)

    def _error(self, peer: Peer, code: str, text: str) -> None:
        self._send(peer, error_packet(code, text))

    # ------------------------------------------------------------------ functions

    def function(self, name: bytes) -> Function:
        """The function called ``name``, created on first mention (functions are never collected)."""
        function = self.functions.get(name)
        if function is None:
            self._seq += 1
            function = self.functions[name] = Function(name, self._seq)
        return function

    # ------------------------------------------------------------------ worker registration

    def _can_do(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        self._register(peer, self.function(args[0]))

    def _can_do_timeout(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        name, raw_timeout = args
        text = raw_timeout.strip()
        if not text.lstrip(b"-").isdigit() or len(text) > 20:
            self._error(peer, "INVALID_ARGUMENT", "CAN_DO_TIMEOUT needs a timeout in milliseconds")
            return
        function = self.function(name)
        self._register(peer, function)
        milliseconds = int(text)
        if milliseconds > 0:
            peer.timeouts[function] = max(milliseconds / 1000.0, self.config.min_worker_timeout)
        else:
            peer.timeouts.pop(function, None)

    def _register(self, peer: Peer, function: Function) -> None:
        peer.abilities.insert(0, function)
        function.workers[peer] = function.workers.get(peer, 0) + 1
        if peer.sleeping and not peer.woken:
            function.sleepers[peer] = None

    def _cant_do(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        function = self.functions.get(args[0])
        if function is not None:
            self._unregister(peer, function, now)

    def _reset_abilities(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        for function in list(dict.fromkeys(peer.abilities)):
            self._unregister(peer, function, now)

    def _unregister(self, peer: Peer, function: Function, now: float) -> None:
        if function.workers.pop(peer, None) is None:
            return
        peer.abilities = [f for f in peer.abilities if f is not function]
        peer.timeouts.pop(function, None)
        function.sleepers.pop(peer, None)
        for job in [job for job in peer.assigned.values() if job.function is function]:
            self._requeue(job, now)

    # ------------------------------------------------------------------ sleeping and waking

    def _pre_sleep(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        peer.sleeping = True
        peer.woken = False
        for function in peer.abilities:
            if function.has_runnable():
                peer.woken = True
                self._send(peer, _NOOP)
                return
        for function in peer.abilities:
            function.sleepers[peer] = None

    def _wake(self, function: Function) -> None:
        """Send NOOP to the function's sleeping workers: one per sleep, at most ``worker_wakeup`` of them."""
        sleepers = function.sleepers
        limit = self.config.worker_wakeup
        woken = 0
        while sleepers:
            peer = next(iter(sleepers))
            del sleepers[peer]
            if peer.sleeping and not peer.woken and not peer.closed:
                peer.woken = True
                self._send(peer, _NOOP)
                woken += 1
                if woken == limit:
                    return

    # ------------------------------------------------------------------ submitting

    def _submit_handler(self, ptype: int, priority: int, background: bool) -> Handler:
        def submit(peer: Peer, args: tuple[bytes, ...], now: float) -> None:
            name, unique, data = args
            self.submit(peer, name, unique, data, priority, background, now)

        submit.__name__ = f"_submit_{PacketType(ptype).name.lower()}"
        return submit

    def _submit_epoch(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        name, unique, raw_when, data = args
        when = atoi(raw_when) if len(raw_when) <= 20 else -1
        if when < 0:
            self._error(peer, "INVALID_ARGUMENT", "SUBMIT_JOB_EPOCH needs a time in seconds since the epoch")
            return
        self.submit(peer, name, unique, data, NORMAL, True, now, when=when)

    def _reduce_handler(self, background: bool) -> Handler:
        def submit_reduce(peer: Peer, args: tuple[bytes, ...], now: float) -> None:
            # libgearman sends (function, unique, reducer, aggregator, data); servers do not use the aggregator.
            name, unique, reducer, data = args[0], args[1], args[2], args[-1]
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
    ) -> Job | None:
        """Create a job (or attach to an equal one) and answer JOB_CREATED; ``None`` if refused."""
        if len(unique) > MAX_UNIQUE_SIZE:
            self._send(peer, _UNIQUE_TOO_LARGE)
            return None
        function = self.function(name)
        if unique:
            if unique == UNIQUE_BY_PAYLOAD:
                index, key = function.by_payload, data
            else:
                index, key = function.by_unique, unique
            job = index.get(key)
            if job is not None:
                self._coalesce(peer, job, background)
                return job
        limit = function.max_queue[priority]
        if limit > 0 and function.total >= limit:
            self._send(peer, _QUEUE_FULL)
            return None
        handle = self._new_handle()
        job = Job(handle, function, unique, data, priority, background, when, reducer, now)
        self.jobs[handle] = job
        function.total += 1
        if unique:
            index[key] = job
        if not background:
            job.clients.append(peer)
            peer.waiting.add(job)
        self._send(peer, _job_created(handle))
        self._enqueue(job, now)
        return job

    def _coalesce(self, peer: Peer, job: Job, background: bool) -> None:
        if background:
            # A background submit makes the job wanted whatever happens to foreground clients.
            job.background = True
        else:
            job.clients.append(peer)
            peer.waiting.add(job)
        self._send(peer, _job_created(job.handle))

    def _enqueue(self, job: Job, now: float) -> None:
        function = job.function
        function.queued[job.priority] += 1
        if job.when > now:
            self._seq += 1
            heapq.heappush(self._epoch_heap, (job.when, self._seq, job))
            return
        function.queues[job.priority].append(job)
        if function.sleepers:
            self._wake(function)

    # ------------------------------------------------------------------ grabbing

    def _grab_job(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        job = self._next_job(peer, now)
        if job is None:
            self._send(peer, _NO_JOB)
            return
        self._send(peer, encode(P.JOB_ASSIGN, job.handle, job.function.name, job.data))

    def _grab_job_uniq(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        job = self._next_job(peer, now)
        if job is None:
            self._send(peer, _NO_JOB)
            return
        self._send(peer, encode(P.JOB_ASSIGN_UNIQ, job.handle, job.function.name, job.unique, job.data))

    def _grab_job_all(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        job = self._next_job(peer, now)
        if job is None:
            self._send(peer, _NO_JOB)
        elif job.reducer is None:
            self._send(peer, encode(P.JOB_ASSIGN_UNIQ, job.handle, job.function.name, job.unique, job.data))
        else:
            self._send(
                peer,
                encode(P.JOB_ASSIGN_ALL, job.handle, job.function.name, job.unique, job.reducer, job.data),
            )

    def _next_job(self, peer: Peer, now: float) -> Job | None:
        peer.sleeping = False
        abilities = peer.abilities
        if self.config.global_priority:
            for priority in PRIORITIES:
                for position, function in enumerate(abilities):
                    job = self._pop(function, priority)
                    if job is not None:
                        return self._assign(peer, job, position, now)
            return None
        for position, function in enumerate(abilities):
            for priority in PRIORITIES:
                job = self._pop(function, priority)
                if job is not None:
                    return self._assign(peer, job, position, now)
        return None

    def _pop(self, function: Function, priority: int) -> Job | None:
        queue = function.queues[priority]
        while queue:
            job = queue.popleft()
            function.queued[priority] -= 1
            if not job.ignore:
                return job
            self._free(job)
        return None

    def _assign(self, peer: Peer, job: Job, position: int, now: float) -> Job:
        function = job.function
        job.worker = peer
        peer.assigned[job.handle] = job
        function.running += 1
        if self.config.round_robin:
            peer.abilities.append(peer.abilities.pop(position))
        timeout = peer.timeouts.get(function)
        if timeout is not None:
            self._seq += 1
            heapq.heappush(self._timeout_heap, (now + timeout, self._seq, job, peer, job.retries))
        return job

    # ------------------------------------------------------------------ results from workers

    def _work_complete(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        job = peer.assigned.get(args[0])
        if job is None:
            self._send(peer, _NOT_FOUND_RESULT)
            return
        self._forward(job, encode(P.WORK_COMPLETE, *args))
        self._finish(job)

    def _work_fail(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        job = peer.assigned.get(args[0])
        if job is None:
            self._send(peer, _NOT_FOUND_RESULT)
            return
        self._forward(job, encode(P.WORK_FAIL, job.handle))
        self._finish(job)

    def _work_exception(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        job = peer.assigned.get(args[0])
        if job is None:
            self._send(peer, _NOT_FOUND_EXCEPTION)
            return
        if job.clients:
            exception = encode(P.WORK_EXCEPTION, *args)
            # Clients that did not ask for exceptions get a plain WORK_FAIL (gearmand adds a stray NUL).
            fail = encode(P.WORK_FAIL, job.handle)
            every_client = self.config.exceptions
            for client in job.clients:
                self._send(client, exception if every_client or client.exceptions else fail)
        self._finish(job)

    def _work_status(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        job = peer.assigned.get(args[0])
        if job is None:
            self._send(peer, _NOT_FOUND_RESULT)
            return
        job.numerator = atoi(args[1])
        job.denominator = atoi(args[2])
        self._forward(job, encode(P.WORK_STATUS, *args))

    def _forward_handler(self, ptype: int) -> Handler:
        """WORK_DATA and WORK_WARNING: same layout, forwarded to the job's clients as received."""

        def forward(peer: Peer, args: tuple[bytes, ...], now: float) -> None:
            job = peer.assigned.get(args[0])
            if job is None:
                self._send(peer, _NOT_FOUND_DATA)
                return
            self._forward(job, encode(ptype, *args))

        return forward

    def _forward(self, job: Job, packet: bytes) -> None:
        for client in job.clients:
            self._send(client, packet)

    # ------------------------------------------------------------------ job endings

    def _finish(self, job: Job) -> None:
        """A running job ended (complete, fail, exception, or dropped after too many tries)."""
        worker = job.worker
        if worker is not None:
            worker.assigned.pop(job.handle, None)
            job.worker = None
            job.function.running -= 1
        self._free(job)

    def _free(self, job: Job) -> None:
        """Forget a job that is in no queue and on no worker."""
        if self.jobs.pop(job.handle, None) is None:
            return
        function = job.function
        function.total -= 1
        self._unindex(job)
        for client in job.clients:
            client.waiting.discard(job)
        job.clients = []

    def _unindex(self, job: Job) -> None:
        if not job.unique:
            return
        function = job.function
        if job.unique == UNIQUE_BY_PAYLOAD:
            index, key = function.by_payload, job.data
        else:
            index, key = function.by_unique, job.unique
        if index.get(key) is job:
            del index[key]

    def _abandon(self, job: Job) -> None:
        """Nobody wants the job any more: a queued one is skipped later, a running one may still finish."""
        job.ignore = True
        self._unindex(job)

    def cancel(self, handle: bytes) -> bool:
        """Admin `cancel job`: its foreground clients get WORK_FAIL; ``False`` if there is no such job."""
        job = self.jobs.get(handle)
        if job is None:
            return False
        if job.ignore:
            return True
        fail = encode(P.WORK_FAIL, job.handle)
        for client in job.clients:
            self._send(client, fail)
            client.waiting.discard(job)
        job.clients = []
        job.background = False
        self._abandon(job)
        return True

    def _requeue(self, job: Job, now: float) -> None:
        """Take a job back from its worker (gone, CANT_DO, timed out) and put it at the tail of its queue."""
        worker = job.worker
        if worker is not None:
            worker.assigned.pop(job.handle, None)
            job.worker = None
            job.function.running -= 1
        if job.ignore:
            self._free(job)
            return
        job.retries += 1
        job.numerator = job.denominator = 0
        retries = self.config.job_retries
        if retries > 0 and job.retries >= retries:
            log.warning("Dropped job due to max retry count: %s %s", job.handle.decode(), job.unique.decode())
            self._forward(job, encode(P.WORK_FAIL, job.handle))
            self._free(job)
            return
        self._enqueue(job, now)

    # ------------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do (epoch job due, worker timeout), or ``None``."""
        deadlines = []
        if self._epoch_heap:
            deadlines.append(float(self._epoch_heap[0][0]))
        if self._timeout_heap:
            deadlines.append(self._timeout_heap[0][0])
        return min(deadlines) if deadlines else None

    def tick(self, now: float) -> None:
        """Run what is due: queue epoch jobs whose time has come, requeue jobs whose worker timed out."""
        epoch_heap = self._epoch_heap
        while epoch_heap and epoch_heap[0][0] <= now:
            _, _, job = heapq.heappop(epoch_heap)
            function = job.function
            function.queues[job.priority].append(job)
            if function.sleepers and not job.ignore:
                self._wake(function)
        timeout_heap = self._timeout_heap
        while timeout_heap and timeout_heap[0][0] <= now:
            _, _, job, worker, attempt = heapq.heappop(timeout_heap)
            if job.worker is worker and job.retries == attempt and self.jobs.get(job.handle) is job:
                log.warning(
                    "Worker timeout reached on job, requeueing: %s %s",
                    job.handle.decode(),
                    job.unique.decode(),
                )
                self._requeue(job, now)

    # ------------------------------------------------------------------ status, echo, options

    def _get_status(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        handle = args[0]
        job = self.jobs.get(handle)
        if job is None:
            self._send(peer, encode(P.STATUS_RES, handle, b"0", b"0", b"0", b"0"))
            return
        running = b"1" if job.worker is not None else b"0"
        numerator, denominator = str(job.numerator).encode(), str(job.denominator).encode()
        self._send(peer, encode(P.STATUS_RES, handle, b"1", running, numerator, denominator))

    def _get_status_unique(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        unique = args[0]
        job = self.find_unique(unique)
        if job is None:
            self._send(peer, encode(P.STATUS_RES_UNIQUE, unique, b"0", b"0", b"0", b"0", b"0"))
            return
        fields = (b"1", b"1" if job.worker is not None else b"0", job.numerator, job.denominator)
        encoded = [f if isinstance(f, bytes) else str(f).encode() for f in fields]
        clients = str(len(job.clients)).encode()
        self._send(peer, encode(P.STATUS_RES_UNIQUE, unique, *encoded, clients))

    def find_unique(self, unique: bytes) -> Job | None:
        """A live job with this unique id in any function (GET_STATUS_UNIQUE carries no function name)."""
        if not unique:
            return None
        for function in self.functions.values():
            job = function.by_unique.get(unique)
            if job is not None:
                return job
        return None

    def _echo(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        self._send(peer, encode(P.ECHO_RES, args[0]))

    def _option(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        name = args[0]
        if name.lower() == b"exceptions":
            peer.exceptions = True
            self._send(peer, encode(P.OPTION_RES, name))
        else:
            self._send(peer, _UNKNOWN_OPTION)

    def _set_client_id(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        # gearmand keeps 127 bytes; the id is shown in `workers`, where spaces would break the columns.
        peer.client_id = args[0][:127] or b"-"

    # ------------------------------------------------------------------ facts for admin and metrics

    @property
    def job_count(self) -> int:
        return len(self.jobs)
