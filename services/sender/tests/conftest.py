"""Fixtures: the sender on the real Kafka broker and MongoDB-wire server, the Gmail sandbox, a real SMTP
server, and a double of the ingest services' access-token API.

The ingest double is a test double of a *sibling service's* HTTP contract (the sender holds no refresh tokens;
ingest-gmail owns them): it keeps a refresh token per connection, obtained from the Gmail sandbox's admin API
as a consented grant, and answers each access-token request by refreshing that token at the sandbox's real
OAuth token endpoint. So tokens, revocation and `invalid_grant` are the sandbox's, not simulated here.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.controller import Controller
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

from mailsync.common.contracts import (
    CONNECTIONS_CHANGED,
    SEND_COMMANDS,
    SEND_RESULTS,
    Address,
    ConnectionChange,
    ConnectionChanged,
    MessageBody,
    Provider,
    ReplyContext,
    SendCompleted,
    SendEmail,
    SendKind,
)
from mailsync.common.mongo import Document
from mailsync.devstack.pytest_plugin import new_unique_name
from mailsync.gmail_sandbox import DEFAULT_CLIENT, GmailSandboxAdmin, MailboxSpec, SandboxConfig, create_app
from mailsync.graph_sandbox import GraphSandboxAdmin, SandboxServer
from mailsync.graph_sandbox import SandboxConfig as GraphSandboxConfig
from mailsync.sender.app import create_app as create_sender_app
from mailsync.sender.settings import Settings

ADA = "ada@acme.example"
ADA_NEW = "ada.lovelace@acme.example"
BOB = "bob@acme.example"
GRACE = Address(email="grace@navy.example", name="Grace Hopper")
SUBACCOUNT = "loc_acme"
GMAIL_SCOPES = ["https://www.googleapis.com/auth/gmail.modify"]
GRAPH_SCOPES = ["Mail.ReadWrite", "Mail.Send", "offline_access"]
ALAN = "alan@contoso.example"
INTERNAL_TOKEN = "internal-api-test-token"
CONNECTED_AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def eventually(condition: Callable[[], Awaitable[bool]], within: float = 60.0, what: str = "") -> None:
    """Poll `condition` until it holds; fail the test after `within` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within} s: {what}")
        await asyncio.sleep(0.1)


# --- Gmail sandbox ------------------------------------------------------------------------------------------


@dataclass
class RunningGmail:
    base_url: str
    admin: GmailSandboxAdmin

    async def sent(self, address: str) -> list[dict[str, Any]]:
        """The mailbox's Sent folder (summaries with headers), newest first."""
        return await self.admin.messages(address, label="SENT")


@pytest.fixture
async def gmail() -> AsyncIterator[RunningGmail]:
    """A Gmail sandbox with Ada's two addresses and Bob's mailbox.

    The per-user API quota (15,000 units a minute: 150 sends) is raised so the S3 tests measure the sender's
    daily ledger, not the per-minute rate limit; the daily sending limit stays Gmail's 500.
    """
    config = SandboxConfig(
        port=0,
        mailboxes=(MailboxSpec(ADA), MailboxSpec(ADA_NEW), MailboxSpec(BOB)),
        quota_units_per_user_per_minute=100_000_000,
    )
    server = TestServer(create_app(config), host="127.0.0.1", port=0)
    await server.start_server()
    base_url = str(server.make_url("")).rstrip("/")
    admin = GmailSandboxAdmin(base_url)
    yield RunningGmail(base_url, admin)
    await admin.close()
    await server.close()


@dataclass
class RunningGraph:
    base_url: str
    token_url: str
    admin: GraphSandboxAdmin
    client_id: str
    client_secret: str


