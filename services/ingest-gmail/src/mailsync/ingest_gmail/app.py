"""Composition root of the ingest-gmail service: the only place that reads settings and builds clients."""

from __future__ import annotations

from aiohttp import web

from mailsync.common.service import create_runtime, create_service_app
from mailsync.ingest_gmail.settings import Settings


def create_app(settings: Settings) -> web.Application:
    """Build the service; nothing connects until the application starts."""
    runtime = create_runtime(settings)
    return create_service_app(runtime)
