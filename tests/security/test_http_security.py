"""The HTTP listener under the same policy: submissions, the JSON API, metrics and actions; Bearer secrets and
client certificates as identities; HTTPS with --ssl; the loopback rule for actions without an ACL."""

from __future__ import annotations

import http.client
import ssl

from tlshelpers import Pki, tls_settings

from geartrain.protocol.packets import PacketType
from geartrain.security.guard import AccessGuard
from geartrain.security.http_access import http_verdict
from geartrain.security.policy import parse_policy
from geartrain.server.core.admin import AdminCommands
from geartrain.server.core.config import EngineConfig
from geartrain.server.core.engine import Engine

TIMEOUT = 10.0
ACL = """
[secrets]
frontend = "plain:frontend-secret"

[[allow]]
who = ["frontend"]
actions = ["submit"]
functions = ["resize"]

[[allow]]
who = ["ops"]
actions = ["admin_read", "admin_write"]
"""


def _request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    context: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    if context is None:
        connection: http.client.HTTPConnection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    else:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=TIMEOUT, context=context)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_http_requests_follow_the_acl(secure_server) -> None:
    server = secure_server(acl=ACL, http=True)
    port = server.http_port
    background = {"X-Gearman-Background": "true"}
    assert _request(port, "GET", "/healthz") == (200, b"ok\n")
    status, body = _request(port, "POST", "/resize", background, b"img")
    assert (status, body) == (403, b"POST /resize on function 'resize' is not allowed for anonymous\n")
    status, _ = _request(port, "POST", "/resize", {**background, "Authorization": "Bearer frontend-secret"}, b"img")
    assert status == 200  # created: the engine's own check saw the same identity
    assert _request(port, "POST", "/resize", {**background, "Authorization": "Bearer nope"})[0] == 401
    assert _request(port, "GET", "/api/functions", {"Authorization": "Bearer frontend-secret"})[0] == 403
    assert _request(port, "GET", "/metrics")[0] == 403
    assert _request(port, "POST", "/api/functions/resize/purge")[0] == 403
    assert server.denials() == {"submit": 1, "auth": 1, "admin_read": 2, "admin_write": 1}
    # The job is queued, created by the allowed request.
    assert server.server.engine.functions[b"resize"].total == 1


def test_https_with_client_certificates(secure_server, pki: Pki) -> None:
    server = secure_server(tls=tls_settings(pki), acl=ACL, http=True)
    port = server.http_port
    anonymous = pki.client_context()
    ops = pki.client_context(pki.ops)
    assert _request(port, "GET", "/healthz", context=anonymous) == (200, b"ok\n")
    assert _request(port, "GET", "/api/functions", context=anonymous)[0] == 403
    status, body = _request(port, "GET", "/api/functions", context=ops)
    assert status == 200 and body.startswith(b"{"), body
    status, metrics = _request(port, "GET", "/metrics", context=ops)
    assert status == 200
    assert b'geartrain_access_denied_total{action="admin_read"} 1\n' in metrics  # the anonymous /api/functions
    # Plain HTTP to the HTTPS port gets no HTTP answer.
    try:
        status, _ = _request(port, "GET", "/healthz")
    except (http.client.HTTPException, ConnectionError):
        status = 0
    assert status != 200


def test_without_acl_http_actions_need_loopback() -> None:
    engine = Engine(EngineConfig(handle_prefix=b"H:test"))
    guard = AccessGuard(engine, AdminCommands(engine), None)
    remote, local = "192.0.2.7", "127.0.0.1"
    assert http_verdict(guard, "POST", "/api/functions/f/purge", None, None, local).status == 0
    refused = http_verdict(guard, "POST", "/api/functions/f/purge", None, None, remote)
    assert (refused.status, refused.reason) == (
        403,
        "POST /api/functions/f/purge is limited to loopback connections (see --allow-remote-admin)",
    )
    assert http_verdict(guard, "GET", "/api/functions", None, None, remote).status == 0
    assert http_verdict(guard, "POST", "/resize", None, None, remote).status == 0
    open_guard = AccessGuard(engine, AdminCommands(engine), None, allow_remote_admin=True)
    assert http_verdict(open_guard, "POST", "/api/functions/f/purge", None, None, remote).status == 0


JOB_ACL = """
[secrets]
mailops = "plain:mailops-secret"

[[allow]]
who = "anonymous"
actions = "submit"
functions = "mail"

[[allow]]
who = "mailops"
actions = "admin_write"
functions = "mail"
"""


def test_http_verdict_names_the_job_function() -> None:
    """Cancelling a job over HTTP needs admin_write on that job's function."""
    engine = Engine(EngineConfig(handle_prefix=b"H:test"))
    guard = AccessGuard(engine, AdminCommands(engine), parse_policy(JOB_ACL))
    client = engine.connect(5, "127.0.0.1")
    engine.handle(client, PacketType.SUBMIT_JOB_BG, (b"mail", b"", b"x"), 0.0)
    engine.handle(client, PacketType.SUBMIT_JOB_BG, (b"resize", b"", b"x"), 0.0)
    assert [job.function.name for job in engine.jobs.values()] == [b"mail"]  # resize was refused
    (handle,) = (key.decode() for key in engine.jobs)
    refused = http_verdict(guard, "DELETE", f"/api/jobs/{handle}", None, None, "127.0.0.1")
    assert (refused.status, refused.identity) == (403, ())
    assert refused.reason == f"DELETE /api/jobs/{handle} on function 'mail' is not allowed for anonymous"
    allowed = http_verdict(guard, "POST", f"/api/jobs/{handle}/cancel", "Bearer mailops-secret", None, "127.0.0.1")
    assert (allowed.status, allowed.identity) == (0, ("mailops",))
