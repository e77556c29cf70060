"""One Gmail notification followed to the stored message: by its trace, by metrics and by its log lines.

The Gmail sandbox pushes a signed Pub/Sub notification to ingest-gmail, which publishes a hint, syncs the
mailbox and publishes the message; the router files and stores it. Both services run in process on the real
broker and database with an in-memory span exporter installed as the tracer provider (it only observes).
The router consumes ingested messages in batches, so its span starts a trace of its own that links to each
record's trace (OpenTelemetry's convention for batch processing); the test follows parents and links.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families
from pymongo import AsyncMongoClient

from mailsync.common.contracts import (
    CONVERSATION_MESSAGES_RECORDED,
    CRM_DIRECTORY,
    MAILBOX_CHANGED,
    MESSAGES_INGESTED,
    ContactUpserted,
    SubaccountUserUpserted,
    contract_for,
)
from mailsync.common.logs import JsonFormatter
from mailsync.common.topics_admin import contract_topic_names, ensure_topics
from mailsync.devstack.ports import free_port
from mailsync.gmail_sandbox import DEFAULT_CLIENT, SANDBOX_KEY, GmailSandboxAdmin, MailboxSpec, SandboxConfig
from mailsync.gmail_sandbox import SystemClock as SandboxClock
from mailsync.gmail_sandbox import create_app as create_sandbox_app
from mailsync.gmail_sandbox.sandbox import GmailSandbox
from mailsync.ingest_gmail.app import create_app as create_ingest_app
from mailsync.ingest_gmail.settings import Settings as IngestSettings
from mailsync.router.app import create_app as create_router_app
from mailsync.router.settings import Settings as RouterSettings

pytestmark = [pytest.mark.kafka, pytest.mark.mongodb]

ALICE = "alice@example.com"
CONTACT = "dora@contact.example"
WATCH_TOPIC = "projects/mailsync-local/topics/gmail-watch"
PUSH_AUDIENCE = "https://ingest-gmail.test/v1/pubsub/push"
INTERNAL_TOKEN = "internal-test-token"
TOKEN_KEY = base64.b64encode(b"k" * 32).decode()


@dataclass
class Pipeline:
    sandbox: GmailSandbox
    admin: GmailSandboxAdmin
    http: aiohttp.ClientSession
    ingest_url: str
    router_url: str
    ingest: IngestSettings
    router: RouterSettings
    mongo: AsyncMongoClient[dict[str, Any]]

    async def connect(self, subaccount_id: str, user_id: str, address: str) -> dict[str, Any]:
        """The OAuth flow through the sandbox's consent page (C2), as the user's browser runs it."""
        async with self.http.post(
            f"{self.ingest_url}/v1/connections/authorize",
            json={"subaccount_id": subaccount_id, "user_id": user_id, "login_hint": address},
        ) as response:
            assert response.status == 200, await response.text()
            consent_url = (await response.json())["authorization_url"]
        async with self.http.get(consent_url, allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            callback = response.headers["Location"]
        async with self.http.get(callback) as response:
            assert response.status == 201, await response.text()
            return dict(await response.json())

    async def scrape(self, url: str) -> list[tuple[str, dict[str, str], float]]:
        async with self.http.get(f"{url}/metrics") as response:
            text = await response.text()
        return [
            (sample.name, dict(sample.labels), float(sample.value))
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def secrets(self) -> set[str]:
        """Every credential the flow handled: refresh and access tokens, the client secret, the API token."""
        oauth = self.sandbox.oauth
        tokens = {g.refresh_token for g in oauth.grants.values() if g.refresh_token}
        return tokens | set(oauth.access_tokens) | {DEFAULT_CLIENT.client_secret, INTERNAL_TOKEN}


class JsonLines(logging.Handler):
    """Formats each record when it is emitted, as the service's log handler does."""

    def __init__(self, service: str) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter(service))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span ended during the test, observed through the global SDK tracer provider."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


