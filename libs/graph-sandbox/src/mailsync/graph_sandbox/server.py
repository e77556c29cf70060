"""Run the sandbox on loopback: HTTPS (local CA) for MSAL, optionally also plain HTTP.

Used by tests (``async with SandboxServer(config) as server``) and by the CLI. The TLS certificate covers
``localhost``, ``127.0.0.1``, ``::1``, the bound host and any ``tls_hostnames`` (the names other machines or
containers reach it by); the CA file to trust is :attr:`SandboxServer.ca_file`.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from aiohttp import web

from mailsync.graph_sandbox import tls
from mailsync.graph_sandbox.admin_routes import CA_FILE_KEY
from mailsync.graph_sandbox.app import create_app
from mailsync.graph_sandbox.config import SandboxConfig
from mailsync.graph_sandbox.responses import SANDBOX_KEY
from mailsync.graph_sandbox.sandbox import Sandbox


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (0 picks a free port), for ``web.SockSite``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class SandboxServer:
    """The sandbox app on ``host``: an HTTPS site (``tls=True``) and/or a plain HTTP site.

    ``port``/``http_port`` 0 picks a free port. ``state_dir`` receives the CA and server certificate (a
    temporary directory by default). ``tls_hostnames`` (DNS names or IP literals) are added to the server
    certificate's subject alternative names.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_enabled: bool = True,
        http_port: int | None = None,
        state_dir: Path | None = None,
        tls_hostnames: Sequence[str] = (),
    ) -> None:
        self.config = config or SandboxConfig()
        self.host = host
        self._port = port
        self._tls_enabled = tls_enabled
        self._http_port = http_port
        self._state_dir = state_dir
        self.tls_hostnames = tuple(dict.fromkeys(("localhost", "127.0.0.1", "::1", host, *tls_hostnames)))
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._runner: web.AppRunner | None = None
        self.app = create_app(self.config)
        self.tls: tls.TlsMaterial | None = None
        self.https_port: int | None = None
        self.plain_port: int | None = None

    @property
    def sandbox(self) -> Sandbox:
        """The running sandbox's state (for in-process tests)."""
        return self.app[SANDBOX_KEY]

    @property
    def base_url(self) -> str:
        """The HTTPS origin when TLS is on, else the HTTP one."""
        if self.https_port is not None:
            return f"https://{self.host}:{self.https_port}"
        return self.http_url

    @property
    def http_url(self) -> str:
        """The plain HTTP origin (only when an HTTP site runs)."""
        if self.plain_port is None:
            raise RuntimeError("no plain HTTP site")
        return f"http://{self.host}:{self.plain_port}"

    @property
    def authority(self) -> str:
        """The MSAL authority URL of the sandbox tenant."""
        return f"{self.base_url}/{self.config.tenant_id}"

    @property
    def ca_file(self) -> str:
        """Path of the CA certificate clients must trust."""
        if self.tls is None:
            raise RuntimeError("TLS is off")
        return str(self.tls.ca_cert)

    async def start(self) -> None:
        """Generate TLS material if needed and start listening."""
        if self._tls_enabled:
            directory = self._state_dir
            if directory is None:
                self._tempdir = tempfile.TemporaryDirectory(prefix="graph-sandbox-")
                directory = Path(self._tempdir.name)
            self.tls = tls.generate(directory, hostnames=self.tls_hostnames)
            self.app[CA_FILE_KEY] = str(self.tls.ca_cert)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        if self.tls is not None:
            sock = bind(self.host, self._port)
            self.https_port = int(sock.getsockname()[1])
            await web.SockSite(self._runner, sock, ssl_context=self.tls.server_context()).start()
        if self._http_port is not None or self.tls is None:
            sock = bind(self.host, self._http_port or 0)
            self.plain_port = int(sock.getsockname()[1])
            await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        """Stop listening and delete generated files."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    async def __aenter__(self) -> SandboxServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
