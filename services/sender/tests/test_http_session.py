"""The sender's HTTP session trusts an extra CA (`MAILSYNC_CA_FILE`) besides the system's: Graph behind a
local CA (the Graph sandbox in compose) is reachable over verified TLS, and nothing else changes."""

from __future__ import annotations

import aiohttp
import pytest

from mailsync.graph_sandbox import SandboxConfig, SandboxServer
from mailsync.sender.adapters.http_session import HttpSession


async def test_the_session_trusts_the_configured_ca_and_only_then() -> None:
    async with SandboxServer(SandboxConfig(), tls_enabled=True, port=0) as server:
        url = f"{server.base_url}/_admin/info"
        trusting = HttpSession(server.ca_file)
        trusting.open()
        default = HttpSession()
        default.open()
        try:
            async with trusting.session.get(url) as response:
                assert response.status == 200
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with default.session.get(url):
                    pass
        finally:
            await trusting.close()
            await default.close()
