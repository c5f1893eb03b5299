"""Which request goes where, and the live side of the dashboard (history samples and server-sent events).

Reserved paths: ``/healthz``, ``/readyz``, ``/metrics``, ``/api/...``, ``/dashboard/...`` and ``/`` (a redirect to
the dashboard). Every other path is a job submission, the function named by the path, as in gearmand's HTTP
plugin; ``/submit/NAME`` reaches a function whose name is one of the reserved ones.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from importlib import resources
from typing import TYPE_CHECKING, Any

from geartrain.http.api import Api, ready, server_view
from geartrain.http.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from geartrain.http.metrics import render_metrics
from geartrain.http.submit import submit_job
from geartrain.security.http_access import http_verdict
from geartrain.server.core.snapshot import functions_view, workers_view

if TYPE_CHECKING:
    from geartrain.http.listener import HttpConnection, HttpListener
    from geartrain.http.message import Request

log = logging.getLogger("geartrain.http")

SAMPLE_INTERVAL = 2.0  # seconds between history samples (and live updates)
FINE_SAMPLES = 300  # every sample of the last ten minutes
COARSE_INTERVAL = 30.0  # then one sample per half minute...
COARSE_SAMPLES = 240  # ... for two hours
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
RESERVED = ("healthz", "readyz", "metrics", "api", "dashboard", "favicon.ico")


class History:
    """Samples (time, and per function its queue, running and counters) held in two rings: every sample of the
    last ``fine * interval`` seconds, and one per ``coarse_interval`` for ``coarse * coarse_interval`` seconds (two
    hours by default). The counters are cumulative, so rates between two coarse samples are exact averages: the
    long view loses detail, not jobs. Memory is bounded by the two rings' sizes, whatever the uptime."""

    def __init__(
        self,
        interval: float = SAMPLE_INTERVAL,
        fine: int = FINE_SAMPLES,
        coarse_interval: float = COARSE_INTERVAL,
        coarse: int = COARSE_SAMPLES,
    ) -> None:
        self.interval = interval
        self.coarse_interval = coarse_interval
        self.fine: deque[dict[str, Any]] = deque(maxlen=fine)
        self.coarse: deque[dict[str, Any]] = deque(maxlen=coarse)

    @property
    def span(self) -> float:
        """Seconds of history held once the rings are full."""
        return max(self.coarse_interval * self.coarse_maxlen, self.interval * self.fine_maxlen)

    @property
    def fine_span(self) -> float:
        return self.interval * self.fine_maxlen

    @property
    def fine_maxlen(self) -> int:
        return self.fine.maxlen or 0

    @property
    def coarse_maxlen(self) -> int:
        return self.coarse.maxlen or 0

    def append(self, sample: dict[str, Any]) -> None:
        self.fine.append(sample)
        # Half an interval of slack: timers fire a little late, and a late sample must not skip a coarse slot.
        if not self.coarse or sample["t"] - self.coarse[-1]["t"] >= self.coarse_interval - self.interval / 2:
            self.coarse.append(sample)

    def samples(self) -> list[dict[str, Any]]:
        """Every sample held, oldest first: the coarse ones older than the fine ring, then the fine ring."""
        start = self.fine[0]["t"] if self.fine else float("inf")
        return [sample for sample in self.coarse if sample["t"] < start] + list(self.fine)

    def last(self) -> dict[str, Any] | None:
        return self.fine[-1] if self.fine else None

    def view(self) -> dict[str, Any]:
        """``/api/history``: the samples and how they are spaced."""
        return {
            "interval": self.interval,
            "coarse_interval": self.coarse_interval,
            "fine_span": self.fine_span,
            "span": self.span,
            "samples": self.samples(),
        }


