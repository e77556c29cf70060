"""Composition root: :func:`create_app` builds the whole sandbox from a :class:`SandboxConfig`.

Nothing connects at import or build time; the Pub/Sub client is created on the first publish and closed on
application cleanup.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from mailsync.gmail_sandbox.admin_api import AdminApi, admin_errors
from mailsync.gmail_sandbox.batch import BatchEndpoint
from mailsync.gmail_sandbox.config import SandboxConfig
from mailsync.gmail_sandbox.errors import GoogleApiError, rate_limit_exceeded, server_error
from mailsync.gmail_sandbox.faults import FaultKind
from mailsync.gmail_sandbox.gmail_api import GmailApi
from mailsync.gmail_sandbox.notifications import NotificationPublisher
from mailsync.gmail_sandbox.oauth_endpoints import OAuthEndpoints
from mailsync.gmail_sandbox.sandbox import GmailSandbox

SANDBOX_KEY = web.AppKey("gmail_sandbox", GmailSandbox)

_API_PREFIXES = ("/gmail/", "/upload/", "/resumable/", "/batch")
# Large enough for a 150 MB insert sent as base64 JSON; the per-method caps are checked on the decoded size.
_CLIENT_MAX_SIZE = 220 * 1024 * 1024

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _fault_middleware(sandbox: GmailSandbox) -> Middleware:
    @web.middleware
    async def inject_faults(request: web.Request, handler: _Handler) -> web.StreamResponse:
        if not request.path.startswith(_API_PREFIXES):
            return await handler(request)
        rule = sandbox.faults.pick(request.path)
        if rule is None:
            return await handler(request)
        if rule.kind is FaultKind.SLOW:
            await asyncio.sleep(rule.delay_seconds)
            return await handler(request)
        if rule.kind is FaultKind.TIMEOUT:
            await asyncio.sleep(rule.delay_seconds)
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=504)
        error = rate_limit_exceeded() if rule.status == 429 else server_error(rule.status)
        return web.json_response(error.body(), status=error.code, headers=error.headers)

    return inject_faults


@web.middleware
async def google_errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Render :class:`GoogleApiError` as Google's JSON error envelope."""
    try:
        return await handler(request)
    except GoogleApiError as error:
        return web.json_response(error.body(), status=error.code, headers=error.headers)


def create_app(config: SandboxConfig, *, publisher: NotificationPublisher | None = None) -> web.Application:
    """Build the sandbox application.

    ``publisher`` replaces the notification publisher chosen from ``config`` (the Pub/Sub emulator when
    ``pubsub_emulator_host`` is set, in-memory otherwise). The :class:`GmailSandbox` is available as
    ``app[SANDBOX_KEY]``.
    """
    sandbox = GmailSandbox(config, publisher)
    app = web.Application(
        middlewares=[_fault_middleware(sandbox), google_errors, admin_errors],
        client_max_size=_CLIENT_MAX_SIZE,
    )
    app[SANDBOX_KEY] = sandbox
    app.add_routes(GmailApi(sandbox).routes())
    app.add_routes(OAuthEndpoints(sandbox).routes())
    app.add_routes(AdminApi(sandbox).routes())
    batch = BatchEndpoint()
    app.add_routes(batch.routes())

    async def close_sandbox(_app: web.Application) -> None:
        await batch.close()
        await sandbox.close()

    app.on_cleanup.append(close_sandbox)
    return app
