"""The composition root: the one place where the parts of a node are built and wired together.

A node is the Gearman side (engine, store and persistence, the Gearman and TLS listeners: :class:`GearmanServer`)
and the parts around it, each handed the narrow view it needs: the HTTP listener gets a read-only
:class:`~geartrain.server.view.ServerView` and a :class:`~geartrain.server.view.ServerActions`, never the server
itself. Later parts (the cluster adapter, policies) are wired here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from geartrain.errors import GearmanError, StartupError
from geartrain.listening import check_free
from geartrain.server.announce import log_started, log_stopped
from geartrain.server.config import ServerConfig
from geartrain.server.gc_policy import CollectionPolicy
from geartrain.server.limits import file_descriptors_for, raise_open_file_limit
from geartrain.server.server import GearmanServer, new_event_loop
from geartrain.server.startup import write_pid_file
from geartrain.server.view import ServerActions, ServerView
from geartrain.store.base import QueueStore, StoreError

if TYPE_CHECKING:
    from geartrain.cluster.node import ClusterDb, ClusterNode
    from geartrain.http.listener import HttpListener


class Node:
    """One running node: starts its parts in order, and stops them in the reverse order."""

    def __init__(
        self, gearman: GearmanServer, http: HttpListener | None = None, cluster: ClusterNode | None = None
    ) -> None:
        self.gearman = gearman
        self.http = http
        self.cluster = cluster
        self._cluster_joined = False

    async def start(self) -> None:
        """Replay the store, open the Gearman port, join the cluster, then open the HTTP port (so /readyz is never
        ahead of the rest).

        A part that fails (:class:`~geartrain.errors.StartupError` for a port, a store error...) first gets the
        parts before it closed: the store's hold released and, with ``store_on_shutdown``, the queue read at start
        written back (it was emptied by the replay)."""
        config = self.gearman.config
        for host in config.hosts:  # before the replay, which may take long (geartrain.listening.check_free)
            check_free(host, config.port)
        if self.http is not None:
            for host in self.http.hosts:
                check_free(host, self.http.port_wanted, "HTTP")
        try:
            await self.gearman.start()
            if self.cluster is not None:
                host, port = self.gearman.addresses[0]
                await self.cluster.start(f"{host}:{port}")
                self._cluster_joined = True
            if self.http is not None:
                await self.http.start()
        except BaseException:
            # Best effort: the failure that stopped the start is the one to report, not one of the clean-up.
            with contextlib.suppress(Exception):
                await self.close()
            raise

    async def serve(self) -> None:
        """Run until stopped (admin ``shutdown``, a signal, :meth:`stop`), then close every part."""
        if not self.gearman.started:
            await self.start()
        await self.gearman.stop_requested()
        await self.close()

    async def close(self) -> None:
        """Close the parts in the reverse order of their start (those that started)."""
        if self.http is not None:
            await self.http.close()
        if self.gearman.started:
            await self.gearman.close()
        if self.cluster is not None and self._cluster_joined:
            await self.cluster.stop()  # after the workers are gone: every job this node held goes back

    def stop(self) -> None:
        self.gearman.stop()

    @property
    def exit_status(self) -> int:
        return self.gearman.exit_status


def build_node(config: ServerConfig, store: QueueStore | None = None, *, store_on_shutdown: bool = False) -> Node:
    """Build a node's parts from its configuration (nothing is opened or bound until :meth:`Node.start`)."""
    cluster = None
    if config.cluster:
        cluster_db = join_cluster(config, store, store_on_shutdown)
    gearman = GearmanServer(config, store, store_on_shutdown=store_on_shutdown)
    if config.cluster:
        from geartrain.cluster.node import ClusterNode

        cluster = ClusterNode(
            cluster_db,
            gearman.engine,
            gearman.flush,
            ServerActions(gearman).open_peer,
            config.node_name(),
            config.lease,
        )
        gearman.on_hungry = cluster.kick
        gearman.admin.cluster_rows = cluster.status_rows
        gearman.admin.result_lookup = cluster.look_up_result
    http = None
    if config.http_port is not None:
        from geartrain.http.listener import HttpListener  # only nodes that serve HTTP load it

        view, actions = ServerView(gearman, cluster), ServerActions(gearman)
        http = HttpListener(view, actions, config.http_hosts, config.http_port)
    return Node(gearman, http, cluster)


def join_cluster(config: ServerConfig, store: QueueStore | None, store_on_shutdown: bool) -> ClusterDb:
    """The cluster's database side for ``store`` (PostgreSQL or Redis); StoreError with one line otherwise."""
    from geartrain.store.postgres import PostgresStore
    from geartrain.store.redis import RedisStore

    if isinstance(store, PostgresStore) and not store_on_shutdown:
        from geartrain.cluster.postgres import PostgresClusterDb, PostgresClusterSql

        sql = PostgresClusterSql(store, config.node_name(), config.lease)
        store.cluster = sql
        return PostgresClusterDb(sql)
    if isinstance(store, RedisStore) and not store_on_shutdown:
        from geartrain.cluster.redis import RedisClusterDb, RedisClusterKeys

        keys = RedisClusterKeys(store, config.node_name(), config.lease)
        store.cluster = keys
        return RedisClusterDb(keys)
    where = store.description if store is not None else "memory"
    raise StoreError(
        f"--cluster needs a PostgreSQL or Redis store (--store postgresql://... or redis://...), not {where}: "
        "the nodes share its queue"
    )


def run_node(
    config: ServerConfig,
    reopen_log: Callable[[], None] | None = None,
    store: QueueStore | None = None,
    *,
    store_on_shutdown: bool = False,
    on_started: Callable[[], None] | None = None,
) -> int:
    """Run a node in this process until it stops; returns the exit status. ``on_started`` is called once it runs.

    A start that fails raises :class:`~geartrain.errors.GearmanError` with one line saying what failed
    (:class:`~geartrain.errors.StartupError`, :class:`~geartrain.store.base.StoreError`); the parts that had
    started are closed first.
    """
    raise_open_file_limit(file_descriptors_for(config.limits))
    loop = new_event_loop(config.use_uvloop)
    node = build_node(config, store, store_on_shutdown=store_on_shutdown)
    gc_policy: CollectionPolicy | None = None
    pid_written = False

    async def main() -> None:
        nonlocal gc_policy, pid_written
        await start(node)
        node.gearman.install_signal_handlers(reopen_log)
        if config.pid_file:  # once a signal stops it cleanly: whoever reads the file may send one at once
            try:
                write_pid_file(config.pid_file)
            except StartupError:
                await node.close()
                raise
            pid_written = True
        # This process is the node's alone: tune its collector (an embedded server leaves the host's alone).
        gc_policy = CollectionPolicy(config.gc)
        gc_policy.start(asyncio.get_running_loop())
        log_started(node, config)
        if on_started is not None:
            on_started()
        await node.serve()
        log_stopped(node)

    try:
        loop.run_until_complete(main())
    finally:
        if gc_policy is not None:
            gc_policy.stop()
        if config.pid_file and pid_written:  # not before: the file may be another server's (this one's port was)
            with contextlib.suppress(OSError):
                os.unlink(config.pid_file)
        loop.close()
    return node.exit_status


async def start(node: Node) -> None:
    """Start ``node``; a failure nobody translated still becomes one line (its traceback at ``--verbose DEBUG``)."""
    try:
        await node.start()
    except GearmanError:
        raise
    except Exception as error:
        raise StartupError(f"cannot start: {type(error).__name__}: {error}") from error
