"""python-gearman's host lists: where the servers are, and the TLS settings its dict entries carry."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any

from geartrain.compat._errors import DEFAULT_GEARMAN_PORT, GearmanError
from geartrain.security.tls import client_context

TLS_KEYS = ("keyfile", "certfile", "ca_certs")


def server_list(host_list: Sequence[Any] | None) -> list[str | tuple[str, int]]:
    """python-gearman's host list: ``"host:port"`` / ``"host"`` strings, ``(host, port)`` tuples, or dicts with
    ``host``, ``port`` and the TLS files (see :func:`server_tls`)."""
    servers: list[str | tuple[str, int]] = []
    for element in host_list or []:
        if isinstance(element, dict):
            servers.append((str(element["host"]), int(element.get("port", DEFAULT_GEARMAN_PORT))))
        else:
            servers.append(element if isinstance(element, str) else (str(element[0]), int(element[1])))
    return servers


def server_tls(host_list: Sequence[Any] | None) -> ssl.SSLContext | None:
    """The TLS context of a host list. As python-gearman, a dict entry uses TLS when it names all three of
    ``keyfile``, ``certfile`` and ``ca_certs``, and the server's certificate is checked against ``ca_certs`` but
    not against its host name. One context serves every server here, so they must all share these settings."""
    settings: set[tuple[str, str, str] | None] = set()
    for element in host_list or []:
        files = tuple(str(element.get(key) or "") for key in TLS_KEYS) if isinstance(element, dict) else ()
        settings.add((files[0], files[1], files[2]) if len(files) == 3 and all(files) else None)
    if len(settings) > 1:
        raise GearmanError("geartrain needs the same TLS settings (keyfile, certfile, ca_certs) for every host")
    chosen = settings.pop() if settings else None
    if chosen is None:
        return None
    keyfile, certfile, ca_certs = chosen
    context = client_context(ca_file=ca_certs, certificate=certfile, key=keyfile)
    context.check_hostname = False
    return context