@pytest.fixture
async def graph(ingest: IngestDouble) -> AsyncIterator[RunningGraph]:
    """A Microsoft Graph sandbox over plain HTTP with Alan's Outlook mailbox, known to the ingest double.

    Only the Outlook tests use it: they start the sender with `graph_api_url=graph.base_url`.
    """
    config = GraphSandboxConfig()
    async with SandboxServer(config, tls_enabled=False, http_port=0) as server:
        admin = GraphSandboxAdmin(server.http_url)
        await admin.create_mailbox(ALAN, "Alan Turing")
        app = config.default_app
        token_url = f"{server.http_url}/{config.tenant_id}/oauth2/v2.0/token"
        running = RunningGraph(server.http_url, token_url, admin, app.client_id, app.client_secret)
        ingest.graph = running
        yield running
        await admin.close()


# --- the ingest services' access-token API (a double of a sibling service) ---------------------------------


@dataclass
class IngestConnection:
    connection_id: str
    mailbox_id: str
    email_address: str
    refresh_token: str
    daily_send_limit: int
    provider: Provider = "gmail"
    status: str = "active"


@dataclass
class IngestDouble:
    """`POST /internal/v1/connections/{id}/access-token` as ingest-gmail and ingest-outlook serve it."""

    gmail: RunningGmail
    graph: RunningGraph | None = None
    connections: dict[str, IngestConnection] = field(default_factory=dict)
    requests: int = 0
    base_url: str = ""

    async def connect(
        self, connection_id: str, address: str, *, mailbox_id: str | None = None, daily_send_limit: int = 500
    ) -> IngestConnection:
        """Consent for `address` at its sandbox and keep the refresh token, as the OAuth flow would."""
        provider: Provider = "outlook" if address == ALAN else "gmail"
        if provider == "gmail":
            tokens = await self.gmail.admin.issue_tokens(address, GMAIL_SCOPES)
        else:
            tokens = await self._graph().admin.mint_tokens(address, GRAPH_SCOPES)
        connection = IngestConnection(
            connection_id,
            mailbox_id or f"mbx_{provider}_{address}",
            address,
            str(tokens["refresh_token"]),
            daily_send_limit,
            provider,
        )
        self.connections[connection_id] = connection
        return connection

    def _graph(self) -> RunningGraph:
        if self.graph is None:
            raise RuntimeError("request the `graph` fixture for Outlook connections")
        return self.graph

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/internal/v1/connections/{connection_id}/access-token", self._access_token)
        return app

    async def _access_token(self, request: web.Request) -> web.Response:
        self.requests += 1
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token, INTERNAL_TOKEN):
            return web.json_response({"error": "unauthorized"}, status=401)
        connection = self.connections.get(request.match_info["connection_id"])
        if connection is None:
            return web.json_response({"error": "unknown_connection"}, status=404)
        if connection.status == "disconnected":
            return web.json_response({"error": "connection_disconnected"}, status=410)
        if connection.status == "needs_reauth":
            return web.json_response({"error": "connection_needs_reauth"}, status=409)
        return await self._refresh(connection)

    async def _refresh(self, connection: IngestConnection) -> web.Response:
        form = {"grant_type": "refresh_token", "refresh_token": connection.refresh_token}
        if connection.provider == "gmail":
            form |= {"client_id": DEFAULT_CLIENT.client_id, "client_secret": DEFAULT_CLIENT.client_secret}
            token_url = f"{self.gmail.base_url}/token"
        else:
            graph = self._graph()
            form |= {"client_id": graph.client_id, "client_secret": graph.client_secret}
            form["scope"] = " ".join(GRAPH_SCOPES)
            token_url = graph.token_url
        async with (
            aiohttp.ClientSession() as session,
            session.post(token_url, data=form) as answer,
        ):
            body = await answer.json()
        if answer.status == 400 and body.get("error") == "invalid_grant":
            connection.status = "needs_reauth"
            return web.json_response({"error": "connection_needs_reauth"}, status=409)
        if answer.status != 200:
            return web.json_response({"error": "token_endpoint_failed"}, status=502)
        expires_at = datetime.now(UTC) + timedelta(seconds=int(body["expires_in"]))
        return web.json_response(
            {
                "connection_id": connection.connection_id,
                "provider": connection.provider,
                "mailbox_id": connection.mailbox_id,
                "email_address": connection.email_address,
                "status": "active",
                "access_token": body["access_token"],
                "expires_at": expires_at.isoformat().replace("+00:00", "Z"),
                "daily_send_limit": connection.daily_send_limit,
            }
        )


