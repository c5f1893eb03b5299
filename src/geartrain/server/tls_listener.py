"""The listener of a TLS port: it accepts TCP connections itself, so that a handshake counts as a connection.

asyncio's own TLS server (``create_server(ssl=...)``) hands a connection to geartrain only once its handshake is
done, so connections stuck in their handshakes would hold sockets beyond ``--max-connections`` until
``--ssl-handshake-timeout`` closed them. Here each accepted socket is counted from the start: beyond the limit it is
closed at once (a TLS client cannot read a clear-text ERROR), otherwise its handshake runs on the loop
(``loop.connect_accepted_socket(ssl=...)``, which wraps the socket before it reads a byte) and the connection is
served like any other once it is done. Starting the handshake from the connection instead (``loop.start_tls``)
loses the client's first bytes under uvloop, which starts reading right after ``connection_made``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable, Sequence

from geartrain.listening import listen_error

log = logging.getLogger("geartrain.tls")


def bind(hosts: Sequence[str], port: int, backlog: int) -> list[socket.socket]:
    """Listening sockets for ``hosts`` (an empty name: every interface, IPv4 and IPv6) on ``port``, as
    ``create_server`` binds them; :class:`~geartrain.errors.StartupError` naming the address that failed."""
    sockets: list[socket.socket] = []
    for host in hosts:
        try:
            for family, kind, proto, _, address in socket.getaddrinfo(
                host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            ):
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # IPv4 has its own socket
                sock.bind(address)
                sock.listen(backlog)
                sock.setblocking(False)
        except (OSError, OverflowError) as error:
            for sock in sockets:
                sock.close()
            raise listen_error(host, port, error) from error
    return sockets


class TlsListener:
    """Accepts on one listening socket; ``admit(sock)`` decides at accept time, ``counted`` follows handshakes."""

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        context: ssl.SSLContext,
        handshake_timeout: float | None,
        admit: Callable[[], bool],
        counted: Callable[[int], None],
    ) -> None:
        self.sockets = [sock]
        self._protocol_factory = protocol_factory
        self._context = context
        self._handshake_timeout = handshake_timeout
        self._admit = admit
        self._counted = counted  # +1 when a handshake starts, -1 when it ends either way
        self._accepting: asyncio.Task[None] | None = None
        self._handshakes: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._accepting = asyncio.get_running_loop().create_task(self._accept())
        # Closed once the accept is no longer waiting on it (closing it under a pending accept confuses the loop).
        self._accepting.add_done_callback(lambda _: self.sockets[0].close())

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        listening = self.sockets[0]
        while True:
            try:
                client, _ = await loop.sock_accept(listening)
            except OSError as error:  # out of file descriptors, say: keep the port, try again shortly
                log.warning("accept failed: %s", error)
                await asyncio.sleep(0.1)
                continue
            if not self._admit():
                client.close()
                continue
            self._counted(1)
            handshake = loop.create_task(self._handshake(client))
            self._handshakes.add(handshake)
            handshake.add_done_callback(self._handshakes.discard)

    async def _handshake(self, client: socket.socket) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                self._protocol_factory, client, ssl=self._context, ssl_handshake_timeout=self._handshake_timeout
            )
        except asyncio.CancelledError:  # the server stops, or drains (no new connections)
            client.close()
            raise
        except Exception as error:  # timed out, refused by either side, or gone before it finished
            log.info("TLS handshake failed: %r", error)
            client.close()
        finally:
            self._counted(-1)

    def close(self) -> None:
        """Accept nothing more (the socket closes as the accept ends); abandon the handshakes under way."""
        if self._accepting is not None:
            self._accepting.cancel()
        for handshake in list(self._handshakes):
            handshake.cancel()

    async def wait_closed(self) -> None:
        tasks = [task for task in (self._accepting, *self._handshakes) if task is not None]
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
