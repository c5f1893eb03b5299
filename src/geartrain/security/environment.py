"""TLS and the secret from the environment, for processes that take no security flags: the ``gearman`` and
``gearadmin`` entry points (``-S`` configured as libgearman's tools configure it) and the manager's workers.

``GEARTRAIN_SSL`` asks for TLS, ``GEARTRAIN_SECRET`` is the secret to present to the server's access control, and
the files come from libgearman's variables: ``GEARMAND_CA_CERTIFICATE``, ``GEARMAN_CLIENT_PEM`` and
``GEARMAN_CLIENT_KEY``. The command line's flags (``cli/security_args.py``) fall back on the same variables.
"""

from __future__ import annotations

import os
import ssl

from geartrain.errors import GearmanError
from geartrain.security.tls import client_context

SECRET_ENV = "GEARTRAIN_SECRET"
SSL_ENV = "GEARTRAIN_SSL"  # 1/true/yes/on: connect with TLS, as --ssl / -S
CA_CERTIFICATE_ENV = "GEARMAND_CA_CERTIFICATE"
CLIENT_PEM_ENV = "GEARMAN_CLIENT_PEM"
CLIENT_KEY_ENV = "GEARMAN_CLIENT_KEY"


def ssl_from_environment() -> bool:
    """Whether ``GEARTRAIN_SSL`` asks for TLS (how processes without TLS flags, e.g. the manager's, get it)."""
    return os.environ.get(SSL_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def secret_from_environment() -> str | None:
    """The secret ``GEARTRAIN_SECRET`` sets, or ``None`` when it is unset or empty."""
    return os.environ.get(SECRET_ENV) or None


def libgearman_tls_from_environment() -> ssl.SSLContext:
    """What ``-S`` means for the ``gearman``/``gearadmin`` entry points: TLS configured as libgearman's tools
    configure it, from ``GEARMAND_CA_CERTIFICATE``, ``GEARMAN_CLIENT_PEM`` and ``GEARMAN_CLIENT_KEY`` (each
    optional here: no CA file means the system's CAs). Raises :class:`GearmanError` with the reason."""
    try:
        return client_context(
            ca_file=os.environ.get(CA_CERTIFICATE_ENV) or None,
            certificate=os.environ.get(CLIENT_PEM_ENV) or None,
            key=os.environ.get(CLIENT_KEY_ENV) or None,
        )
    except (OSError, ssl.SSLError) as exc:
        raise GearmanError(f"cannot set up TLS: {error_reason(exc)}") from exc


def error_reason(exc: BaseException) -> str:
    """An exception as a reason to show: ``file: strerror`` for an ``OSError`` that names its file (``ssl``'s
    own message would not name it), else the exception's text."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, ssl.SSLError) and exc.reason == "KEY_VALUES_MISMATCH":
        return "the private key does not match the certificate"
    return str(exc)
