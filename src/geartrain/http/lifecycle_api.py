"""The job life cycle's routes of the JSON API (docs/lifecycle.md): the dead set, kept results, pause, cron entries
and policies.

Reads look at the engine's life cycle through the node's view; changes go through the node's actions (the flush
follows). Without ``--policy-file`` every route answers 404 with how to turn the life cycle on. A policy or cron
entry that does not check is a 400 with the policy file's one-line message, so an error reads the same whether it
came from the file, the admin port or here.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from geartrain.errors import GearmanError
from geartrain.lifecycle.overrides import SETTING_KEYS
from geartrain.lifecycle.policy import PolicyError
from geartrain.server.core.overrides import cron_source, policy_view

if TYPE_CHECKING:
    from geartrain.http.listener import HttpConnection
    from geartrain.http.message import Request
    from geartrain.http.node import ClusterState, NodeActions, NodeView
    from geartrain.server.core.lifecycle import Firing, Lifecycle

NO_POLICY_FILE = "the job life cycle is off: start the server with --policy-file (docs/lifecycle.md)"
SETTINGS_HINT = 'send a JSON object of policy settings, e.g. {"retries": 5, "timeout": "30s"}'
NO_RESULT = "no result kept for this handle"
CRON_HINT = 'send a JSON [[cron]] table, e.g. {"function": "report", "schedule": "0 7 * * *"}'


def is_lifecycle_read(path: str) -> bool:
    return path in ("dead", "cron", "policies") or path.startswith(("dead/", "results/", "policies/"))


def is_lifecycle_action(path: str) -> bool:
    if path.startswith("functions/"):
        return path.endswith(("/pause", "/resume"))
    return path == "cron" or path.startswith(("dead/", "policies/"))


def cron_view(lifecycle: Lifecycle, firing: Firing) -> dict[str, object]:
    """A cron entry for the API and the dashboard: with where it comes from (``file`` or ``runtime``)."""
    return {**firing.view(), "source": cron_source(lifecycle, firing.ident)}


class LifecycleApi:
    """Handlers for the life-cycle routes under ``/api/``; each answers on the connection it is given."""

    def __init__(self, view: NodeView, actions: NodeActions) -> None:
        self.view = view
        self.actions = actions

    # ------------------------------------------------------------------ reads

    def read(self, connection: HttpConnection, request: Request, path: str, head: bool, now: float) -> None:
        """``/api/dead``, ``/api/dead/HANDLE``, ``/api/results/HANDLE``, ``/api/cron``, ``/api/policies[/NAME]``."""
        lifecycle = self.view.engine.lifecycle
        if lifecycle is None:
            connection.respond_json({"error": NO_POLICY_FILE}, 404, head_only=head)
            return
        data: object
        if path == "dead":
            function = request.param("function")
            dead_jobs = lifecycle.dead_jobs(function.encode() if function else None)
            data = {"dead": [dead.view() for dead in dead_jobs]}
        elif path == "cron":
            data = {"cron": [cron_view(lifecycle, firing) for firing in lifecycle.crons.values()]}
        elif path == "policies" or path.startswith("policies/"):
            name = path.removeprefix("policies").removeprefix("/")
            data = policy_view(lifecycle, name.encode() if name else None)
        elif path.startswith("dead/"):
            dead = lifecycle.dead.get(path.removeprefix("dead/").encode())
            if dead is None:
                connection.respond_json({"error": "no such dead job"}, 404, head_only=head)
                return
            data = {**dead.view(), "data": dead.data.decode("utf-8", "replace")}
        else:
            handle = path.removeprefix("results/").encode()
            kept = lifecycle.result(handle, now)
            cluster = self.view.cluster
            if kept is None and cluster is not None:  # kept by the node that ran the job: the database knows
                asyncio.get_running_loop().create_task(self._result_elsewhere(connection, cluster, handle, head))
                return
            if kept is None:
                connection.respond_json({"error": NO_RESULT}, 404, head_only=head)
                return
            data = kept.view()
        connection.respond_json(data, head_only=head)

    async def _result_elsewhere(
        self, connection: HttpConnection, cluster: ClusterState, handle: bytes, head: bool
    ) -> None:
        try:
            kept = await cluster.result(handle)
        except GearmanError as error:
            connection.respond_json({"error": f"cannot read the cluster: {error}"}, 503, head_only=head)
            return
        if kept is None:
            connection.respond_json({"error": NO_RESULT}, 404, head_only=head)
            return
        connection.respond_json(kept.view(), head_only=head)

    # ------------------------------------------------------------------ actions

    def act(self, connection: HttpConnection, request: Request, path: str) -> None:
        """``POST /api/dead/SELECTOR/retry``, ``DELETE /api/dead/SELECTOR`` (a handle, a function, or ``all``),
        ``POST /api/functions/NAME/pause`` and ``/resume``, ``PUT``/``DELETE /api/policies/NAME``,
        ``POST``/``DELETE /api/cron``."""
        if self.view.engine.lifecycle is None:
            connection.respond_json({"error": NO_POLICY_FILE}, 404)
            return
        try:
            if path.startswith("functions/"):
                self._pause(connection, path)
            elif path.startswith("policies/"):
                self._policy(connection, request, path.removeprefix("policies/"))
            elif path == "cron":
                self._cron(connection, request)
            else:
                self._dead(connection, request, path.removeprefix("dead/"))
        except PolicyError as error:
            connection.respond_json({"error": _one_line(str(error))}, 400)

    def _pause(self, connection: HttpConnection, path: str) -> None:
        name, _, verb = path.removeprefix("functions/").rpartition("/")
        changed = self.actions.pause(name.encode(), verb == "pause")
        connection.respond_json({"function": name, "paused": verb == "pause", "changed": changed})

    def _dead(self, connection: HttpConnection, request: Request, selector: str) -> None:
        if request.method == "POST" and selector.endswith("/retry"):
            count, key = self.actions.retry_dead(selector.removesuffix("/retry").encode()), "retried"
        elif request.method == "DELETE":
            count, key = self.actions.delete_dead(selector.encode()), "deleted"
        else:
            connection.respond_json({"error": "not found"}, 404)
            return
        connection.respond_json({key: count})

    def _policy(self, connection: HttpConnection, request: Request, name: str) -> None:
        """``PUT``/``POST``: set the keys of the body (the others keep their value); ``DELETE [?keys=a,b]``: back to
        the file's settings, for those keys or all. Either answers the function's policy view, as ``GET``."""
        data: dict[str, object] | None
        if request.method == "DELETE":
            keys = tuple(key.strip().lower() for key in request.param("keys").split(",") if key.strip())
            unknown = [key for key in keys if key not in SETTING_KEYS]
            if unknown:
                message = f"{unknown[0]}: not a policy key (one of {', '.join(SETTING_KEYS)})"
                connection.respond_json({"error": message}, 400)
                return
            data = self.actions.unset_policy(name.encode(), keys)
        else:
            settings = _json_object(request.body)
            if not settings:
                connection.respond_json({"error": SETTINGS_HINT}, 400)
                return
            data = self.actions.set_policy(name.encode(), settings)
        connection.respond_json(data)

    def _cron(self, connection: HttpConnection, request: Request) -> None:
        """``POST``: add an entry (201 with it and its next firing); ``DELETE ?function=F[&schedule=S]``: remove
        entries added at run time (the file's stay until the file is edited)."""
        if request.method == "DELETE":
            function = request.param("function")
            if not function:
                connection.respond_json({"error": "name the entries: DELETE /api/cron?function=F[&schedule=S]"}, 400)
                return
            removed = self.actions.remove_cron(function.encode(), request.param("schedule") or None)
            connection.respond_json({"function": function, "removed": removed})
            return
        if request.method != "POST":
            connection.respond_json({"error": "add cron entries with POST, remove them with DELETE"}, 405)
            return
        raw = _json_object(request.body)
        if raw is None:
            connection.respond_json({"error": CRON_HINT}, 400)
            return
        connection.respond_json(self.actions.add_cron(raw), 201)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _one_line(text: str) -> str:
    return " ".join(text.split())
