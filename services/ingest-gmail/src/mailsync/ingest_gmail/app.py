"""Composition root of the ingest-gmail service: the only place that reads settings and builds clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from mailsync.common.blobs import BlobStore
from mailsync.common.contracts import CONNECTIONS_CHANGED, MAILBOX_CHANGED, MESSAGES_INGESTED
from mailsync.common.service import (
    SetupContext,
    background_task,
    connections_gauge,
    create_runtime,
    create_service_app,
)
from mailsync.common.telemetry import root_span
from mailsync.common.token_cipher import TokenCipher, decode_key
from mailsync.ingest_gmail import api
from mailsync.ingest_gmail.adapters.connection_store import ConnectionStore
from mailsync.ingest_gmail.adapters.gmail_client import GmailClient, OAuthClientConfig
from mailsync.ingest_gmail.adapters.mailbox_store import MailboxStore
from mailsync.ingest_gmail.adapters.pubsub_pull import StreamingPull
from mailsync.ingest_gmail.adapters.push_verifier import PushVerifier
from mailsync.ingest_gmail.consumers import register_consumers
from mailsync.ingest_gmail.domain.notifications import MalformedNotificationError, decode_data
from mailsync.ingest_gmail.handlers.connections import ConnectionManager, OAuthConfig
from mailsync.ingest_gmail.handlers.credentials import Credentials, utc_now_ms
from mailsync.ingest_gmail.handlers.notifications import Maintenance, NotificationIntake
from mailsync.ingest_gmail.handlers.pacing import QuotaPacer
from mailsync.ingest_gmail.handlers.sync import MailboxSync
from mailsync.ingest_gmail.metrics import IngestMetrics
from mailsync.ingest_gmail.settings import Settings


def create_app(settings: Settings) -> web.Application:
    """Build the service; nothing connects until the application starts."""
    runtime = create_runtime(settings)
    database = runtime.mongo[settings.mongodb_database]
    metrics = IngestMetrics.register(runtime)
    keys = {kid: decode_key(key.get_secret_value()) for kid, key in settings.token_keys.items()}
    current_key = settings.token_key_id or (next(iter(keys)) if len(keys) == 1 else None)
    cipher = TokenCipher(keys, current_key)
    gmail = GmailClient(
        OAuthClientConfig(
            client_id=settings.google_client_id,
            client_secret=settings.google_client_secret.get_secret_value(),
            token_url=settings.google_token_url,
            api_url=settings.gmail_api_url,
            timeout_seconds=settings.gmail_timeout_seconds,
        ),
        calls=metrics.provider_calls,
        quota_units=metrics.quota_units,
    )
    connections = ConnectionStore(database)
    blobs = BlobStore(database, "gmail_blobs")
    mailboxes = MailboxStore(database)

    runtime.scrape_hooks.append(
        connections_gauge(connections.count_by_status, metrics.shared.connections, settings.service_name)
    )
    now = utc_now_ms
    credentials = Credentials(
        connections=connections,
        mailboxes=mailboxes,
        gmail=gmail,
        cipher=cipher,
        publisher=runtime.publisher,
        metrics=metrics,
        refresh_margin=timedelta(seconds=settings.token_refresh_margin_seconds),
        now=now,
    )
    manager = ConnectionManager(
        connections=connections,
        mailboxes=mailboxes,
        credentials=credentials,
        gmail=gmail,
        cipher=cipher,
        publisher=runtime.publisher,
        metrics=metrics,
        config=OAuthConfig(
            client_id=settings.google_client_id,
            auth_url=settings.google_auth_url,
            redirect_uri=settings.oauth_redirect_uri,
            state_ttl=timedelta(seconds=settings.oauth_state_ttl_seconds),
            default_daily_send_limit=settings.default_daily_send_limit,
            watch_topic=settings.pubsub_watch_topic,
            watch_interval=timedelta(seconds=settings.watch_renew_interval_seconds),
            watch_spread=timedelta(seconds=settings.watch_renew_spread_seconds),
        ),
        now=now,
    )
    sync = MailboxSync(
        connections=connections,
        mailboxes=mailboxes,
        blobs=blobs,
        gmail=gmail,
        credentials=credentials,
        publisher=runtime.publisher,
        metrics=metrics,
        recovery_overlap=timedelta(seconds=settings.recovery_overlap_seconds),
        recovery_max_messages=settings.recovery_max_messages,
        pacer=QuotaPacer(settings.gmail_user_quota_units_per_minute, settings.gmail_quota_fraction),
        prefetch=settings.gmail_prefetch,
        now=now,
    )
    intake = NotificationIntake(
        connections=connections, mailboxes=mailboxes, publisher=runtime.publisher, metrics=metrics, now=now
    )
    maintenance = Maintenance(
        connections=connections,
        mailboxes=mailboxes,
        manager=manager,
        credentials=credentials,
        intake=intake,
        metrics=metrics,
        stale_after=timedelta(seconds=settings.watchdog_stale_after_seconds),
        now=now,
    )
    register_consumers(runtime.broker, settings, sync, consumers=settings.sync_consumers)
    for topic in (MAILBOX_CHANGED, MESSAGES_INGESTED, CONNECTIONS_CHANGED):
        runtime.publisher.declare(topic)

    async def storage(_: web.Application) -> AsyncIterator[None]:
        await connections.ensure_indexes()
        await mailboxes.ensure_indexes()
        yield
        await gmail.close()

    background = background_task(lambda: maintenance.run(settings.maintenance_interval_seconds))
    setup: list[SetupContext] = [storage, background]

    if settings.notification_mode == "pull" and settings.pubsub_subscription:
        setup.append(_pulling(settings, settings.pubsub_subscription, intake, metrics))

    app = create_service_app(runtime, setup=setup)
    app[MAINTENANCE] = maintenance
    api_token = settings.api_token.get_secret_value() if settings.api_token else None
    api.add_blob_routes(app, blobs, api_token=api_token)
    api.add_routes(
        app,
        manager,
        api_token=api_token,
        internal_token=settings.internal_api_token.get_secret_value()
        if settings.internal_api_token
        else None,
    )
    if settings.notification_mode == "push" and settings.pubsub_push_audience:
        verifier = PushVerifier(
            audience=settings.pubsub_push_audience,
            certs_url=settings.pubsub_certs_url,
            service_account=settings.pubsub_push_service_account,
        )
        api.add_push_route(app, verifier, intake, metrics)
    return app


def _pulling(
    settings: Settings, subscription: str, intake: NotificationIntake, metrics: IngestMetrics
) -> SetupContext:
    """Pull mode: each pulled notification starts its trace and becomes a hint."""

    async def on_pulled(data: bytes) -> None:
        with root_span("gmail notification pull", subscription=subscription):
            try:
                notification = decode_data(data)
            except MalformedNotificationError as error:
                metrics.notifications_dropped.labels(error.reason).inc()
                return  # acked: redelivery cannot fix it
            await intake.accept(notification, "pull")

    pull = StreamingPull(subscription, on_pulled, emulator_host=settings.pubsub_emulator_host)

    async def pulling(_: web.Application) -> AsyncIterator[None]:
        await pull.start()
        yield
        await pull.stop()

    return pulling


MAINTENANCE = web.AppKey("maintenance", Maintenance)
"""The app's maintenance loop, so operators' tooling and tests can run one round on demand."""