@pytest.fixture
async def ingest(gmail: RunningGmail) -> AsyncIterator[IngestDouble]:
    double = IngestDouble(gmail)
    server = TestServer(double.app(), host="127.0.0.1", port=0)
    await server.start_server()
    double.base_url = str(server.make_url("")).rstrip("/")
    yield double
    await server.close()


# --- the subaccount provider: a real SMTP server ---------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    recipients: tuple[str, ...]
    content: bytes


class SmtpSink:
    """aiosmtpd handler keeping every accepted message."""

    def __init__(self) -> None:
        self.messages: list[ReceivedMail] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
        self.messages.append(
            ReceivedMail(envelope.mail_from, tuple(envelope.rcpt_tos), bytes(envelope.content))
        )
        return "250 Message accepted for delivery"


@dataclass
class RunningSmtp:
    port: int
    sink: SmtpSink


@pytest.fixture
def smtp_server() -> Iterable[RunningSmtp]:
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield RunningSmtp(port, sink)
    controller.stop()


# --- the sender -----------------------------------------------------------------------------------------


@pytest.fixture
def settings(
    kafka_bootstrap_servers: str,
    mongodb_uri: str,
    gmail: RunningGmail,
    ingest: IngestDouble,
    smtp_server: RunningSmtp,
) -> Settings:
    """Sender settings on the test stack, with a topic prefix and database of the test's own."""
    return Settings(
        kafka_bootstrap_servers=kafka_bootstrap_servers,
        kafka_topic_prefix=new_unique_name("t") + ".",
        mongodb_uri=mongodb_uri,  # type: ignore[arg-type]  # pydantic wraps the str in SecretStr
        mongodb_database=new_unique_name("sender"),
        http_port=0,
        gmail_api_url=gmail.base_url,
        ingest_gmail_url=ingest.base_url,
        ingest_outlook_url=ingest.base_url,
        internal_api_token=INTERNAL_TOKEN,  # type: ignore[arg-type]  # pydantic wraps the str in SecretStr
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        smtp_from_address="crm@mail.acme.example",
        send_retry_initial_seconds=0.05,
        send_outcome_settle_seconds=0.5,
        provider_timeout_seconds=5.0,
        log_format="text",
    )


SenderFactory = Callable[..., Awaitable[web.Application]]


@pytest.fixture
async def start_sender(settings: Settings) -> AsyncIterator[SenderFactory]:
    """`await start_sender(**overrides)`: a sender instance (several may share the consumer group)."""
    servers: list[TestServer] = []

    async def start(**overrides: Any) -> web.Application:
        instance = settings.model_copy(update=overrides) if overrides else settings
        app = create_sender_app(instance)
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server()
        servers.append(server)
        return app

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Any]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        settings.mongodb_uri.get_secret_value(), tz_aware=True
    )
    yield client[settings.mongodb_database]
    await client.close()


# --- the bus: commands in, results out ---------------------------------------------------------------------


@dataclass
class Bus:
    """Publishes commands and connection events; collects results by request id."""

    broker: KafkaBroker
    settings: Settings
    results: dict[str, list[SendCompleted]] = field(default_factory=dict)

    async def send(self, command: SendEmail | dict[str, Any]) -> None:
        if isinstance(command, SendEmail):
            body = command.model_dump_json(by_alias=True).encode()
            key = command.request_id
        else:
            body = json.dumps(command).encode()
            key = str(command.get("request_id", "none"))
        await self.broker.publish(body, topic=self.settings.topic(SEND_COMMANDS), key=key.encode())

    async def connection_changed(self, event: ConnectionChanged) -> None:
        await self.broker.publish(
            event.model_dump_json(by_alias=True).encode(),
            topic=self.settings.topic(CONNECTIONS_CHANGED),
            key=event.connection_id.encode(),
        )

    async def wait_for(self, request_ids: Iterable[str], within: float = 60.0) -> dict[str, SendCompleted]:
        """The first result of each request id, once all arrived."""
        wanted = list(request_ids)

        async def arrived() -> bool:
            return all(r in self.results for r in wanted)

        await eventually(arrived, within, f"results for {len(wanted)} commands")
        return {r: self.results[r][0] for r in wanted}


