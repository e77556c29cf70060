"""Helpers for tests that talk to the sandbox's Graph API directly (raw HTTP, no SDK)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web


class GraphTestClient:
    """Calls Graph with a bearer token: JSON in, ``(status, headers, JSON or None)`` out; never raises."""

    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, ssl_context: ssl.SSLContext | bool
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.ssl = ssl_context
        self.token: str | None = None

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        *,
        auth: bool = True,
        data: bytes | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        """One request; ``path`` is relative to the origin or an absolute URL (e.g. a nextLink)."""
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        all_headers = dict(headers or {})
        if auth and self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        async with self.session.request(
            method, url, json=body if data is None else None, data=data, headers=all_headers, ssl=self.ssl
        ) as response:
            raw = await response.read()
            payload = None
            if raw and response.content_type == "application/json":
                payload = await response.json()
            return response.status, dict(response.headers), payload


class WebhookReceiver:
    """A real HTTP endpoint on loopback that plays a subscriber's notification and lifecycle URLs.

    ``handshake`` chooses how it answers the validation request: ``echo`` (correct: 200 text/plain with the
    decoded token), ``encoded`` (echoes the token still URL-encoded), ``status`` (answers
    ``handshake_status``), ``json`` (right body, wrong Content-Type) or ``slow`` (waits ``delay_s`` first).
    Change notifications are answered with the next status from ``statuses`` (then 202; lifecycle
    notifications always get 202), after ``delay_s`` when
    ``slow_notifications`` is set. Every notification body is kept in :attr:`received`.
    """

    def __init__(self) -> None:
        self.handshake = "echo"
        self.handshake_status = 404
        self.delay_s = 0.0
        self.slow_notifications = False
        self.statuses: list[int] = []
        self.received: list[dict[str, Any]] = []
        self.validations: list[str] = []
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._arrived = asyncio.Event()

    @property
    def url(self) -> str:
        """The notification URL (``/notify?tenant=x`` keeps a query string, which Graph must preserve)."""
        return f"http://127.0.0.1:{self.port}/notify?tenant=contoso"

    @property
    def lifecycle_url(self) -> str:
        """The lifecycle notification URL."""
        return f"http://127.0.0.1:{self.port}/lifecycle"

    async def _handle(self, request: web.Request) -> web.Response:
        token = request.query.get("validationToken")
        if token is not None:
            self.validations.append(token)
            if request.path == "/notify" and request.query.get("tenant") != "contoso":
                return web.Response(status=400)
            if self.handshake == "slow":
                await asyncio.sleep(self.delay_s)
            if self.handshake == "status":
                return web.Response(status=self.handshake_status)
            if self.handshake == "encoded":
                return web.Response(text=quote(token), content_type="text/plain")
            if self.handshake == "json":
                return web.json_response(token)
            return web.Response(text=token, content_type="text/plain")
        body = await request.json()
        if self.slow_notifications:
            await asyncio.sleep(self.delay_s)
        status = self.statuses.pop(0) if self.statuses and request.path == "/notify" else 202
        if 200 <= status < 300:
            self.received.append({"path": request.path, **body})
            self._arrived.set()
        return web.Response(status=status)

    async def wait_for(self, count: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        """Wait until at least ``count`` notifications were accepted; returns them all."""
        async with asyncio.timeout(timeout_s):
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.received

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_post("/notify", self._handle)
        app.router.add_post("/lifecycle", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