class Router:
    """Dispatches requests; owns the sampler timer and the event-stream subscribers."""

    def __init__(self, listener: HttpListener) -> None:
        self.listener = listener
        self.view = listener.view
        self.api = Api(listener)
        self.history = History()
        self.subscribers: set[HttpConnection] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._static = _load_static()

    # ------------------------------------------------------------------ dispatch

    def __call__(self, connection: HttpConnection, request: Request) -> None:
        path = request.path
        method = request.method
        head = method == "HEAD"
        authorization = request.header("authorization")
        access = self.view.access
        verdict = http_verdict(access, method, path, authorization, connection.ssl_object, connection.peer_address)
        if verdict.status:  # refused by the access policy (docs/security.md)
            connection.respond(verdict.status, (verdict.reason + "\n").encode(), head_only=head)
            return
        connection.identity = verdict.identity  # an HTTP submission's engine peer acts as this identity
        if path == "/healthz":
            connection.respond(200, b"ok\n", head_only=head)
        elif path == "/readyz":
            is_ready, why = ready(self.view)
            connection.respond(200 if is_ready else 503, (why + "\n").encode(), head_only=head)
        elif path == "/metrics":
            connection.respond(200, render_metrics(self.listener, time.time()), METRICS_CONTENT_TYPE, head_only=head)
        elif path == "/":
            connection.respond(302, b"", headers=[("Location", "/dashboard/")], head_only=head)
        elif path == "/api/events" and method == "GET":
            self._subscribe(connection)
        elif path.startswith("/api/"):
            self.api(connection, request, path.removeprefix("/api/").rstrip("/"))
        elif path == "/dashboard" or path.startswith("/dashboard/"):
            self._serve_static(connection, path.removeprefix("/dashboard").lstrip("/") or "index.html", head)
        elif path == "/favicon.ico":
            connection.respond(204)
        else:
            self._submit(connection, request, path)

    def _submit(self, connection: HttpConnection, request: Request, path: str) -> None:
        function = path.lstrip("/")
        function = function.removeprefix("submit/") if function.startswith("submit/") else function
        if not function or (function.split("/", 1)[0] in RESERVED and not path.lstrip("/").startswith("submit/")):
            connection.respond(404, b"no function named in the path\n")
            return
        if request.method not in ("GET", "POST", "PUT", "HEAD"):
            connection.respond(405, b"submit jobs with POST, PUT or GET\n", headers=[("Allow", "GET, POST, PUT")])
            return
        if request.method == "HEAD":  # gearmand answers HEAD without a job; a HEAD must not run anything
            connection.respond(200, headers=[("X-Gearman-Job-Handle", "")], head_only=True)
            return
        if self.view.draining:
            connection.respond(503, b"the server is draining: no new jobs\n")
            return
        submit_job(self.listener.actions, connection, request, function)

    def _serve_static(self, connection: HttpConnection, name: str, head: bool) -> None:
        found = self._static.get(name)
        if found is None:
            connection.respond(404, b"not found\n", head_only=head)
            return
        body, content_type = found
        connection.respond(200, body, content_type, [("Cache-Control", "no-cache")], head_only=head)

    # ------------------------------------------------------------------ live updates

    def start(self) -> None:
        self._sample()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _sample(self) -> None:
        """Record one history sample and push the live view to every subscriber; then re-arm."""
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.history.interval, self._sample)
        engine = self.view.engine
        now = time.time()
        functions = {}
        for name, stats in engine.stats.functions.items():
            function = engine.functions.get(name)
            functions[name.decode("utf-8", "backslashreplace")] = [
                sum(function.queued) if function else 0,
                function.running if function else 0,
                stats.submitted_total,
                stats.finished_total,
            ]
        sample = {"t": round(now, 3), "functions": functions}
        self.history.append(sample)
        if self.subscribers:
            self._publish(sample, now)

    def _publish(self, sample: dict[str, Any], now: float) -> None:
        engine = self.view.engine
        live = {
            "sample": sample,
            "server": server_view(self.listener, now),
            "functions": functions_view(engine, now),
            "workers": workers_view(engine),
        }
        event = b"event: update\ndata: " + json.dumps(live, separators=(",", ":")).encode() + b"\n\n"
        for subscriber in list(self.subscribers):
            subscriber.write(event)

    def _subscribe(self, connection: HttpConnection) -> None:
        connection.start_response(
            200,
            [("Content-Type", "text/event-stream"), ("Cache-Control", "no-store"), ("X-Accel-Buffering", "no")],
            close=True,
        )
        self.subscribers.add(connection)
        connection.on_lost = lambda: self.subscribers.discard(connection)
        connection.write(b"retry: 2000\n\n")
        last = self.history.last() or {"t": time.time(), "functions": {}}
        self._publish_to(connection, last)

    def _publish_to(self, connection: HttpConnection, sample: dict[str, Any]) -> None:
        subscribers, self.subscribers = self.subscribers, {connection}
        try:
            self._publish(sample, time.time())
        finally:
            self.subscribers = subscribers


def _load_static() -> dict[str, tuple[bytes, str]]:
    """The dashboard's files, shipped as package data (no build step, nothing from a CDN)."""
    files: dict[str, tuple[bytes, str]] = {}
    folder = resources.files("geartrain.http").joinpath("static")
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in STATIC_TYPES:
            files[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    return files
