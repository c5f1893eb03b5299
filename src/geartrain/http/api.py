"""The JSON API: server info, functions, workers and jobs to read; cancel, purge and maxqueue to act (the job life
cycle's routes are in lifecycle_api.py).

Reads come from the same views as the admin ``... json`` commands (``server/core/snapshot.py``); actions go
through the engine's own operations, and the server's flush runs after each, so clients hear at once (a cancelled
job's foreground clients get WORK_FAIL).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from geartrain.errors import GearmanError
from geartrain.http.lifecycle_api import LifecycleApi, is_lifecycle_action, is_lifecycle_read
from geartrain.http.message import Request
from geartrain.server.core.snapshot import (
    function_view,
    functions_view,
    job_detail,
    jobs_view,
    totals_view,
    workers_view,
)

if TYPE_CHECKING:
    from geartrain.http.listener import HttpConnection, HttpListener
    from geartrain.http.node import ClusterState, NodeView

MAX_JOBS_LISTED = 5000


def ready(node: NodeView) -> tuple[bool, str]:
    """Ready: the Gearman port listens (so store replay is done), no drain is under way, the store is up."""
    if not node.gearman_addresses:
        return False, "not listening yet"
    if node.draining:
        return False, "draining"
    if node.store is not None and not node.store.up:
        return False, "the persistent store is unavailable"
    if node.cluster is not None:
        return node.cluster.ready
    return True, "ready"


def server_view(listener: HttpListener, now: float) -> dict[str, Any]:
    node = listener.view
    engine = node.engine
    config = engine.config
    store = node.store
    is_ready, why = ready(node)
    return {
        "version": config.version,
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "started": listener.started,
        "uptime": round(now - listener.started, 3),
        "gearman": [f"{host}:{port}" for host, port in node.gearman_addresses],
        "http": [f"{host}:{port}" for host, port in listener.addresses],
        "ready": is_ready,
        "status": why,
        "connections": node.gearman_connection_count(),
        "http_connections": len(listener.connections),
        "store": None
        if store is None
        else {"description": store.description, "up": store.up, "commits": store.commits},
        "settings": {
            "job_retries": config.job_retries,
            "round_robin": config.round_robin,
            "global_priority": config.global_priority,
            "worker_wakeup": config.worker_wakeup,
            "exceptions": config.exceptions,
        },
        "totals": totals_view(engine),
        "cluster": None if node.cluster is None else cluster_view(node.cluster),
    }


def cluster_view(cluster: ClusterState) -> dict[str, Any]:
    """This node's part in its cluster, and the cluster's nodes as of its last heartbeat (no database query)."""
    is_ready, why = cluster.ready
    return {
        "node": cluster.node,
        "leader": cluster.leader,
        "ready": is_ready,
        "status": why,
        "claimed": cluster.claimed,
        "rescued": cluster.rescued,
        "jobs_held": cluster.jobs_held,
        "nodes": cluster.known_nodes,
    }


class Api:
    """Handlers for ``/api/...``; each answers on the connection it is given."""

    def __init__(self, listener: HttpListener) -> None:
        self.listener = listener
        self.view = listener.view
        self.actions = listener.actions
        self.lifecycle = LifecycleApi(listener.view, listener.actions)

    def __call__(self, connection: HttpConnection, request: Request, path: str) -> None:
        method = request.method
        head = method == "HEAD"
        if method in ("GET", "HEAD"):
            self._read(connection, request, path, head)
        elif method in ("POST", "PUT", "DELETE"):
            self._act(connection, request, path)
        else:
            connection.respond_json({"error": f"method {method} not allowed"}, 405)

    # ------------------------------------------------------------------ reads

    def _read(self, connection: HttpConnection, request: Request, path: str, head: bool) -> None:
        engine = self.view.engine
        now = time.time()
        data: object
        if path == "server":
            data = server_view(self.listener, now)
        elif path == "functions":
            data = {"functions": functions_view(engine, now), "totals": totals_view(engine)}
        elif path.startswith("functions/"):
            function = engine.functions.get(path.removeprefix("functions/").encode())
            if function is None:
                connection.respond_json({"error": "no such function"}, 404, head_only=head)
                return
            data = function_view(function, now)
        elif path == "workers":
            data = {"workers": workers_view(engine)}
        elif path == "jobs":
            limit = _int(request.param("limit"), 500)
            data = jobs_view(
                engine,
                now,
                search=request.param("search"),
                function=request.param("function"),
                limit=max(0, min(limit, MAX_JOBS_LISTED)),
            )
        elif path.startswith("jobs/"):
            job = engine.jobs.get(path.removeprefix("jobs/").encode())
            if job is None:
                connection.respond_json({"error": "no such job"}, 404, head_only=head)
                return
            data = job_detail(engine, job, now)
        elif path == "cluster":
            asyncio.get_running_loop().create_task(self._cluster(connection, head))
            return
        elif is_lifecycle_read(path):
            self.lifecycle.read(connection, request, path, head, now)
            return
        elif path == "history":
            data = self.listener.router.history.view()
        else:
            connection.respond_json({"error": "not found"}, 404, head_only=head)
            return
        connection.respond_json(data, head_only=head)

    async def _cluster(self, connection: HttpConnection, head: bool) -> None:
        """``/api/cluster``: this node's part, and every node as the database lists them."""
        cluster = self.view.cluster
        if cluster is None:
            connection.respond_json(
                {"error": "this server is not a node of a cluster (--cluster)"}, 404, head_only=head
            )
            return
        try:
            nodes = await cluster.nodes()
        except GearmanError as error:
            connection.respond_json({"error": f"cannot read the cluster: {error}"}, 503, head_only=head)
            return
        this = {"node": cluster.node, "leader": cluster.leader, "claimed": cluster.claimed, "rescued": cluster.rescued}
        connection.respond_json({"this": this, "nodes": nodes}, head_only=head)

    # ------------------------------------------------------------------ actions

    def _act(self, connection: HttpConnection, request: Request, path: str) -> None:
        actions = self.actions
        if path.startswith("jobs/") and (request.method == "DELETE" or path.endswith("/cancel")):
            handle = path.removeprefix("jobs/").removesuffix("/cancel").encode()
            if not actions.cancel(handle):
                connection.respond_json({"error": "no such job"}, 404)
                return
            connection.respond_json({"cancelled": handle.decode("utf-8", "backslashreplace")})
            return
        if path.startswith("functions/") and path.endswith("/purge") and request.method == "POST":
            name = path.removeprefix("functions/").removesuffix("/purge")
            removed = actions.purge(name.encode())
            if removed is None:
                connection.respond_json({"error": "no such function"}, 404)
                return
            connection.respond_json({"function": name, "purged": removed})
            return
        if path.startswith("functions/") and path.endswith("/maxqueue") and request.method in ("POST", "PUT"):
            name = path.removeprefix("functions/").removesuffix("/maxqueue")
            limits = _limits(request.body)
            if limits is None:
                message = 'send {"limit": N} or {"high": N, "normal": N, "low": N} (0 = unlimited)'
                connection.respond_json({"error": message}, 400)
                return
            if not actions.set_max_queue(name.encode(), limits):
                connection.respond_json({"error": "no such function"}, 404)
                return
            connection.respond_json(
                {"function": name, "max_queue": dict(zip(("high", "normal", "low"), limits, strict=True))}
            )
            return
        if is_lifecycle_action(path):
            self.lifecycle.act(connection, request, path)
            return
        connection.respond_json({"error": "not found"}, 404)


def _int(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def _limits(body: bytes) -> list[int] | None:
    """Per-priority limits from ``{"limit": N}`` or ``{"high": H, "normal": N, "low": L}`` (missing = 0)."""
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if "limit" in data:
        values = [data["limit"]] * 3
    else:
        values = [data.get(key, 0) for key in ("high", "normal", "low")]
        if not any(key in data for key in ("high", "normal", "low")):
            return None
    if not all(isinstance(value, int) and not isinstance(value, bool) for value in values):
        return None
    return [max(0, value) for value in values]