@pytest.fixture
def logs() -> Iterator[JsonLines]:
    """The project's log lines, at DEBUG, formatted as JSON when they are written."""
    handler = JsonLines("test")
    logger = logging.getLogger("mailsync")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
async def pipeline(
    kafka_bootstrap_servers: str, mongodb_uri: str, unique_name: Callable[[str], str]
) -> AsyncIterator[Pipeline]:
    sandbox_app = create_sandbox_app(
        SandboxConfig(clock=SandboxClock(), mailboxes=(MailboxSpec(ALICE, display_name="Alice"),))
    )
    servers = [TestServer(sandbox_app, host="127.0.0.1", port=0)]
    await servers[0].start_server()
    sandbox_url = str(servers[0].make_url("")).rstrip("/")
    sandbox = sandbox_app[SANDBOX_KEY]
    prefix = unique_name("t") + "."
    await ensure_topics(kafka_bootstrap_servers, contract_topic_names(prefix), partitions=3, replication=1)

    port = free_port()
    ingest_url = f"http://127.0.0.1:{port}"
    ingest = IngestSettings(
        kafka_bootstrap_servers=kafka_bootstrap_servers,
        kafka_topic_prefix=prefix,
        mongodb_uri=mongodb_uri,  # type: ignore[arg-type]  # pydantic wraps it in SecretStr
        mongodb_database=unique_name("gmail"),
        http_port=port,
        google_client_id=DEFAULT_CLIENT.client_id,
        google_client_secret=DEFAULT_CLIENT.client_secret,  # type: ignore[arg-type]
        google_auth_url=f"{sandbox_url}/o/oauth2/v2/auth",
        google_token_url=f"{sandbox_url}/token",
        gmail_api_url=sandbox_url,
        oauth_redirect_uri=f"{ingest_url}/v1/oauth/callback",
        token_keys={"k1": TOKEN_KEY},  # type: ignore[dict-item]
        internal_api_token=INTERNAL_TOKEN,  # type: ignore[arg-type]
        pubsub_watch_topic=WATCH_TOPIC,
        pubsub_push_audience=PUSH_AUDIENCE,
        pubsub_push_service_account=sandbox.config.push_service_account,
        pubsub_certs_url=f"{sandbox_url}/oauth2/v1/certs",
        maintenance_interval_seconds=3600.0,
        sync_consumers=1,
    )
    router = RouterSettings(
        kafka_bootstrap_servers=kafka_bootstrap_servers,
        kafka_topic_prefix=prefix,
        mongodb_uri=mongodb_uri,  # type: ignore[arg-type]
        mongodb_database=unique_name("router"),
    )
    servers.append(TestServer(create_ingest_app(ingest), host="127.0.0.1", port=port))
    servers.append(TestServer(create_router_app(router), host="127.0.0.1", port=0))
    for server in servers[1:]:
        await server.start_server()
    admin = GmailSandboxAdmin(sandbox_url)
    await admin.add_push_subscription(
        WATCH_TOPIC,
        f"{ingest_url}/v1/pubsub/push",
        audience=PUSH_AUDIENCE,
        min_backoff_seconds=0.2,
        max_backoff_seconds=1.0,
    )
    http = aiohttp.ClientSession()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri, tz_aware=True)
    yield Pipeline(
        sandbox=sandbox,
        admin=admin,
        http=http,
        ingest_url=ingest_url,
        router_url=str(servers[2].make_url("")).rstrip("/"),
        ingest=ingest,
        router=router,
        mongo=mongo,
    )
    await http.close()
    await admin.close()
    await mongo.close()
    for server in reversed(servers):
        await server.close()


