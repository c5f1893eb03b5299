"""A listening socket that could not be opened, in one line an operator reads: where, and why in plain words.

Shared by every listener (the Gearman port, TLS, HTTP): the OS's own text says ``[Errno 98] error while attempting
to bind on address ('127.0.0.1', 4730)`` at best, and nothing of the address for a name that does not resolve.
"""

from __future__ import annotations

import asyncio
import errno
import socket

from geartrain.errors import StartupError

# The OS's reasons, as someone starting a server reads them.
_LISTEN_REASONS = {
    errno.EADDRINUSE: "address already in use",
    errno.EACCES: "permission denied (ports below 1024 need root or the CAP_NET_BIND_SERVICE capability)",
    errno.EADDRNOTAVAIL: "no such address on this host",
}
# What usually holds a port (docs/troubleshooting.md, "Port in use", shows how to find it).
_IN_USE_HINTS = {
    "": "is another gearmand or geartrain running? see docs/troubleshooting.md",
    "HTTP": "is another server on that port? choose another --http-port; see docs/troubleshooting.md",
}


def show_address(host: str, port: int) -> str:
    """``host:port`` as an operator types it: ``*`` for every address, IPv6 in brackets."""
    shown = host or "*"
    return f"[{shown}]:{port}" if ":" in shown else f"{shown}:{port}"


def listen_error(host: str, port: int, error: OSError | OverflowError, what: str = "") -> StartupError:
    """The line for a listening socket that could not be opened (``what``: ``""`` for the Gearman port, ``HTTP``)."""
    where = show_address(host, port) + (f" for {what}" if what else "")
    if isinstance(error, OverflowError):  # the command line checks ports; a library caller may not have
        reason = f"port out of range ({error})"
    elif isinstance(error, socket.gaierror):
        reason = f"no such host or address ({error.strerror})"
    else:
        reason = _LISTEN_REASONS.get(error.errno or 0) or error.strerror or str(error)
        if error.errno == errno.EADDRINUSE:
            reason += f" ({_IN_USE_HINTS.get(what, _IN_USE_HINTS[''])})"
    return StartupError(f"cannot listen on {where}: {reason}")


def check_free(host: str, port: int, what: str = "") -> None:
    """Raise now the :func:`listen_error` that listening on ``host:port`` later would: a server replays its store
    before it opens its ports, and a port in use should not be reported only after a replay of a million jobs.

    Each address is bound once and let go, with the options the event loop's listener uses (so a port left in
    TIME_WAIT passes, one with a listener does not). Port 0 always passes. A port taken between this check and
    the listen is still reported, by the listen."""
    if not port:
        return
    try:
        found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, OverflowError) as error:
        raise listen_error(host, port, error, what) from error
    for family, kind, protocol, _, address in found:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as error:
                raise listen_error(host, port, error, what) from error


def server_sockets(server: asyncio.AbstractServer) -> list[socket.socket]:
    """The listening sockets of ``server``. uvloop's ``sockets`` is a list where asyncio's is a tuple; compiled
    code (mypyc checks the declared tuple at run time) reads them through this interpreted function."""
    return list(getattr(server, "sockets", ()))
