"""Helpers of the TLS and access-control tests: the test PKI's files, and an in-process server with security
settings on its own loop thread."""

from __future__ import annotations

import asyncio
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from pki import CertFiles

from geartrain.security.tls import TlsServerSettings, client_context
from geartrain.server.config import ServerConfig
from geartrain.server.server import GearmanServer, new_event_loop


@dataclass(frozen=True)
class Pki:
    """Files of the test PKI: the trusted CA, the server's certificate, clients signed by the trusted CA
    (``ops``, ``web1``) and one signed by a CA the server does not trust (``intruder``)."""

    ca_file: Path
    server: CertFiles
    ops: CertFiles
    web1: CertFiles
    intruder: CertFiles

    def client_context(self, who: CertFiles | None = None) -> ssl.SSLContext:
        if who is None:
            return client_context(ca_file=str(self.ca_file))
        return client_context(ca_file=str(self.ca_file), certificate=str(who.certificate), key=str(who.key))


class SecureServer:
    """A :class:`GearmanServer` with security settings, on its own loop thread; ``address`` is 127.0.0.1:PORT."""

    def __init__(self, config: ServerConfig) -> None:
        self.loop = new_event_loop(use_uvloop=False)
        self.server = GearmanServer(config)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="geartrain-secure-server", daemon=True)
        self.thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("server did not start")
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            await self.server.start()
            self._ready.set()
            await self.server.serve()

        try:
            self.loop.run_until_complete(main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def port(self) -> int:
        return self.server.port

    def denials(self) -> dict[str, int]:
        return dict(self.server.access.denials)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.server.stop)
            self.thread.join(10)
        if not self.thread.is_alive() and not self.loop.is_closed():
            self.loop.close()


def tls_settings(pki: Pki, verify_client: str = "optional", handshake_timeout: float = 10.0) -> TlsServerSettings:
    return TlsServerSettings(
        certificate=str(pki.server.certificate),
        key=str(pki.server.key),
        ca_file=str(pki.ca_file),
        verify_client=verify_client,
        handshake_timeout=handshake_timeout,
    )
