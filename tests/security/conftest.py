"""Fixtures for the TLS and access-control tests: a throwaway PKI and in-process servers with security settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from pki import TestAuthority
from tlshelpers import Pki, SecureServer

from asynctests import run_async_test
from geartrain.security.policy import Policy, parse_policy
from geartrain.security.settings import SecurityConfig
from geartrain.security.tls import TlsServerSettings
from geartrain.server.config import ServerConfig
from geartrain.server.core.config import EngineConfig


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """``async def`` tests run on a fresh event loop each, under a deadline."""
    return run_async_test(pyfuncitem)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    authority = TestAuthority(directory)
    stranger = TestAuthority(directory / "other", "stranger CA")
    return Pki(
        ca_file=authority.ca_file,
        server=authority.issue("localhost", dns=("localhost",), ips=("127.0.0.1",), server=True),
        ops=authority.issue("ops"),
        web1=authority.issue("web1.example.com", dns=("web1.example.com",)),
        intruder=stranger.issue("ops-intruder", dns=("ops",)),
    )


@pytest.fixture
def secure_server() -> Iterator[Callable[..., SecureServer]]:
    """Start servers: ``secure_server(tls=TlsServerSettings | None, acl=TOML text | Policy | None, ...)``."""
    started: list[SecureServer] = []

    def start(
        *,
        tls: TlsServerSettings | None = None,
        acl: str | Policy | None = None,
        allow_remote_admin: bool = False,
        http: bool = False,
    ) -> SecureServer:
        policy = parse_policy(acl) if isinstance(acl, str) else acl
        security = SecurityConfig(tls=tls, acl=policy, allow_remote_admin=allow_remote_admin)
        config = ServerConfig(
            port=0, engine=EngineConfig(handle_prefix=b"H:test"), security=security, http_port=0 if http else None
        )
        server = SecureServer(config)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
