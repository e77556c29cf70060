"""Composition root of the ingest-outlook service: the only place that reads settings and builds clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import urljoin

from aiohttp import web

from mailsync.common.blobs import BlobStore
from mailsync.common.contracts import CONNECTIONS_CHANGED, MAILBOX_CHANGED, MESSAGES_INGESTED
from mailsync.common.service import background_task, connections_gauge, create_runtime, create_service_app
from mailsync.common.token_cipher import TokenCipher, decode_key
from mailsync.ingest_outlook import api
from mailsync.ingest_outlook.adapters.connection_store import ConnectionStore
from mailsync.ingest_outlook.adapters.graph_client import GraphClient, GraphConfig
from mailsync.ingest_outlook.adapters.identity import Identity, IdentityConfig
from mailsync.ingest_outlook.adapters.mailbox_store import MailboxStore
from mailsync.ingest_outlook.consumers import register_consumers
from mailsync.ingest_outlook.domain.connections import REQUIRED_SCOPES
from mailsync.ingest_outlook.domain.messages import AttachmentPolicy
from mailsync.ingest_outlook.domain.subscriptions import RenewalPolicy
from mailsync.ingest_outlook.domain.watchdog import WatchdogPolicy
from mailsync.ingest_outlook.handlers.connections import ConnectionManager, OAuthConfig
from mailsync.ingest_outlook.handlers.credentials import Credentials
from mailsync.ingest_outlook.handlers.maintenance import Maintenance
from mailsync.ingest_outlook.handlers.notifications import NotificationIntake
from mailsync.ingest_outlook.handlers.subscriptions import Subscriptions
from mailsync.ingest_outlook.handlers.sync import MailboxSync
from mailsync.ingest_outlook.handlers.watchdog import Watchdog
from mailsync.ingest_outlook.metrics import IngestMetrics
from mailsync.ingest_outlook.settings import Settings

SUBSCRIPTIONS = web.AppKey("subscriptions", Subscriptions)
"""The app's subscription keeper, so operators' tooling and tests can run a maintenance round on demand."""
CONNECTIONS = web.AppKey("connections", ConnectionStore)
"""The connection store (tests read the sealed token cache through it)."""
SYNC = web.AppKey("sync", MailboxSync)
"""The worker (its Graph client's throttling count is read by tests and the benchmark)."""
WATCHDOG = web.AppKey("watchdog", Watchdog)
"""The watchdog (tests run a round with a moved clock)."""


def create_app(settings: Settings) -> web.Application:
    """Build the service; nothing connects until the application starts."""
    runtime = create_runtime(settings)
    database = runtime.mongo[settings.mongodb_database]
    metrics = IngestMetrics.register(runtime)
    keys = {kid: decode_key(key.get_secret_value()) for kid, key in settings.token_keys.items()}
    cipher = TokenCipher(keys, settings.token_key_id or (next(iter(keys)) if len(keys) == 1 else None))
    identity = Identity(
        IdentityConfig(
            client_id=settings.client_id,
            client_secret=settings.client_secret.get_secret_value(),
            authority=settings.authority,
            scopes=REQUIRED_SCOPES,
            ca_file=settings.ca_file,
            timeout_seconds=settings.graph_timeout_seconds,
        )
    )
    graph = GraphClient(
        GraphConfig(
            base_url=settings.graph_url,
            ca_file=settings.ca_file,
            timeout_seconds=settings.graph_timeout_seconds,
            max_concurrency=settings.graph_max_concurrency,
            requests_per_window=settings.graph_requests_per_window,
            window_seconds=settings.graph_window_seconds,
            burst_fraction=settings.graph_burst_fraction,
        ),
        calls=metrics.provider_calls,
        quota_requests=metrics.quota_requests,
    )
    connections = ConnectionStore(database)
    blobs = BlobStore(database, "outlook_blobs")
    mailboxes = MailboxStore(database)
    runtime.scrape_hooks.append(
        connections_gauge(connections.count_by_status, metrics.shared.connections, settings.service_name)
    )
    credentials = Credentials(
        connections=connections,
        identity=identity,
        cipher=cipher,
        publisher=runtime.publisher,
        metrics=metrics,
    )
    subscriptions = Subscriptions(
        connections=connections,
        mailboxes=mailboxes,
        graph=graph,
        credentials=credentials,
        metrics=metrics,
        policy=RenewalPolicy(
            lifetime=timedelta(minutes=settings.subscription_lifetime_minutes),
            lead=timedelta(seconds=settings.subscription_renew_lead_seconds),
            spread=timedelta(seconds=settings.subscription_renew_spread_seconds),
        ),
        notification_url=urljoin(settings.public_base_url, api.NOTIFICATIONS_PATH),
        lifecycle_url=urljoin(settings.public_base_url, api.LIFECYCLE_PATH),
    )
    manager = ConnectionManager(
        connections=connections,
        identity=identity,
        cipher=cipher,
        credentials=credentials,
        subscriptions=subscriptions,
        publisher=runtime.publisher,
        config=OAuthConfig(
            redirect_uri=settings.oauth_redirect_uri,
            state_ttl=timedelta(seconds=settings.oauth_state_ttl_seconds),
        ),
    )
    watchdog_policy = WatchdogPolicy(
        silence=timedelta(seconds=settings.watchdog_silence_seconds),
        spread=timedelta(seconds=settings.watchdog_spread_seconds),
    )
    sync = MailboxSync(
        connections=connections,
        mailboxes=mailboxes,
        blobs=blobs,
        graph=graph,
        credentials=credentials,
        subscriptions=subscriptions,
        publisher=runtime.publisher,
        metrics=metrics,
        attachment_policy=AttachmentPolicy(
            max_bytes=settings.attachment_max_bytes,
            allowed_extensions=frozenset(t.lower().lstrip(".") for t in settings.attachment_types),
        ),
        page_size=settings.delta_page_size,
        watchdog=watchdog_policy,
    )
    watchdog = Watchdog(
        connections=connections,
        mailboxes=mailboxes,
        publisher=runtime.publisher,
        metrics=metrics,
        policy=watchdog_policy,
        batch=settings.watchdog_batch,
    )
    maintenance_loop = Maintenance(subscriptions=subscriptions, watchdog=watchdog)
    intake = NotificationIntake(
        mailboxes=mailboxes,
        publisher=runtime.publisher,
        metrics=metrics,
        publish_timeout=settings.notification_publish_timeout_seconds,
    )
    register_consumers(runtime.broker, settings, sync)
    for topic in (MAILBOX_CHANGED, MESSAGES_INGESTED, CONNECTIONS_CHANGED):
        runtime.publisher.declare(topic)

    async def storage(_: web.Application) -> AsyncIterator[None]:
        await connections.ensure_indexes()
        await mailboxes.ensure_indexes()
        yield
        await graph.close()

    maintenance = background_task(lambda: maintenance_loop.run(settings.maintenance_interval_seconds))
    app = create_service_app(runtime, setup=[storage, maintenance])
    app[SUBSCRIPTIONS] = subscriptions
    app[CONNECTIONS] = connections
    app[SYNC] = sync
    app[WATCHDOG] = watchdog
    api_token = settings.api_token.get_secret_value() if settings.api_token else None
    api.add_blob_routes(app, blobs, api_token=api_token)
    api.add_routes(
        app,
        manager,
        api_token=api_token,
        internal_token=settings.internal_api_token.get_secret_value()
        if settings.internal_api_token
        else None,
        daily_send_limit=settings.daily_send_limit,
    )
    api.add_webhook_routes(app, intake, metrics)
    return app
