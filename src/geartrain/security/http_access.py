"""What an HTTP request needs from the access policy: the action and function of each route of the HTTP
listener (job submission, the JSON API, the dashboard's live feed, metrics), and the secret a request presents.

Pure: the listener asks :func:`http_requirement` per request, then :meth:`AccessGuard.check
<geartrain.security.guard.AccessGuard.check>` with the identity from :meth:`AccessGuard.identity_for
<geartrain.security.guard.AccessGuard.identity_for>` (its TLS certificate, and ``Authorization: Bearer <secret>``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from geartrain.security.policy import ADMIN_READ, ADMIN_WRITE, SUBMIT

if TYPE_CHECKING:
    from geartrain.security.guard import AccessGuard

# Paths anyone may use: liveness and readiness probes, the dashboard's static files (they hold no data; the data
# comes from /api, which is checked), and the redirect to them.
OPEN_PATHS = frozenset({"/", "/healthz", "/readyz", "/favicon.ico"})


@dataclass(frozen=True, slots=True)
class Requirement:
    """The ``action`` a request needs on ``function`` (``None``: server-wide)."""

    action: str
    function: str | None


def http_requirement(method: str, path: str, function_of_job: Callable[[str], str | None]) -> Requirement | None:
    """The permission an HTTP request needs, or ``None`` for an open path. ``function_of_job(handle)`` names the
    function of a live job (``None`` when there is none: then the requirement is server-wide)."""
    if path in OPEN_PATHS or path == "/dashboard" or path.startswith("/dashboard/"):
        return None
    if path == "/metrics":
        return Requirement(ADMIN_READ, None)
    if path.startswith("/api/"):
        return _api_requirement(method, path.removeprefix("/api/").rstrip("/"), function_of_job)
    if method == "HEAD":  # a HEAD on a submission path runs nothing
        return None
    function = path.lstrip("/")
    return Requirement(SUBMIT, function.removeprefix("submit/") if function.startswith("submit/") else function)


def _api_requirement(method: str, route: str, function_of_job: Callable[[str], str | None]) -> Requirement:
    action = ADMIN_READ if method in ("GET", "HEAD") else ADMIN_WRITE
    if route.startswith("functions/"):
        name = route.removeprefix("functions/")
        for suffix in ("/purge", "/maxqueue", "/pause", "/resume"):
            name = name.removesuffix(suffix)
        return Requirement(action, name)
    if route.startswith("policies/"):  # a function's policy: read it, or (PUT, DELETE) change it
        return Requirement(action, route.removeprefix("policies/"))
    if route.startswith("jobs/"):
        handle = route.removeprefix("jobs/").removesuffix("/cancel")
        return Requirement(action, function_of_job(handle))
    return Requirement(action, None)


def bearer_secret(authorization: str | None) -> bytes | None:
    """The secret of an ``Authorization: Bearer <secret>`` header, or ``None``."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip().encode()


@dataclass(frozen=True, slots=True)
class HttpVerdict:
    """The identity a request proved, and the refusal to answer (``status`` 401: unknown secret, 403: not allowed)
    or ``status`` 0 when it may go ahead."""

    identity: tuple[str, ...] = ()
    status: int = 0
    reason: str = ""


ALLOWED = HttpVerdict()


def http_verdict(
    guard: AccessGuard, method: str, path: str, authorization: str | None, ssl_object: Any, address: str
) -> HttpVerdict:
    """May this HTTP request go ahead, and as whom? Costs nothing without an ACL but for admin-write requests (the
    loopback rule)."""
    if not guard.active:
        return ALLOWED
    jobs = guard.engine.jobs

    def function_of_job(handle: str) -> str | None:
        job = jobs.get(handle.encode())
        return job.function.name.decode("utf-8", "surrogateescape") if job is not None else None

    requirement = http_requirement(method, path, function_of_job)
    if guard.policy is None and (requirement is None or requirement.action != ADMIN_WRITE):
        return ALLOWED
    identity = guard.identity_for(ssl_object, bearer_secret(authorization))
    if identity is None:
        return HttpVerdict((), 401, "Unknown secret")
    if requirement is None:
        return HttpVerdict(identity)
    reason = guard.check(identity, address, requirement.action, requirement.function, f"{method} {path}")
    return HttpVerdict(identity, 403, reason) if reason is not None else HttpVerdict(identity)
