"""Composition root of the router service: the only place that reads settings and builds clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from mailsync.common.contracts import CONVERSATION_MESSAGES_RECORDED, MESSAGES_NOT_SYNCED
from mailsync.common.service import create_runtime, create_service_app
from mailsync.router import api
from mailsync.router.adapters.connection_store import ConnectionStore
from mailsync.router.adapters.conversation_store import ConversationStore
from mailsync.router.adapters.directory_store import DirectoryStore
from mailsync.router.adapters.read_model_freshness import ReadModelFreshness
from mailsync.router.adapters.thread_store import ThreadStore
from mailsync.router.consumers import READ_MODEL_FEEDS, register_consumers
from mailsync.router.domain.facts import NO_POLICY
from mailsync.router.handlers import Router
from mailsync.router.settings import Settings


def create_app(settings: Settings) -> web.Application:
    """Build the service; nothing connects until the application starts."""
    runtime = create_runtime(settings)
    database = runtime.mongo[settings.mongodb_database]
    freshness = ReadModelFreshness(
        settings.kafka_bootstrap_servers,
        [(settings.consumer_group(purpose), settings.topic(topic)) for purpose, topic in READ_MODEL_FEEDS],
    )
    router = Router(
        directory=DirectoryStore(database),
        connections=ConnectionStore(database),
        threads=ThreadStore(database),
        conversations=ConversationStore(database),
        publisher=runtime.publisher,
        attachment_policies={"outlook": settings.outlook_policy(), "gmail": NO_POLICY},
        freshness=freshness,
    )
    register_consumers(runtime.broker, settings, router, message_batch=settings.message_batch)
    runtime.publisher.declare(CONVERSATION_MESSAGES_RECORDED)
    runtime.publisher.declare(MESSAGES_NOT_SYNCED)

    async def indexes(_: web.Application) -> AsyncIterator[None]:
        await router.ensure_indexes()
        yield

    async def freshness_context(_: web.Application) -> AsyncIterator[None]:
        await freshness.start()
        yield
        await freshness.stop()

    app = create_service_app(runtime, setup=[indexes, freshness_context])
    token = settings.api_token.get_secret_value() if settings.api_token else None
    api.add_routes(app, router.conversations, token)
    return app
