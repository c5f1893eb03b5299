"""TCP proxies on 127.0.0.1: one a test can cut (drop every connection, refuse new ones) and restore, and one that
also splits, delays and cuts at random (fault injection)."""

from __future__ import annotations

import contextlib
import random
import selectors
import socket
import threading
import time


class CuttableProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target``; :meth:`cut` simulates the database going away."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port = int(self._listener.getsockname()[1])
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._pairs: dict[socket.socket, socket.socket] = {}
        self._lock = threading.Lock()
        self._up = True
        self._stopping = False
        self._stalled = False
        self._thread = threading.Thread(target=self._run, name="cuttable-proxy", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        """Close every proxied connection (the peer sees a reset) and refuse new ones until :meth:`restore`."""
        with self._lock:
            self._up = False
            for sock in list(self._pairs):
                self._drop(sock)

    def restore(self) -> None:
        with self._lock:
            self._up = True

    def stall(self, stalled: bool = True) -> None:
        """Stop forwarding (connections stay open, bytes wait in the kernel's buffers): a database that hangs."""
        self._stalled = stalled

    def close(self) -> None:
        self._stopping = True
        self._thread.join(5)
        with self._lock:
            for sock in list(self._pairs):
                self._drop(sock)
        self._selector.close()
        self._listener.close()

    def _run(self) -> None:
        while not self._stopping:
            if self._stalled:
                time.sleep(0.02)
                continue
            for key, _ in self._selector.select(timeout=0.05):
                with self._lock:
                    if key.data is None:
                        self._accept()
                    else:
                        self._pump(key.fileobj)  # type: ignore[arg-type]

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        if not self._up:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # reset, like a dead host
            client.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        for sock in (client, upstream):
            sock.setblocking(False)
        self._pairs[client], self._pairs[upstream] = upstream, client
        self._selector.register(client, selectors.EVENT_READ, "pipe")
        self._selector.register(upstream, selectors.EVENT_READ, "pipe")

    def _pump(self, sock: socket.socket) -> None:
        other = self._pairs.get(sock)
        if other is None:
            return
        try:
            data = sock.recv(65536)
            if data:
                other.setblocking(True)
                other.sendall(data)
                other.setblocking(False)
                return
        except OSError:
            pass
        self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        other = self._pairs.pop(sock, None)
        for each in (sock, other):
            if each is None:
                continue
            self._pairs.pop(each, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(each)
            with contextlib.suppress(OSError):
                each.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            each.close()


class FaultyProxy(CuttableProxy):
    """A :class:`CuttableProxy` that also misbehaves on its own, like a bad network between peers and server.

    Every chunk it forwards is split into random pieces (so packets arrive in fragments) with small random delays
    between them, and with probability ``cut_probability`` per chunk the connection is cut instead (both ends see
    a reset). ``seed`` makes the run repeatable; ``cuts`` and ``chunks`` count what happened.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        seed: int,
        cut_probability: float = 0.01,
        max_delay: float = 0.002,
    ) -> None:
        self._rng = random.Random(seed)
        self.cut_probability = cut_probability
        self.max_delay = max_delay
        self.cuts = 0
        self.chunks = 0
        super().__init__(target_host, target_port)  # starts the pump thread: the settings must exist first

    def _accept(self) -> None:
        super()._accept()
        for sock in self._pairs:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # pieces leave as separate segments

    def _pump(self, sock: socket.socket) -> None:
        other = self._pairs.get(sock)
        if other is None:
            return
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(sock)
            return
        self.chunks += 1
        rng = self._rng
        if rng.random() < self.cut_probability:
            self.cuts += 1
            self._drop(sock)
            return
        try:
            other.setblocking(True)
            position = 0
            while position < len(data):
                size = rng.randint(1, len(data) - position)
                other.sendall(data[position : position + size])
                position += size
                if rng.random() < 0.3:
                    time.sleep(rng.uniform(0, self.max_delay))
            other.setblocking(False)
        except OSError:
            self._drop(sock)
