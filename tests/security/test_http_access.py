"""The HTTP routes' permissions (pure), ready for the HTTP listener to ask per request."""

from __future__ import annotations

import pytest

from geartrain.security.http_access import Requirement, bearer_secret, http_requirement
from geartrain.security.policy import ADMIN_READ, ADMIN_WRITE, SUBMIT

JOBS = {"H:x:1": "resize"}


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/healthz", None),
        ("GET", "/readyz", None),
        ("GET", "/", None),
        ("GET", "/dashboard/", None),
        ("GET", "/dashboard/app.js", None),
        ("GET", "/metrics", Requirement(ADMIN_READ, None)),
        ("GET", "/api/server", Requirement(ADMIN_READ, None)),
        ("GET", "/api/events", Requirement(ADMIN_READ, None)),
        ("GET", "/api/functions", Requirement(ADMIN_READ, None)),
        ("GET", "/api/functions/resize", Requirement(ADMIN_READ, "resize")),
        ("GET", "/api/jobs/H:x:1", Requirement(ADMIN_READ, "resize")),
        ("GET", "/api/jobs/H:x:2", Requirement(ADMIN_READ, None)),
        ("POST", "/api/jobs/H:x:1/cancel", Requirement(ADMIN_WRITE, "resize")),
        ("DELETE", "/api/jobs/H:x:1", Requirement(ADMIN_WRITE, "resize")),
        ("POST", "/api/functions/resize/purge", Requirement(ADMIN_WRITE, "resize")),
        ("PUT", "/api/functions/resize/maxqueue", Requirement(ADMIN_WRITE, "resize")),
        ("POST", "/api/shutdown", Requirement(ADMIN_WRITE, None)),
        ("GET", "/api/policies", Requirement(ADMIN_READ, None)),
        ("GET", "/api/policies/resize", Requirement(ADMIN_READ, "resize")),
        ("PUT", "/api/policies/resize", Requirement(ADMIN_WRITE, "resize")),
        ("DELETE", "/api/policies/resize", Requirement(ADMIN_WRITE, "resize")),
        ("POST", "/api/cron", Requirement(ADMIN_WRITE, None)),
        ("DELETE", "/api/cron", Requirement(ADMIN_WRITE, None)),
        ("POST", "/resize", Requirement(SUBMIT, "resize")),
        ("GET", "/mail.send", Requirement(SUBMIT, "mail.send")),
        ("POST", "/submit/metrics", Requirement(SUBMIT, "metrics")),
        ("HEAD", "/resize", None),
    ],
)
def test_requirements(method: str, path: str, expected: Requirement | None) -> None:
    assert http_requirement(method, path, JOBS.get) == expected


@pytest.mark.parametrize(
    ("header", "secret"),
    [(None, None), ("", None), ("Bearer s3cret", b"s3cret"), ("bearer  s3cret ", b"s3cret"), ("Basic abc", None),
     ("Bearer", None)],
)  # fmt: skip
def test_bearer_secret(header: str | None, secret: bytes | None) -> None:
    assert bearer_secret(header) == secret