async def seed_directory(settings: RouterSettings) -> None:
    """The CRM's directory: Alice is user usr_1 of sub-1, and Dora is her contact (G3)."""
    broker = KafkaBroker(settings.kafka_bootstrap_servers)
    await broker.connect()
    now = datetime.now(UTC)
    contract = contract_for(CRM_DIRECTORY)
    try:
        for event in (
            SubaccountUserUpserted(
                occurred_at=now, subaccount_id="sub-1", user_id="usr_1", email_addresses=(ALICE,), revision=1
            ),
            ContactUpserted(
                occurred_at=now,
                subaccount_id="sub-1",
                contact_id="con_dora",
                email_addresses=(CONTACT,),
                assigned_user_id="usr_1",
                created_at=now,
                revision=1,
            ),
        ):
            await broker.publish(
                contract.serialize(event),
                topic=settings.topic(CRM_DIRECTORY),
                key=contract.key_of(event).encode(),
            )
    finally:
        await broker.stop()


async def eventually(condition: Callable[[], Any], within: float = 60.0) -> None:
    async with asyncio.timeout(within):
        while not await condition():  # noqa: ASYNC110 - polls state the services change
            await asyncio.sleep(0.1)


async def recorded_traceparent(settings: RouterSettings, provider_message_id: str) -> str:
    """The `traceparent` header of the router's `ConversationMessageRecorded` record for the message."""
    consumer = AIOKafkaConsumer(
        settings.topic(CONVERSATION_MESSAGES_RECORDED),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            async for record in consumer:
                event = contract_for(CONVERSATION_MESSAGES_RECORDED).parse(record.value or b"")
                if event.provider_message_id == provider_message_id:
                    return bytes(dict(record.headers)["traceparent"]).decode()
    finally:
        await consumer.stop()
    raise AssertionError("no recorded event")


def value(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(v for n, ls, v in samples if n == name and labels.items() <= ls.items())


class Traces:
    """The exported spans, with the ways to follow one trace into another: parents and links."""

    def __init__(self, spans: tuple[ReadableSpan, ...]) -> None:
        self.spans = spans
        self.by_id = {s.context.span_id: s for s in spans}

    def in_trace(self, trace_id: int) -> list[ReadableSpan]:
        return [s for s in self.spans if s.context.trace_id == trace_id]

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]

    def follows(self, span: ReadableSpan, trace_id: int) -> bool:
        """`span` is in the trace, or it or an ancestor links into it."""
        current: ReadableSpan | None = span
        while current is not None:
            if current.context.trace_id == trace_id or any(
                link.context.trace_id == trace_id for link in current.links
            ):
                return True
            current = self.by_id.get(current.parent.span_id) if current.parent else None
        return False

    def is_one_tree(self, trace_id: int) -> bool:
        """Every span of the trace but its root has its parent in the trace."""
        members = self.in_trace(trace_id)
        ids = {s.context.span_id for s in members}
        roots = [s for s in members if s.parent is None or s.parent.span_id not in ids]
        return len(roots) == 1 and roots[0].parent is None


async def test_one_gmail_notification_is_followed_to_the_stored_message_g3(
    pipeline: Pipeline, spans: InMemorySpanExporter, logs: JsonLines
) -> None:
    await seed_directory(pipeline.router)
    connection = await pipeline.connect("sub-1", "usr_1", ALICE)
    stored = pipeline.mongo[pipeline.router.mongodb_database]["conversation_messages"]
    spans.clear()

    delivered = await pipeline.admin.deliver_inbound(ALICE, sender=CONTACT, subject="Quote", text="Hello")

    async def filed() -> bool:
        return await stored.find_one({"provider_message_id": delivered["id"]}) is not None

    await eventually(filed)
    document = await stored.find_one({"provider_message_id": delivered["id"]})
    assert document is not None
    assert document["contact_id"] == "con_dora"
    traceparent = await recorded_traceparent(pipeline.router, delivered["id"])
    recorded_trace = int(traceparent.split("-")[1], 16)
    ingested = pipeline.router.topic(MESSAGES_INGESTED)

    async def router_span_ended() -> bool:
        return any(s.name == f"{ingested} process" for s in spans.get_finished_spans())

    await eventually(router_span_ended, within=10)
    traces = Traces(spans.get_finished_spans())

    # The trace starts at the push request (Gmail may notify more than once per message; the later ones
    # are coalesced): the one whose trace published the message ...
    pushes = [s for s in traces.named("POST /v1/pubsub/push") if s.kind == SpanKind.SERVER]
    assert all(s.attributes and s.attributes["http.response.status_code"] == 204 for s in pushes)
    (push,) = [
        s for s in pushes if f"{ingested} create" in {m.name for m in traces.in_trace(s.context.trace_id)}
    ]
    notification = push.context.trace_id
    # ... continues through the hint into the worker, and into the ingested message's record ...
    in_notification = {s.name for s in traces.in_trace(notification)}
    hints = pipeline.ingest.topic(MAILBOX_CHANGED)
    assert {
        f"{hints} create",
        f"{hints} publish",
        f"{hints} process",
        f"{ingested} create",
    } <= in_notification
    assert traces.is_one_tree(notification)
    # ... into the router's batch, and to the record announcing the stored message.
    (routed,) = traces.named(f"{ingested} process")
    assert traces.follows(routed, notification)
    assert recorded_trace in {notification, routed.context.trace_id}
    recorded_publish = [
        s
        for s in traces.named(f"{pipeline.router.topic(CONVERSATION_MESSAGES_RECORDED)} create")
        if s.context.trace_id == recorded_trace
    ]
    assert recorded_publish
    assert all(traces.follows(s, notification) for s in recorded_publish)

    await assert_metrics_along_the_path(pipeline, pushes=len(pushes))
    assert_log_line_of_the_message(logs, pipeline, delivered["id"], connection["connection_id"], notification)


async def assert_metrics_along_the_path(pipeline: Pipeline, *, pushes: int) -> None:
    """The notification and its message in each service's metrics, under the names every service shares."""
    hints = pipeline.ingest.topic(MAILBOX_CHANGED)
    ingested = pipeline.ingest.topic(MESSAGES_INGESTED)
    ingest = await pipeline.scrape(pipeline.ingest_url)
    router = await pipeline.scrape(pipeline.router_url)
    assert value(ingest, "mailsync_webhook_accepted_total", endpoint="pubsub_push") == pushes
    assert value(ingest, "mailsync_hints_published_total", source="push") == pushes
    assert value(ingest, "mailsync_received_messages_total", handler=hints) >= 1
    assert value(ingest, "mailsync_messages_ingested_total", direction="inbound") == 1
    assert value(ingest, "mailsync_published_messages_total", destination=ingested, status="success") == 1
    assert value(ingest, "mailsync_provider_calls_total", operation="messages.get", outcome="ok") >= 1
    assert value(ingest, "mailsync_quota_used_total", provider="gmail", quota="api_units") >= 5
    assert value(router, "mailsync_received_messages_total", service="router", handler=ingested) >= 1
    assert (
        value(
            router,
            "mailsync_published_messages_total",
            destination=pipeline.router.topic(CONVERSATION_MESSAGES_RECORDED),
        )
        >= 1
    )
    assert value(ingest, "mailsync_connections", state="active") == 1
    lag_groups = {labels["group"] for name, labels, _ in router if name == "mailsync_consumer_lag"}
    assert pipeline.router.consumer_group("messages") in lag_groups


def assert_log_line_of_the_message(
    logs: JsonLines, pipeline: Pipeline, provider_message_id: str, connection_id: str, trace_id: int
) -> None:
    """The worker's line for the message carries its ids and trace; no line carries a credential."""
    lines = [json.loads(line) for line in logs.lines]
    (ingested_line,) = [
        line
        for line in lines
        if line["message"] == "message ingested" and line["provider_message_id"] == provider_message_id
    ]
    assert ingested_line["mailbox_id"] == "gmail:alice@example.com"
    assert ingested_line["connection_id"] == connection_id
    assert ingested_line["event_id"]
    assert ingested_line["trace_id"] == trace.format_trace_id(trace_id)
    secrets = pipeline.secrets()
    assert len(secrets) >= 4
    leaked = [line for line in logs.lines for secret in secrets if secret in line]
    assert leaked == []
