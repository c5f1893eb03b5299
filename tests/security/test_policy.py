"""The pure policy (ACL file parsing, decisions) and the guard on an engine without sockets: the loopback rule,
refusals, and that a server without an ACL file has no guard on its packet handlers."""

from __future__ import annotations

import logging

import pytest

from geartrain.protocol.codec import encode
from geartrain.protocol.packets import PacketType
from geartrain.security.guard import AccessGuard, is_local
from geartrain.security.policy import ADMIN_READ, ADMIN_WRITE, SUBMIT, WORK, PolicyError, parse_policy, secret_digest
from geartrain.server.core.admin import AdminCommands
from geartrain.server.core.config import EngineConfig
from geartrain.server.core.engine import Engine
from geartrain.server.core.peers import Peer

P = PacketType

POLICY = """
[secrets]
frontend = "{digest}"

[[allow]]
who = "anonymous"
actions = "admin-read"
functions = ["reports.*"]

[[allow]]
who = ["frontend", "*.web.example.com"]
actions = ["submit"]
functions = ["resize", "mail.*"]

[[allow]]
who = ["ops"]
actions = ["admin_read", "admin_write", "work"]
""".format(digest=secret_digest("s3cret"))


def test_decisions() -> None:
    policy = parse_policy(POLICY)
    assert policy.allows(("frontend",), SUBMIT, "resize")
    assert policy.allows(("a.web.example.com",), SUBMIT, "mail.send")
    assert not policy.allows(("a.web.example.com",), SUBMIT, "mail")
    assert not policy.allows(("web.example.com",), SUBMIT, "resize")  # "*." needs a label before it
    assert not policy.allows(("frontend",), WORK, "resize")
    assert not policy.allows((), SUBMIT, "resize")
    # Anonymous grants are everyone's; a rule without `functions` covers all, server-wide commands included.
    assert policy.allows(("frontend",), ADMIN_READ, "reports.daily")
    assert not policy.allows(("frontend",), ADMIN_READ, None)
    assert policy.allows(("ops",), ADMIN_WRITE, None)
    assert policy.allows(("someone", "ops"), WORK, "anything")
    assert not policy.allows(("OPS",), WORK, "anything")  # names match case-sensitively
    # Answers are cached; the cache must not change them.
    for _ in range(3):
        assert policy.allows(("frontend",), SUBMIT, "resize") and not policy.allows((), SUBMIT, "resize")


