"""Worker-side rules: abilities, sleeping and waking, grabbing jobs, and the results workers send."""

from __future__ import annotations

import heapq

from geartrain.errors import ErrorCode
from geartrain.protocol.codec import LARGE_PACKET, encode
from geartrain.protocol.meta import join_meta, worker_meta
from geartrain.protocol.packets import PacketType
from geartrain.server.core import replies
from geartrain.server.core.clients import ClientRules
from geartrain.server.core.config import CLUSTER_PREFETCH
from geartrain.server.core.jobs import Job, leading_integer, status_number
from geartrain.server.core.peers import Peer
from geartrain.server.core.queues import PRIORITIES, Function
from geartrain.server.core.state import WIDE_WORKER, Handler

P = PacketType


class WorkerRules(ClientRules):
    """Handlers for the packets workers send.

    The rules are one line of classes (state, then durable, client and worker rules, then the engine) rather than a
    diamond of mixins: mypyc compiles single inheritance into native classes (docs/architecture.md)."""

    # ------------------------------------------------------------------ worker registration

    def _can_do(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        self._register(peer, self.function(args[0]))

    def _can_do_timeout(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        name, raw_timeout = args
        if len(raw_timeout) > 20:  # gearmand hangs up on these; an ERROR says why
            self.error(peer, ErrorCode.INVALID_ARGUMENT, "CAN_DO_TIMEOUT needs a timeout in milliseconds")
            return
        function = self.function(name)
        self._register(peer, function)
        milliseconds = leading_integer(raw_timeout)  # like strtol: text that is no number means no timeout
        if milliseconds > 0:
            peer.timeouts[function] = max(milliseconds / 1000.0, self.config.min_worker_timeout)
        else:
            peer.timeouts.pop(function, None)

    def _register(self, peer: Peer, function: Function) -> None:
        peer.abilities.insert(0, function)
        if peer.wide:
            peer.rank_top += 1
            peer.ranks[function] = peer.rank_top
        elif len(peer.abilities) == WIDE_WORKER + 1:
            self.abilities_changed(peer)
        function.workers[peer] = function.workers.get(peer, 0) + 1
        if peer.sleeping and not peer.woken:
            function.sleepers[peer] = None
        else:
            peer.unslept.append(function)

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
        if peer.wide:
            del peer.ranks[function]
            self.abilities_changed(peer)
        peer.timeouts.pop(function, None)
        function.sleepers.pop(peer, None)
        for job in [job for job in reversed(peer.assigned.values()) if job.function is function]:
            self._requeue(job, now, failure=None)  # CANT_DO: not the job's fault

    # ------------------------------------------------------------------ sleeping and waking

    def _pre_sleep(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        peer.sleeping = True
        peer.woken = False
        looked_at = peer.abilities
        if self.hold_queued:
            looked_at = []
        elif peer.wide:  # those of its functions with jobs, when they are few
            found = self._wide_candidates(peer)
            if found is not None:
                looked_at = found
        for function in looked_at:
            if function.total and function.has_runnable():  # total first: most of a long list is idle
                peer.woken = True
                self._send(peer, replies.NOOP)
                return
        unslept = peer.unslept
        if unslept:
            for function in unslept:
                if peer in function.workers:  # still one of its abilities
                    function.sleepers[peer] = None
            unslept.clear()
        if self.hungry is not None:  # in a cluster, jobs for them may wait in the store
            self.hungry.update(peer.abilities)

    # ------------------------------------------------------------------ grabbing

    def _grab_job(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        job = self._next_job(peer, now)
        if job is None:
            self._send(peer, replies.NO_JOB)
            return
        data = job.data if not peer.meta else self._meta_data(job)
        if len(data) < LARGE_PACKET:  # _send_packet spelt out: this runs once per job
            self._send(peer, encode(replies.JOB_ASSIGN, job.handle, job.function.name, data))
        else:
            self._send_packet(peer, replies.JOB_ASSIGN, (job.handle, job.function.name, data))

    def _grab_job_uniq(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        job = self._next_job(peer, now)
        if job is None:
            self._send(peer, replies.NO_JOB)
            return
        data = job.data if not peer.meta else self._meta_data(job)
        self._send_packet(peer, replies.JOB_ASSIGN_UNIQ, (job.handle, job.function.name, job.unique, data))

    def _grab_job_all(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        job = self._next_job(peer, now)
        if job is None:
            self._send(peer, replies.NO_JOB)
            return
        data = job.data if not peer.meta else self._meta_data(job)
        if not job.reducer:  # gearmand hands out a reduce job with an empty reducer as a plain one
            self._send_packet(peer, replies.JOB_ASSIGN_UNIQ, (job.handle, job.function.name, job.unique, data))
        else:
            assignment = (job.handle, job.function.name, job.unique, job.reducer, data)
            self._send_packet(peer, replies.JOB_ASSIGN_ALL, assignment)

    def _meta_data(self, job: Job) -> bytes:
        """A job's data for a worker with the geartrain-meta option: its attempt and metadata, then the payload."""
        return join_meta(worker_meta(job.retries + self.failed_attempts(job) + 1, job.meta), job.data)

    def _next_job(self, peer: Peer, now: float) -> Job | None:
        peer.sleeping = False
        if self.hold_queued:  # draining with a store: queued jobs stay stored for the next start
            return None
        abilities = peer.abilities
        if self.config.global_priority:
            for priority in PRIORITIES:
                for position, function in enumerate(abilities):
                    if function.held:
                        continue
                    job = self._pop(function, priority)
                    if job is not None:
                        return self._assign(peer, job, position, now)
            return None
        if peer.wide:
            return self._next_job_wide(peer, now)
        for position, function in enumerate(abilities):
            if not function.total or function.held:
                continue  # nothing queued or running: the common case of an idle function, without a call
            for priority, queue in enumerate(function.queues):
                if queue:
                    job = queue.popleft()  # _pop's common case, spelt out: this runs once per job
                    function.queued[priority] -= 1
                    if job.ignore:
                        self._skip(job)
                        job = self._pop(function, priority)
                        if job is None:
                            continue
                    return self._assign(peer, job, position, now)
        return None

    def _next_job_wide(self, peer: Peer, now: float) -> Job | None:
        """:meth:`_next_job` for a worker of many functions."""
        abilities = peer.abilities
        # With a function registered twice its rank may not be its first entry's (round robin moved that one).
        candidates = self._wide_candidates(peer) if len(peer.ranks) == len(abilities) else None
        if candidates is None:  # many functions hold jobs: the walk (as in _next_job) soon meets one of its own
            for position, function in enumerate(abilities):
                if function.total and not function.held:
                    for priority in PRIORITIES:
                        job = self._pop(function, priority)
                        if job is not None:
                            return self._assign(peer, job, position, now)
            return None
        if len(candidates) > 1:
            candidates.sort(key=peer.ranks.__getitem__, reverse=True)
        for function in candidates:
            for priority in PRIORITIES:
                job = self._pop(function, priority)
                if job is not None:
                    # Its place in the list matters to round robin alone (looking for it costs as much as a walk).
                    position = abilities.index(function) if self.config.round_robin else 0
                    return self._assign(peer, job, position, now)
        return None

    def _wide_candidates(self, peer: Peer) -> list[Function] | None:
        """For a worker of many functions: those of its functions that hold jobs (and are not held), found among
        the functions with jobs, which are fewer as a rule: walking its list took thousands of steps per job with
        10,000 functions and jobs spread over them. ``None`` when more than :data:`WIDE_WORKER` functions hold
        jobs: then the walk soon meets one."""
        runnable = self.runnable
        candidates: list[Function] = []
        emptied: list[Function] = []
        listed = 0
        for function in runnable:
            if not function.has_queued():
                emptied.append(function)
                continue
            listed += 1
            if listed > WIDE_WORKER:
                break
            if peer in function.workers and not function.held:
                candidates.append(function)
        for function in emptied:
            del runnable[function]
        if listed > WIDE_WORKER:
            return None
        return candidates

    def _pop(self, function: Function, priority: int) -> Job | None:
        queue = function.queues[priority]
        while queue:
            job = queue.popleft()
            function.queued[priority] -= 1
            if not job.ignore:
                return job
            self._skip(job)
        return None

    def _assign(self, peer: Peer, job: Job, position: int, now: float) -> Job:
        function = job.function
        job.worker = peer
        peer.assigned[job.handle] = job
        function.running += 1
        function.stats.waited(now - job.since)
        job.since = now
        if self.config.round_robin:
            peer.abilities.append(peer.abilities.pop(position))
            if peer.wide:
                peer.rank_bottom -= 1
                peer.ranks[function] = peer.rank_bottom
        # A cluster node refills before the queue runs dry: at half of what it holds for its workers. (Waking the
        # claims for every job cost more than the claims: measured, a loop turn per job.)
        if (
            self.hungry is not None
            and job.store_key is not None
            and sum(function.queued) <= function.worker_count * CLUSTER_PREFETCH // 2
        ):
            self.hungry.add(function)
        timeout = peer.timeouts.get(function)
        if function.gated and self.lifecycle is not None:
            # Its policy's concurrency, rate and timeout (the worker's own CAN_DO_TIMEOUT comes first).
            timeout = self.lifecycle.started(function, now, timeout)
        if timeout is not None:
            self._seq += 1
            heap = self.timeout_heap
            heapq.heappush(heap, (now + timeout, self._seq, job, peer, job.retries))
            if len(heap) > 1024 and len(heap) > 4 * len(self.jobs):
                self._compact_timeouts()
        return job

    def _compact_timeouts(self) -> None:
        """Drop timer entries of jobs that already ended or moved on, so a long timeout cannot pile them up."""
        live = [entry for entry in self.timeout_heap if entry[2].worker is entry[3] and entry[2].retries == entry[4]]
        heapq.heapify(live)
        self.timeout_heap[:] = live  # in place: the server holds the list (see EngineState)

    # ------------------------------------------------------------------ results from workers

    def _work_complete(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        job = peer.assigned.get(args[0])
        if job is None:
            self._send(peer, replies.NOT_FOUND_RESULT)
            return
        peer.jobs_done += 1  # for the views' worker lists
        self._forward_packet(job, replies.WORK_COMPLETE, args)
        job.function.stats.complete(now - job.since)
        if self.lifecycle is not None and job.background:
            self.lifecycle.ended(job, "complete", args[1] if len(args) > 1 else b"", now)  # its result_ttl
        self._finish(job)

    def _work_fail(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        job = peer.assigned.get(args[0])
        if job is None:
            self._send(peer, replies.NOT_FOUND_RESULT)
            return
        peer.jobs_done += 1
        self._forward_packet(job, replies.WORK_FAIL, (job.handle,))
        job.function.stats.fail(now - job.since)
        if self.lifecycle is not None and job.background:
            self._attempt_failed(job, b"WORK_FAIL", now)  # retried later, or dead
            return
        self._finish(job)

    def _work_exception(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        job = peer.assigned.get(args[0])
        if job is None:
            self._send(peer, replies.NOT_FOUND_EXCEPTION)
            return
        peer.jobs_done += 1
        if job.clients:
            exception = encode(replies.WORK_EXCEPTION, *args)
            # Clients that did not ask for exceptions get a plain WORK_FAIL (gearmand adds a stray NUL).
            fail = encode(replies.WORK_FAIL, job.handle)
            every_client = self.config.exceptions
            for client in job.clients:
                told = every_client or client.exceptions
                if not client.in_process:
                    self._send(client, exception if told else fail)
                elif told:
                    self._reply(client, replies.WORK_EXCEPTION, args)
                else:
                    self._reply(client, replies.WORK_FAIL, (job.handle,))
        job.function.stats.exception(now - job.since)
        if self.lifecycle is not None and job.background:
            self._attempt_failed(job, args[1] if len(args) > 1 else b"WORK_EXCEPTION", now)
            return
        self._finish(job)

    def _work_status(self, peer: Peer, args: tuple[bytes, ...], now: float) -> None:
        job = peer.assigned.get(args[0])
        if job is None:
            self._send(peer, replies.NOT_FOUND_RESULT)
            return
        job.numerator = status_number(args[1])
        job.denominator = status_number(args[2])
        if self.lifecycle is not None:
            self.lifecycle.heartbeat(job, peer, now)  # a running job's WORK_STATUS extends its policy timeout
        if job.background and job.store_key is not None and self.hungry is not None:
            # A cluster: the node that acknowledged the job answers GET_STATUS for it from the store.
            self.progress[(job.store_key, job.function.name)] = (job.numerator, job.denominator)
        self._forward_packet(job, replies.WORK_STATUS, args)

    def _forward_handler(self, ptype: int) -> Handler:
        """WORK_DATA and WORK_WARNING: same layout, forwarded to the job's clients as received."""

        def forward(peer: Peer, args: tuple[bytes, ...], now: float) -> None:
            job = peer.assigned.get(args[0])
            if job is None:
                self._send(peer, replies.NOT_FOUND_DATA)
                return
            self._forward_packet(job, ptype, args)

        return forward