@pytest.fixture
async def bus(settings: Settings, unique_name: Callable[[str], str]) -> AsyncIterator[Bus]:
    broker = KafkaBroker(settings.kafka_bootstrap_servers)
    collected = Bus(broker, settings)

    @broker.subscriber(
        settings.topic(SEND_RESULTS), group_id=unique_name("results"), auto_offset_reset="earliest"
    )
    async def on_result(result: SendCompleted) -> None:
        collected.results.setdefault(result.request_id, []).append(result)

    await broker.start()
    yield collected
    await broker.stop()


# --- commands and connections -----------------------------------------------------------------------------


def send_email(
    request_id: str,
    *,
    kind: SendKind = "individual",
    user_id: str | None = "usr_ada",
    to: tuple[Address, ...] = (GRACE,),
    subject: str = "Your quote",
    text: str = "Hello Grace, here is the quote we talked about.",
    reply_context: ReplyContext | None = None,
    **extra: Any,
) -> SendEmail:
    return SendEmail(
        request_id=request_id,
        kind=kind,
        subaccount_id=SUBACCOUNT,
        user_id=user_id,
        contact_id="con_grace",
        to=to,
        subject=subject,
        body=MessageBody(text=text),
        reply_context=reply_context,
        requested_at=datetime.now(UTC),
        **extra,
    )


def connection_event(
    connection_id: str,
    address: str,
    *,
    change: ConnectionChange = "connected",
    user_id: str = "usr_ada",
    previous: str | None = None,
    provider: Provider = "gmail",
) -> ConnectionChanged:
    status = {"reauth_required": "needs_reauth", "disconnected": "disconnected"}.get(change, "active")
    return ConnectionChanged(
        connection_id=connection_id,
        subaccount_id=SUBACCOUNT,
        user_id=user_id,
        provider=provider,
        mailbox_id=f"mbx_{provider}_{address}",
        email_address=address,
        status=status,  # type: ignore[arg-type]  # one of the three statuses, by the mapping above
        change=change,
        previous_mailbox_id=f"mbx_{provider}_{previous}" if previous else None,
        previous_email_address=previous,
        connected_at=CONNECTED_AT,
    )


@dataclass(frozen=True)
class Sending:
    """Everything an end-to-end sender test uses, as one fixture."""

    start: SenderFactory
    bus: Bus
    database: Any
    ingest: IngestDouble
    gmail: RunningGmail
    smtp: RunningSmtp
    settings: Settings
    unique_name: Callable[[str], str]

    async def connect(self, connection_id: str, address: str, *, daily_send_limit: int = 500) -> None:
        """Ada connects `address`: ingest holds the grant, the sender's read model learns it."""
        connection = await self.ingest.connect(connection_id, address, daily_send_limit=daily_send_limit)
        await self.apply(connection_event(connection_id, address, provider=connection.provider))

    async def apply(self, event: ConnectionChanged) -> None:
        """Publish `event` and wait until the sender's read model shows it."""
        await self.bus.connection_changed(event)

        async def applied() -> bool:
            document = await self.database["connections"].find_one({"_id": event.connection_id})
            return bool(
                document
                and document["status"] == event.status
                and document["email_address"] == event.email_address
            )

        await eventually(applied, 60, f"connection {event.connection_id} {event.change}")


@pytest.fixture
def sending(
    request: pytest.FixtureRequest, start_sender: SenderFactory, bus: Bus, settings: Settings
) -> Sending:
    return Sending(
        start=start_sender,
        bus=bus,
        database=request.getfixturevalue("database"),
        ingest=request.getfixturevalue("ingest"),
        gmail=request.getfixturevalue("gmail"),
        smtp=request.getfixturevalue("smtp_server"),
        settings=settings,
        unique_name=request.getfixturevalue("unique_name"),
    )
