"""The Gearman side of a node: listening sockets, the flush after each input, timers, signals and shutdown.

The node around it (HTTP listener, and later the cluster) is put together in :mod:`geartrain.server.node`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from geartrain.errors import GearmanError
from geartrain.lifecycle.policy import PolicyError as LifecyclePolicyError
from geartrain.lifecycle.policy import load_policies
from geartrain.listening import listen_error, server_sockets
from geartrain.security.guard import AccessGuard
from geartrain.security.policy import PolicyError, load_policy
from geartrain.security.tls import server_context
from geartrain.server.config import ServerConfig
from geartrain.server.connection import GearmanConnection
from geartrain.server.core.admin import AdminCommands
from geartrain.server.core.engine import Engine
from geartrain.server.core.lifecycle import Lifecycle
from geartrain.server.limits import ConnectionGuard
from geartrain.server.persistence import Persistence
from geartrain.server.tls_listener import TlsListener, bind
from geartrain.store.base import QueueStore
from geartrain.store.holder import Holder

if TYPE_CHECKING:
    from geartrain.server.core.peers import Outlet, PacketSink, Peer

log = logging.getLogger("geartrain.server")


class GearmanServer:
    """Runs one :class:`Engine` on one event loop.

    After every input (a ``data_received``, a disconnect, a timer) :meth:`flush` writes what the engine queued,
    once per touched connection, hands the store operations recorded so far to the store thread in one batch, and
    re-arms the timer for the engine's next deadline.
    """

    def __init__(
        self, config: ServerConfig, store: QueueStore | None = None, *, store_on_shutdown: bool = False
    ) -> None:
        # With store_on_shutdown (gearmand's --store-queue-on-shutdown) the store is read at start and written at
        # stop only: jobs are acknowledged at once, and a crash loses the queue.
        self.store_on_shutdown = store_on_shutdown
        if store is not None and not store_on_shutdown and not config.engine.persistent:
            config = replace(config, engine=replace(config.engine, persistent=True))
        self.config = config
        self.engine = Engine(config.engine)
        if config.policies is not None:
            self.engine.lifecycle = Lifecycle(self.engine, config.policies)
        # Bound once for flush, which runs after every input; the engine never rebinds these lists.
        self._dirty = self.engine.dirty
        self._epoch_heap = self.engine.epoch_heap
        self._timeout_heap = self.engine.timeout_heap
        self._retry_heap = self.engine.lifecycle.retry_heap if self.engine.lifecycle is not None else []
        self._hungry = self.engine.hungry  # a cluster node's functions whose workers sleep (None outside one)
        self._watch_requests = self.engine.watch_requests  # jobs of other nodes that clients here coalesced onto
        self._status_lookups = self.engine.status_lookups  # GET_STATUS of handles the store may know
        self.on_hungry: Callable[[], None] | None = None  # set by the composition root: claim jobs for them
        self.persistence = Persistence(store, self.engine, self.flush) if store is not None else None
        self.admin = AdminCommands(self.engine, time.time)
        self.guard = ConnectionGuard(config.limits)
        security = config.security
        self.access = AccessGuard(self.engine, self.admin, security.acl, allow_remote_admin=security.allow_remote_admin)
        self.connections: dict[int, Outlet] = {}  # by peer id: the sockets' connections
        self.sinks: dict[int, PacketSink] = {}  # by peer id: in-process peers' (HTTP submissions, cluster relays)
        self.sockets: list[socket.socket] = []
        self.addresses: list[tuple[str, int]] = []
        self._servers: list[asyncio.AbstractServer | TlsListener] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._stopped: asyncio.Event | None = None
        self._draining = False
        self._drain_deadline: asyncio.TimerHandle | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self.tls_context: ssl.SSLContext | None = None  # set by start() when serving TLS
        self.handshaking = 0  # TLS connections accepted whose handshake is under way (they count as connections)
        self.exit_status = 0
        self.replayed = 0  # jobs the store gave back at start
        self.stop_reason: str | None = None  # why it stops (a signal's name, admin shutdown...): for the last log line

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Open the listening sockets (port 0 picks a free port; see :attr:`port`)."""
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        if self.persistence is not None:
            # The queue is back before the port opens; StoreHeld if another server runs it.
            holder = Holder(self.config.node_name())
            self.replayed = self.persistence.replay(keep=not self.store_on_shutdown, holder=holder)
            self.persistence.keep_holding(self._lost_store)
        if self.engine.lifecycle is not None:
            self.engine.lifecycle.arm_cron(time.time())  # after the replay: it knows each entry's last firing
            self.flush()  # arms the timer for the first firing
        tls = self.config.security.tls
        context = self.config.security.tls_context or (server_context(tls) if tls is not None else None)
        self.tls_context = context  # the HTTP listener serves HTTPS with it
        if context is not None:
            # Handshakes run on the loop like any other I/O, counted as connections from accept on (tls_listener).
            self._start_tls_listeners(context, tls.handshake_timeout if tls is not None else None)
        for host in () if context is not None else self.config.hosts:
            try:
                server = await self._loop.create_server(
                    lambda: GearmanConnection(self),
                    host=host or None,
                    port=self.config.port,
                    backlog=self.config.backlog,
                    reuse_address=True,
                )
            except (OSError, OverflowError) as error:
                raise listen_error(host, self.config.port, error) from error
            self._servers.append(server)
            self.sockets.extend(server_sockets(server))
        self.addresses = [sock.getsockname()[:2] for sock in self.sockets]
        for address in self.addresses:
            log.info("listening on %s%s", address, " (TLS)" if tls else "")
        if self.config.security.acl is not None:
            log.info("access control: %s", self.config.security.acl_file or "policy given")
        self._schedule_sweep()

    def _start_tls_listeners(self, context: ssl.SSLContext, handshake_timeout: float | None) -> None:
        def admit() -> bool:
            return self.guard.admit_tls(len(self.connections) + self.handshaking)

        def counted(change: int) -> None:
            self.handshaking += change

        for sock in bind(self.config.hosts, self.config.port, self.config.backlog):
            listener = TlsListener(sock, lambda: GearmanConnection(self), context, handshake_timeout, admit, counted)
            listener.start()
            self._servers.append(listener)
            self.sockets.append(sock)

    def _lost_store(self, message: str) -> None:
        log.error("%s: stopping", message)
        self.exit_status = 1
        self.stop("lost the store")

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return int(self.addresses[0][1])

    @property
    def started(self) -> bool:
        return self._stopped is not None

    async def serve(self) -> None:
        """Run until stopped (admin `shutdown`, a signal, or :meth:`stop`)."""
        if not self.started:
            await self.start()
        await self.stop_requested()
        await self.close()

    async def stop_requested(self) -> None:
        """Return once a stop has been asked for (admin `shutdown`, a signal, a drain's end, :meth:`stop`)."""
        assert self._stopped is not None, "not started"
        await self._stopped.wait()

    def stop(self, reason: str = "asked to stop") -> None:
        """Stop now: close the listeners and every connection (``reason`` is logged at the stop)."""
        if self._stopped is not None:
            self.stop_reason = self.stop_reason or reason
            self._stopped.set()

    def drain(self, reason: str = "graceful stop") -> None:
        """Graceful stop: no new connections, submits refused, running jobs finish (within ``drain_timeout``).

        With a store, queued jobs stay stored for the next start and only running jobs are waited for; with the
        memory queue, workers keep taking queued jobs until none is left (they would be lost otherwise).
        """
        if self._draining:
            return
        self._draining = True
        self.stop_reason = self.stop_reason or reason
        hold = self.persistence is not None
        self.engine.begin_drain(hold_queued=hold)
        log.warning(
            "graceful shutdown: no new connections or jobs; waiting for %d %s job(s), at most %.0f s",
            self.engine.running_count if hold else self.engine.job_count,
            "running" if hold else "queued or running",
            self.config.drain_timeout,
        )
        for server in self._servers:
            server.close()
        if self._loop is not None and self.config.drain_timeout > 0:
            self._drain_deadline = self._loop.call_later(self.config.drain_timeout, self._drain_timed_out)
        self._check_drained()

    @property
    def draining(self) -> bool:
        """A graceful stop is under way."""
        return self._draining

    def _check_drained(self) -> None:
        engine = self.engine
        if self._draining and (engine.running_count if engine.hold_queued else engine.job_count) == 0:
            self.stop()

    def _drain_timed_out(self) -> None:
        self._drain_deadline = None
        log.warning(
            "drain deadline (%.0f s) reached with %d job(s) running: stopping; stored ones run again after a restart",
            self.config.drain_timeout,
            self.engine.running_count,
        )
        self.stop()

    def _on_sigterm(self) -> None:
        # A second TERM during a drain means "now" (what an impatient service manager sends next).
        if self.config.sigterm == "graceful" and not self._draining:
            self.drain("SIGTERM, graceful")
        else:
            self.stop("SIGTERM")

    async def close(self) -> None:
        """Close the listeners, store what is recorded, close every connection, release the store."""
        for server in self._servers:
            server.close()
        for handle in (self._drain_deadline, self._sweeper):
            if handle is not None:
                handle.cancel()
        if self.persistence is not None:
            if self.store_on_shutdown:
                await self.persistence.write_queue()
            await self.persistence.flush()  # what was recorded reaches the store before connections go
            self.flush()
        await self._close_connections()
        for server in self._servers:
            await server.wait_closed()
        if self._timer is not None:
            self._timer.cancel()
        if self.persistence is not None:
            self.persistence.close()

    async def _close_connections(self, grace: float = 2.0) -> None:
        """Close every connection after what is queued for it is sent (a drained job's result, say); abort those
        that cannot take it within ``grace`` seconds."""
        for sink in list(self.sinks.values()):
            sink.close()  # an HTTP submission still waiting is answered that the server closed it
        for connection in list(self.connections.values()):
            connection.close()
        deadline = time.monotonic() + grace
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self.connections.values()):
            connection.abort()

    def install_signal_handlers(self, reopen_log: Callable[[], None] | None = None) -> None:
        """TERM stops (or drains, with ``sigterm="graceful"``), INT stops, USR1 drains, HUP reopens the log and
        reads the ACL file again."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._on_sigterm)
        loop.add_signal_handler(signal.SIGINT, self.stop, "SIGINT")
        loop.add_signal_handler(signal.SIGUSR1, self.drain, "SIGUSR1, graceful")
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup, reopen_log)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def _on_sighup(self, reopen_log: Callable[[], None] | None) -> None:
        if reopen_log is not None:
            try:
                reopen_log()  # first, so that what the reload logs goes to the new file
            except GearmanError as error:  # the file cannot be opened: the one in use stays
                log.error("%s; still logging to the file in use", error)
        self.reload_acl()
        self.reload_policies()

    def reload_policies(self) -> bool:
        """Read ``--policy-file`` again; a file that does not parse leaves the policies in force (logged)."""
        path, lifecycle = self.config.policy_file, self.engine.lifecycle
        if path is None or lifecycle is None:
            return False
        try:
            policies = load_policies(path)
        except LifecyclePolicyError as error:
            log.error("life cycle: kept the policies in force; %s", error)
            return False
        lifecycle.reload(policies, time.time())
        self.flush()
        log.info("life cycle: reloaded %s", path)
        return True

    def reload_acl(self) -> bool:
        """Read ``--acl-file`` again and put it in force; a file that does not parse leaves the policy in force as
        it was (logged). ``False`` when nothing was reloaded."""
        path = self.config.security.acl_file
        if path is None or self.access.policy is None:
            return False
        try:
            policy = load_policy(path)
        except PolicyError as error:
            log.error("access control: kept the policy in force; %s", error)
            return False
        self.access.reload(policy)
        log.info("access control: reloaded %s", path)
        return True

    # ------------------------------------------------------------------ after each input

    def _write_in_parts(self, peer: Peer) -> None:
        """:meth:`flush` for a peer whose output is not one buffer (:meth:`Peer.take_buffers`): written with the
        same rules, as if it were (after an empty buffer it goes whole, else each part counts against the cap).
        An in-process peer's packets go to its sink as packets (:meth:`Peer.take_packets`)."""
        if peer.in_process:
            sink = self.sinks.get(peer.id)
            packets = peer.take_packets()
            if sink is not None and packets:
                sink.packets(packets)
            return
        buffers = peer.take_buffers()
        writer = peer.writer
        if writer is not None and not writer.get_write_buffer_size() and not writer.is_closing():
            for data in buffers:
                writer.write(data)
        else:
            connection = self.connections.get(peer.id)
            if connection is None:
                return
            for data in buffers:
                connection.write(data)
        if peer.close_after_flush and not peer.outbox:
            closing = self.connections.get(peer.id)
            if closing is not None:
                closing.close()

    def flush(self, first: Peer | None = None) -> None:
        """Write what the engine queued, kick the store, re-arm the timer, act on a shutdown request.

        Called after every input (a ``data_received``, a disconnect, a timer, a store result, an HTTP action), so
        there is one write per touched connection per input. Deferring it to the end of the loop turn
        (``call_soon``) was measured: it merged no writes in the benchmark's workloads and cost an extra loop
        iteration (3,600 instructions and an ``epoll_wait``) per input. It runs once per read, so the common case
        is kept to few bytecodes: the lists it needs are bound at construction, and the timer is only looked at
        while the engine has one.

        ``first`` (the connection whose input this was) is written to before the others: its reply is what its
        sender waits for, e.g. a worker's next JOB_ASSIGN, while the WORK_COMPLETE its result sends to a client
        may follow a write later (measured: with one worker that ordering is the worker's critical path).
        """
        dirty = self._dirty
        if dirty:
            if first is not None and len(dirty) > 1 and dirty[0] is not first and first.outbox:
                dirty.remove(first)
                dirty.insert(0, first)
            for peer in dirty:
                outbox = peer.outbox
                if not outbox:
                    continue
                if peer.unresolved or peer.large or peer.in_process:
                    # Some replies wait for the store, a large payload is queued, or the peer takes packets.
                    self._write_in_parts(peer)
                    continue
                data = b"".join(outbox)  # type: ignore[arg-type]  # one item: that very object, no copy
                outbox.clear()
                writer = peer.writer
                # The common case, written directly: nothing unsent, not closing. Anything else goes through
                # the connection's write, which applies --max-unsent (or is not a socket: an HTTP gateway).
                if writer is not None and not writer.get_write_buffer_size() and not writer.is_closing():
                    if data:
                        writer.write(data)
                else:
                    connection = self.connections.get(peer.id)
                    if connection is None:
                        continue
                    if data:
                        connection.write(data)
                if peer.close_after_flush and not outbox:
                    closing = self.connections.get(peer.id)
                    if closing is not None:
                        closing.close()
            dirty.clear()
        if self.persistence is not None:
            self.persistence.kick()
        if (
            self._hungry is not None
            and (self._hungry or self._watch_requests or self._status_lookups)
            and self.on_hungry is not None
        ):
            self.on_hungry()
        if self._epoch_heap or self._timeout_heap or self._retry_heap:
            deadline = self.engine.next_deadline()
            if deadline is not None and (self._timer_at is None or deadline < self._timer_at):
                self._arm_timer(deadline)
        if self.engine.shutdown_mode is not None or self._draining:
            self._after_flush()

    def _after_flush(self) -> None:
        engine = self.engine
        if engine.shutdown_mode is not None:
            mode, engine.shutdown_mode = engine.shutdown_mode, None
            if mode == "now":
                self.stop("admin shutdown")
            else:
                self.drain("admin shutdown graceful")
        if self._draining:
            self._check_drained()

    def _arm_timer(self, deadline: float) -> None:
        if self._loop is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        delay = max(0.0, deadline - time.time())
        self._timer = self._loop.call_later(delay, self._on_timer)

    def _schedule_sweep(self) -> None:
        timeout = self.config.limits.idle_timeout
        if self._loop is not None and timeout > 0:
            self._sweeper = self._loop.call_later(max(timeout / 4, 0.05), self._sweep)

    def _sweep(self) -> None:
        self.guard.sweep(time.monotonic())
        self._schedule_sweep()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.engine.tick(time.time())
        self.flush()

    # ------------------------------------------------------------------ sockets

    def tune_socket(self, sock: socket.socket) -> None:
        """Per accepted socket: no Nagle delay (replies are already batched), keepalive if asked."""
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        keepalive = self.config.keepalive
        if not keepalive.enabled:
            return
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in (
            (getattr(socket, "TCP_KEEPIDLE", None), keepalive.idle),
            (getattr(socket, "TCP_KEEPINTVL", None), keepalive.interval),
            (getattr(socket, "TCP_KEEPCNT", None), keepalive.count),
        ):
            if option is not None and value > 0:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)


def new_event_loop(use_uvloop: bool) -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed and wanted, else asyncio's (logged: the performance figures are uvloop's)."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            log.info("event loop: asyncio's (uvloop is not installed: pip install 'geartrain[fast]')")
        else:
            log.info("event loop: uvloop %s", getattr(uvloop, "__version__", "?"))
            return uvloop.new_event_loop()
    else:
        log.info("event loop: asyncio's (--no-uvloop)")
    return asyncio.new_event_loop()