def test_secrets() -> None:
    policy = parse_policy(POLICY)
    assert policy.identify(b"s3cret") == "frontend"
    assert policy.identify(b"s3cret ") is None
    assert policy.identify(b"") is None
    plain = parse_policy('[secrets]\nbatch = "plain:hunter2"\n')
    assert plain.identify(b"hunter2") == "batch"
    assert plain.rules == ()
    assert not plain.allows(("batch",), SUBMIT, "x")  # no rule: nothing is allowed


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[[allow]]\nwho = ['x']\nactions = ['fly']\n", "unknown action(s) fly"),
        ("[[allow]]\nactions = ['submit']\n", "who must be"),
        ("[[allow]]\nwho = []\nactions = ['submit']\n", "who must be"),
        ("[[allow]]\nwho = ['x']\nactions = ['submit']\nfunction = ['y']\n", "unknown key(s) function"),
        ("[secrets]\nx = 'sha256:abcd'\n", "secret 'x' must be"),
        ("[secrets]\nx = 'hunter2'\n", "secret 'x' must be"),
        ("[users]\n", "unknown section(s) users"),
        ("allow = 3\n", "array of tables"),
        ("[[allow]\n", "acl.toml"),
    ],
)
def test_invalid_files_are_refused_with_a_reason(text: str, complaint: str) -> None:
    with pytest.raises(PolicyError, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        parse_policy(text, "acl.toml")


@pytest.mark.parametrize(
    ("address", "local"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("::ffff:127.0.0.1", True), ("unix", True),
     ("192.0.2.7", False), ("::ffff:192.0.2.7", False), ("2001:db8::1", False), ("localhost", False)],
)  # fmt: skip
def test_is_local(address: str, local: bool) -> None:
    assert is_local(address) is local


def _response(ptype: int, *args: bytes) -> bytes:
    return encode(ptype, *args)


def _engine(policy_text: str | None, allow_remote_admin: bool = False) -> tuple[Engine, AdminCommands, AccessGuard]:
    engine = Engine(EngineConfig(handle_prefix=b"H:test"))
    admin = AdminCommands(engine)
    policy = parse_policy(policy_text) if policy_text is not None else None
    return engine, admin, AccessGuard(engine, admin, policy, allow_remote_admin=allow_remote_admin)


def _admin(admin: AdminCommands, peer: Peer, line: bytes) -> bytes:
    admin.run(peer, line)
    out = peer.take_output()
    admin.engine.dirty.clear()
    return out


def test_without_acl_admin_writes_need_loopback() -> None:
    engine, admin, guard = _engine(None)
    remote, local = engine.connect(5, "192.0.2.7"), engine.connect(6, "127.0.0.1")
    assert _admin(admin, remote, b"status") == b".\n"  # reading is open
    assert _admin(admin, remote, b"create function f") == (
        b"ERR PERMISSION_DENIED create+function+is+limited+to+loopback+connections+(see+--allow-remote-admin)\r\n"
    )
    assert _admin(admin, remote, b"shutdown").startswith(b"ERR PERMISSION_DENIED shutdown")
    assert engine.shutdown_mode is None
    assert _admin(admin, local, b"create function f") == b"OK\r\n"
    assert guard.denials == {ADMIN_WRITE: 2}


def test_allow_remote_admin_without_acl_checks_nothing() -> None:
    engine, admin, guard = _engine(None, allow_remote_admin=True)
    assert not guard.active and admin.guard is None
    remote = engine.connect(5, "192.0.2.7")
    assert _admin(admin, remote, b"create function f") == b"OK\r\n"


def handler_name(handler: object) -> str:
    """A handler's qualified name; a closure compiled by mypyc has none, its class names it."""
    return str(getattr(handler, "__qualname__", type(handler).__qualname__))


def test_without_acl_no_packet_handler_is_wrapped() -> None:
    plain_engine = Engine(EngineConfig(handle_prefix=b"H:test"))
    engine, _, _ = _engine(None)
    assert [handler_name(h) for h in engine.handlers] == [handler_name(h) for h in plain_engine.handlers]
    guarded, _, _ = _engine(POLICY)
    assert handler_name(guarded.handlers[P.SUBMIT_JOB]).startswith("AccessGuard.")
    assert guarded.handlers[P.GRAB_JOB] == guarded._grab_job  # what needs no check has none


def test_with_acl_loopback_is_not_special() -> None:
    engine, admin, guard = _engine(POLICY)
    local = engine.connect(6, "127.0.0.1")
    assert _admin(admin, local, b"create function f").startswith(b"ERR PERMISSION_DENIED")
    assert _admin(admin, local, b"show jobs").startswith(b"ERR PERMISSION_DENIED show+jobs+on+the+server")
    assert _admin(admin, local, b"version").startswith(b"OK ")
    local.identity = ("ops",)
    assert _admin(admin, local, b"create function f") == b"OK\r\n"
    assert guard.denials == {ADMIN_WRITE: 1, ADMIN_READ: 1}


def test_status_of_a_job_needs_submit_on_its_function() -> None:
    engine, _, guard = _engine(POLICY)
    frontend, stranger = engine.connect(5, "127.0.0.1"), engine.connect(6, "127.0.0.1")
    frontend.identity = ("frontend",)
    engine.handle(frontend, P.SUBMIT_JOB_BG, (b"resize", b"u1", b"img"), 0.0)
    handle = frontend.take_output()[12:]
    engine.handle(stranger, P.GET_STATUS, (handle,), 0.0)
    assert b"PERMISSION_DENIED" in stranger.take_output()
    engine.handle(frontend, P.GET_STATUS, (handle,), 0.0)
    assert frontend.take_output() == _response(P.STATUS_RES, handle, b"1", b"0", b"0", b"0")
    engine.handle(stranger, P.GET_STATUS_UNIQUE, (b"u1",), 0.0)
    assert b"PERMISSION_DENIED" in stranger.take_output()
    engine.handle(stranger, P.GET_STATUS, (b"H:test:999",), 0.0)  # unknown handles reveal nothing
    assert stranger.take_output() == _response(P.STATUS_RES, b"H:test:999", b"0", b"0", b"0", b"0")
    assert guard.denials == {SUBMIT: 2}


def test_check_and_identity_for_other_front_ends() -> None:
    """The peer-less API an HTTP front end uses: identities from a secret, decisions with reasons."""
    _, _, guard = _engine(POLICY)
    assert guard.identity_for(None, None) == ()
    assert guard.identity_for(None, b"s3cret") == ("frontend",)
    assert guard.identity_for(None, b"wrong") is None
    assert guard.check(("frontend",), "192.0.2.7", SUBMIT, "resize") is None
    assert guard.check((), "127.0.0.1", SUBMIT, "resize") == "submit on function 'resize' is not allowed for anonymous"
    assert guard.check((), "127.0.0.1", ADMIN_WRITE, None) == "admin_write on the server is not allowed for anonymous"
    assert guard.denials == {"auth": 1, SUBMIT: 1, ADMIN_WRITE: 1}
    _, _, open_guard = _engine(None)
    assert open_guard.identity_for(None, b"anything") == ()
    assert open_guard.check((), "192.0.2.7", SUBMIT, "resize") is None
    assert open_guard.check((), "127.0.0.1", ADMIN_WRITE, None) is None
    assert open_guard.check((), "192.0.2.7", ADMIN_WRITE, None) == (
        "admin_write is limited to loopback connections (see --allow-remote-admin)"
    )


def test_repeated_refusals_are_all_counted_but_logged_sparsely(caplog: pytest.LogCaptureFixture) -> None:
    engine, _, guard = _engine(POLICY)
    peer = engine.connect(5, "127.0.0.1")
    with caplog.at_level(logging.WARNING, logger="geartrain.access"):
        for _ in range(5):
            engine.handlers[P.SUBMIT_JOB](peer, (b"resize", b"", b"x"), 0.0)
    assert guard.denials == {SUBMIT: 5}
    assert peer.take_output().count(b"PERMISSION_DENIED") == 5  # every refusal is answered
    assert [record.getMessage() for record in caplog.records] == [
        "access denied: submit on function 'resize' for anonymous from 127.0.0.1",
        "access denied: submit on function 'resize' for anonymous from 127.0.0.1 (2 times)",
        "access denied: submit on function 'resize' for anonymous from 127.0.0.1 (4 times)",
    ]
