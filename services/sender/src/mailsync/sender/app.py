"""Composition root of the sender service: the only place that reads settings and builds clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from mailsync.common.contracts import SEND_RESULTS, Address, Provider
from mailsync.common.service import create_runtime, create_service_app
from mailsync.sender import api
from mailsync.sender.adapters.access_tokens import IngestAccessTokens
from mailsync.sender.adapters.blob_store import GridFsBlobStore
from mailsync.sender.adapters.connection_store import ConnectionStore
from mailsync.sender.adapters.gmail import GmailClient
from mailsync.sender.adapters.graph import GraphClient
from mailsync.sender.adapters.http_session import HttpSession
from mailsync.sender.adapters.quota_ledger import QuotaLedger
from mailsync.sender.adapters.send_records import SendRecordStore
from mailsync.sender.adapters.smtp import SmtpRelay
from mailsync.sender.consumers import register_consumers
from mailsync.sender.domain import SizePolicy
from mailsync.sender.handlers.attempts import Attempts
from mailsync.sender.handlers.commands import Sender
from mailsync.sender.handlers.gmail import GmailRoute
from mailsync.sender.handlers.mailbox import MailboxAccess
from mailsync.sender.handlers.outlook import OutlookRoute
from mailsync.sender.handlers.retries import Retrier, RetrySchedule
from mailsync.sender.handlers.subaccount import SubaccountRoute
from mailsync.sender.metrics import SenderMetrics
from mailsync.sender.settings import Settings


def create_app(settings: Settings) -> web.Application:
    """Build the service; nothing connects until the application starts."""
    runtime = create_runtime(settings)
    database = runtime.mongo[settings.mongodb_database]
    http = HttpSession(settings.ca_file)  # opened by the `session` context below, on the running loop
    base_urls: dict[Provider, str] = {
        "gmail": settings.ingest_gmail_url,
        "outlook": settings.ingest_outlook_url,
    }
    records = SendRecordStore(database)
    blobs = GridFsBlobStore(database, settings.blob_bucket)
    attempts = Attempts(
        records=records,
        ledger=QuotaLedger(database),
        blobs=blobs,
        retrier=Retrier(
            RetrySchedule(
                max_attempts=settings.send_max_attempts,
                initial_seconds=settings.send_retry_initial_seconds,
                max_seconds=settings.send_retry_max_seconds,
                settle_seconds=settings.send_outcome_settle_seconds,
            )
        ),
        attempt_lease=timedelta(seconds=settings.send_attempt_lease_seconds),
    )
    metrics = SenderMetrics.register(runtime.registry, runtime.metrics)
    subaccount = SubaccountRoute(
        attempts,
        SmtpRelay(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            use_tls=settings.smtp_use_tls,
            start_tls=settings.smtp_start_tls,
            timeout_seconds=settings.provider_timeout_seconds,
        ),
        sender=Address(email=settings.smtp_from_address, name=settings.smtp_from_name),
        message_id_domain=settings.message_id_domain,
        policy=SizePolicy("the subaccount provider", max_message_bytes=settings.smtp_max_message_bytes),
    )
    tokens = IngestAccessTokens(
        http, base_urls=base_urls, internal_token=settings.internal_api_token.get_secret_value()
    )
    mailbox = MailboxAccess(attempts, tokens, subaccount, metrics)
    gmail = GmailClient(
        http,
        api_root=settings.gmail_api_url,
        timeout_seconds=settings.provider_timeout_seconds,
        simple_upload_max_bytes=settings.gmail_simple_upload_max_bytes,
    )
    graph = GraphClient(
        http, api_root=settings.graph_api_url, timeout_seconds=settings.provider_timeout_seconds
    )
    sender = Sender(
        records=records,
        connections=ConnectionStore(database),
        attempts=attempts,
        gmail=GmailRoute(mailbox, gmail, settings.message_id_domain),
        outlook=OutlookRoute(mailbox, graph, settings.outlook_policy()),
        subaccount=subaccount,
        publisher=runtime.publisher,
        metrics=metrics,
        concurrency=settings.send_concurrency,
    )
    register_consumers(runtime.broker, settings, sender)
    runtime.publisher.declare(SEND_RESULTS)

    async def session(_: web.Application) -> AsyncIterator[None]:
        http.open()
        yield
        await http.close()

    async def indexes(_: web.Application) -> AsyncIterator[None]:
        await sender.ensure_indexes()
        yield

    app = create_service_app(runtime, setup=[session, indexes])
    api.add_routes(
        app,
        blobs,
        api_token=settings.api_token.get_secret_value() if settings.api_token else None,
        max_upload_bytes=settings.upload_max_bytes(),
    )
    return app
