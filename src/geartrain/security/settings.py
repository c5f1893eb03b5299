"""The server's security settings: TLS on the Gearman port, the access policy, and the loopback rule."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from geartrain.security.policy import Policy
from geartrain.security.tls import TlsServerSettings


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """``tls``: serve TLS only (``None``: plain TCP). ``acl``: the access policy (``None``: everyone may do
    everything, except that admin write commands need a loopback connection unless ``allow_remote_admin``).
    ``acl_file``: where the policy came from, for logs. ``tls_context``: the context already built from ``tls``
    (the command line builds it before ``-u`` drops the rights to read the key); built at start when ``None``."""

    tls: TlsServerSettings | None = None
    acl: Policy | None = None
    acl_file: str | None = None
    allow_remote_admin: bool = False
    tls_context: ssl.SSLContext | None = field(default=None, compare=False, repr=False)
