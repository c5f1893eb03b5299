"""Security flags: the server's TLS (gearmand's ``--ssl*`` names) and access control, and the client tools' TLS
and secret options.

gearmand reads its certificate files from ``GEARMAND_SERVER_PEM``, ``GEARMAND_SERVER_KEY`` and
``GEARMAND_CA_CERTIFICATE`` when the flags are not given; libgearman's tools take ``GEARMAND_CA_CERTIFICATE``,
``GEARMAN_CLIENT_PEM`` and ``GEARMAN_CLIENT_KEY``. Both are honoured here. What the environment alone sets (for
processes without these flags) is in :mod:`geartrain.security.environment`.
"""

from __future__ import annotations

import argparse
import os
import ssl

from geartrain.errors import GearmanError
from geartrain.security.environment import (
    CA_CERTIFICATE_ENV,
    CLIENT_KEY_ENV,
    CLIENT_PEM_ENV,
    SECRET_ENV,
    SSL_ENV,
    error_reason,
    secret_from_environment,
    ssl_from_environment,
)
from geartrain.security.policy import PolicyError, load_policy
from geartrain.security.settings import SecurityConfig
from geartrain.security.tls import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    VERIFY_CLIENT_MODES,
    TlsServerSettings,
    client_context,
    server_context,
)

# gearmand's defaults ($sysconfdir/ssl/certs/...), used when --ssl is given without the file flags.
GEARMAND_SERVER_PEM = "/etc/ssl/certs/gearmand.pem"
GEARMAND_SERVER_KEY = "/etc/ssl/certs/gearmand.key"


def add_server_security_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's TLS and access-control flags."""
    group = parser.add_argument_group("security")
    group.add_argument("--ssl", action="store_true", help="serve TLS only on the Gearman port")
    group.add_argument(
        "--ssl-certificate",
        default=None,
        metavar="PEM",
        help=f"server certificate (chain); GEARMAND_SERVER_PEM, else {GEARMAND_SERVER_PEM}",
    )
    group.add_argument(
        "--ssl-key",
        default=None,
        metavar="PEM",
        help=f"its private key; GEARMAND_SERVER_KEY, else {GEARMAND_SERVER_KEY}",
    )
    group.add_argument(
        "--ssl-ca-file",
        default=None,
        metavar="PEM",
        help="CA certificates that client certificates are checked against; GEARMAND_CA_CERTIFICATE",
    )
    group.add_argument(
        "--ssl-verify-client",
        choices=VERIFY_CLIENT_MODES,
        default=None,
        help="ask for client certificates: none, optional (checked when presented), required "
        "(default: optional with --ssl-ca-file, else none)",
    )
    group.add_argument(
        "--ssl-handshake-timeout",
        type=float,
        default=DEFAULT_HANDSHAKE_TIMEOUT,
        metavar="SECONDS",
        help="close a connection whose TLS handshake has not finished after this long",
    )
    group.add_argument(
        "--acl-file",
        default=None,
        metavar="TOML",
        help="access control list: who may submit, work and administer which functions (docs/security.md); "
        "default: no access control",
    )
    group.add_argument(
        "--allow-remote-admin",
        action="store_true",
        help="without --acl-file, accept admin write commands (cancel job, drop function, maxqueue, shutdown ...) "
        "from any address, not only from loopback",
    )


def security_from_args(args: argparse.Namespace) -> SecurityConfig:
    """Check the security flags and build their settings; raises :class:`GearmanError` with the reason."""
    tls = None
    context = None
    if args.ssl:
        ca_file = args.ssl_ca_file or os.environ.get(CA_CERTIFICATE_ENV) or None
        verify = args.ssl_verify_client or ("optional" if ca_file else "none")
        tls = TlsServerSettings(
            certificate=args.ssl_certificate or os.environ.get("GEARMAND_SERVER_PEM") or GEARMAND_SERVER_PEM,
            key=args.ssl_key or os.environ.get("GEARMAND_SERVER_KEY") or GEARMAND_SERVER_KEY,
            ca_file=ca_file,
            verify_client=verify,
            handshake_timeout=args.ssl_handshake_timeout,
        )
        for what, path in (("certificate", tls.certificate), ("key", tls.key), ("CA file", tls.ca_file)):
            if path and not os.access(path, os.R_OK):  # ssl's own error would not name the file
                raise GearmanError(f"cannot set up TLS: {path}: the {what} cannot be read")
        try:
            context = server_context(tls)  # fail at start, with the reason, rather than on the first connection
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise GearmanError(f"cannot set up TLS: {error_reason(exc)}") from exc
    elif args.ssl_certificate or args.ssl_key or args.ssl_ca_file or args.ssl_verify_client:
        raise GearmanError("--ssl-certificate, --ssl-key, --ssl-ca-file and --ssl-verify-client need --ssl")
    acl = None
    if args.acl_file:
        try:
            acl = load_policy(args.acl_file)
        except PolicyError as exc:
            raise GearmanError(str(exc)) from exc
    return SecurityConfig(
        tls=tls, acl=acl, acl_file=args.acl_file, allow_remote_admin=args.allow_remote_admin, tls_context=context
    )


# ---------------------------------------------------------------------- client tools


def add_client_security_arguments(parser: argparse.ArgumentParser, *, short_ssl: bool = True) -> None:
    """TLS and secret options of ``geartrain submit/work/admin`` (``-S/--ssl`` as libgearman's tools spell it)."""
    group = parser.add_argument_group("security")
    names = ("-S", "--ssl") if short_ssl else ("--ssl",)
    group.add_argument(*names, action="store_true", help=f"connect with TLS ({SSL_ENV}=1 also asks for it)")
    group.add_argument(
        "--ssl-ca-file",
        metavar="PEM",
        help="CA certificates to check the server against (GEARMAND_CA_CERTIFICATE; default: the system's)",
    )
    group.add_argument("--ssl-certificate", metavar="PEM", help="client certificate to present (GEARMAN_CLIENT_PEM)")
    group.add_argument("--ssl-key", metavar="PEM", help="its private key (GEARMAN_CLIENT_KEY)")
    group.add_argument(
        "--ssl-no-verify", action="store_true", help="do not check the server's certificate (testing only)"
    )
    group.add_argument(
        "--secret-file",
        metavar="PATH",
        help=f"present the secret in this file (first line) to the server's access control; {SECRET_ENV} also sets it",
    )


def client_tls_from_args(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The client context the options ask for, or ``None``; raises :class:`GearmanError` with the reason."""
    if not (args.ssl or ssl_from_environment()):
        return None
    certificate = args.ssl_certificate or os.environ.get(CLIENT_PEM_ENV)
    try:
        return client_context(
            ca_file=args.ssl_ca_file or os.environ.get(CA_CERTIFICATE_ENV) or None,
            certificate=certificate or None,
            key=args.ssl_key or os.environ.get(CLIENT_KEY_ENV) or None,
            verify=not args.ssl_no_verify,
        )
    except (OSError, ssl.SSLError) as exc:
        raise GearmanError(f"cannot set up TLS: {error_reason(exc)}") from exc


def client_secret_from_args(args: argparse.Namespace) -> str | None:
    """The secret to present: the first line of ``--secret-file``, else ``GEARTRAIN_SECRET``, else ``None``."""
    if args.secret_file:
        try:
            with open(args.secret_file, encoding="utf-8") as stream:
                secret = stream.readline().rstrip("\r\n")
        except OSError as exc:
            raise GearmanError(f"cannot read the secret file: {error_reason(exc)}") from exc
        if not secret:
            raise GearmanError(f"the secret file {args.secret_file} is empty")
        return secret
    return secret_from_environment()
