"""TLS for the Gearman port: the server's context (with optional client certificates) and the clients'.

The server's TLS listener (``server/tls_listener.py``) accepts each connection itself and runs its handshake with
this context on the event loop (``loop.connect_accepted_socket(ssl=...)``), without blocking it; the handshake
timeout closes a connection whose handshake never completes.
"""

from __future__ import annotations

import errno
import ssl
from dataclasses import dataclass
from typing import Any

VERIFY_CLIENT_MODES = ("none", "optional", "required")
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
_PRIVATE_KEY = b"PRIVATE KEY-----"  # RSA, EC, ENCRYPTED or plain PKCS#8


@dataclass(frozen=True, slots=True)
class TlsServerSettings:
    """What ``--ssl``, ``--ssl-certificate``, ``--ssl-key``, ``--ssl-ca-file`` and ``--ssl-verify-client`` set.

    ``verify_client``: ``none`` never asks for a client certificate; ``optional`` asks, and checks one that is
    presented against ``ca_file``; ``required`` refuses the handshake without a valid one.
    """

    certificate: str
    key: str | None = None
    ca_file: str | None = None
    verify_client: str = "none"
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT


def server_context(settings: TlsServerSettings) -> ssl.SSLContext:
    """A server-side context; raises ``OSError``/``ssl.SSLError`` when a file cannot be read or does not match."""
    if settings.verify_client not in VERIFY_CLIENT_MODES:
        raise ValueError(f"verify_client must be one of {', '.join(VERIFY_CLIENT_MODES)}")
    if settings.verify_client != "none" and not settings.ca_file:
        raise ValueError("checking client certificates needs a CA file (--ssl-ca-file)")
    check_pem_files(settings.certificate, settings.key, settings.ca_file)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.certificate, settings.key)
    if settings.ca_file:
        context.load_verify_locations(cafile=settings.ca_file)
    context.verify_mode = {
        "none": ssl.CERT_NONE,
        "optional": ssl.CERT_OPTIONAL,
        "required": ssl.CERT_REQUIRED,
    }[settings.verify_client]
    return context


def client_context(
    *,
    ca_file: str | None = None,
    certificate: str | None = None,
    key: str | None = None,
    verify: bool = True,
) -> ssl.SSLContext:
    """A client-side context: the server's certificate is checked against ``ca_file`` (the system's CAs when
    ``None``) and its host name, unless ``verify`` is false; ``certificate``/``key`` present a client certificate.
    """
    check_pem_files(certificate, key, ca_file)
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if certificate:
        context.load_cert_chain(certificate, key)
    return context


def check_pem_files(certificate: str | None, key: str | None, ca_file: str | None) -> None:
    """Raise an ``OSError`` naming the first file that cannot be read or holds no PEM certificate or key (the key
    may be in the certificate's file). ``ssl`` says ``[SSL] PEM lib`` of such a file: neither which nor why."""
    checks = [(ca_file, _CERTIFICATE, "certificate")]
    if certificate:
        checks += [(certificate, _CERTIFICATE, "certificate"), (key or certificate, _PRIVATE_KEY, "private key")]
    for path, marker, what in checks:
        if path is None:
            continue
        with open(path, "rb") as stream:
            text = stream.read()
        if marker not in text:
            raise OSError(errno.EINVAL, f"no PEM {what} in it", path)


def certificate_names(ssl_object: Any) -> tuple[str, ...]:
    """The names a verified peer certificate carries: subject common names, then DNS, email and URI
    subject-alternative names. Empty when no certificate was presented (or none was asked for)."""
    if ssl_object is None:
        return ()
    certificate = ssl_object.getpeercert()
    if not certificate:
        return ()
    names: list[str] = []
    for relative_name in certificate.get("subject", ()):
        names.extend(value for key, value in relative_name if key == "commonName")
    names.extend(value for kind, value in certificate.get("subjectAltName", ()) if kind in ("DNS", "email", "URI"))
    return tuple(dict.fromkeys(names))
