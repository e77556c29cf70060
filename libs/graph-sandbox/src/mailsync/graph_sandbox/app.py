"""The composition root: builds a sandbox from its settings and mounts every endpoint.

Nothing is created at import time. The app owns one outbound :class:`aiohttp.ClientSession` (validation
handshakes and notification POSTs) and one background task delivering notifications; both start with the app
and stop with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from mailsync.graph_sandbox import (
    admin_routes,
    attachment_routes,
    identity_routes,
    mail_routes,
    sending_routes,
    subscription_routes,
)
from mailsync.graph_sandbox.config import SandboxConfig
from mailsync.graph_sandbox.graph_middleware import sandbox_middleware
from mailsync.graph_sandbox.responses import SANDBOX_KEY
from mailsync.graph_sandbox.sandbox import Sandbox
from mailsync.graph_sandbox.subscription_routes import OUTBOUND_SESSION_KEY


def create_app(config: SandboxConfig | None = None) -> web.Application:
    """Build the sandbox application (Graph, identity platform, upload URLs and, if enabled, ``/_admin/``)."""
    settings = config or SandboxConfig()
    app = web.Application(middlewares=[sandbox_middleware], client_max_size=200 * 1024 * 1024)
    sandbox = Sandbox(settings)
    app[SANDBOX_KEY] = sandbox
    mail_routes.add_routes(app)
    sending_routes.add_routes(app)
    attachment_routes.add_routes(app)
    subscription_routes.add_routes(app)
    if settings.admin_enabled:
        admin_routes.add_routes(app)
    identity_routes.add_routes(app)
    app.cleanup_ctx.append(_outbound)
    return app


async def _outbound(app: web.Application) -> AsyncIterator[None]:
    sandbox = app[SANDBOX_KEY]
    session = aiohttp.ClientSession()
    app[OUTBOUND_SESSION_KEY] = session
    sandbox.dispatcher.attach(session)
    task = asyncio.create_task(sandbox.dispatcher.run(sandbox.config.dispatch_poll_interval_s))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await session.close()
