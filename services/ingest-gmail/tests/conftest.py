"""Fixtures: the Gmail sandbox and the ingest-gmail service on free loopback ports, on the real Kafka broker
and MongoDB-wire server, with a Kafka tap reading what the service publishes.

The sandbox runs on the system clock, so notifications, token expiry and the service's C7 cutoff share one
time line. Notifications reach the service by the sandbox's signed Pub/Sub push (or by streaming pull from
Google's Pub/Sub emulator in the pull-mode test).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families
from pymongo import AsyncMongoClient

from mailsync.common.contracts import (
    CONNECTIONS_CHANGED,
    MAILBOX_CHANGED,
    MESSAGES_INGESTED,
    ConnectionChanged,
    MessageIngested,
    contract_for,
)
from mailsync.common.service import RUNTIME
from mailsync.devstack.ports import free_port
from mailsync.gmail_sandbox import (
    DEFAULT_CLIENT,
    SANDBOX_KEY,
    AccountKind,
    GmailSandboxAdmin,
    MailboxSpec,
    SandboxConfig,
    SystemClock,
)
from mailsync.gmail_sandbox import create_app as create_sandbox_app
from mailsync.gmail_sandbox.sandbox import GmailSandbox
from mailsync.ingest_gmail.app import MAINTENANCE, create_app
from mailsync.ingest_gmail.handlers.notifications import Maintenance
from mailsync.ingest_gmail.settings import Settings

ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@corp.example"
CONTACT = "dora@contact.example"
WATCH_TOPIC = "projects/mailsync-local/topics/gmail-watch"
PUSH_AUDIENCE = "https://ingest-gmail.test/v1/pubsub/push"
INTERNAL_TOKEN = "internal-test-token"
TOKEN_KEY = base64.b64encode(b"k" * 32).decode()


class EventTap:
    """Reads the service's output topics from the beginning, into per-topic lists."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.prefix = prefix
        self.records: dict[str, list[tuple[bytes | None, Any]]] = {
            MAILBOX_CHANGED: [],
            MESSAGES_INGESTED: [],
            CONNECTIONS_CHANGED: [],
        }
        self._consumer = AIOKafkaConsumer(
            *(prefix + topic for topic in self.records),
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            metadata_max_age_ms=1000,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for record in self._consumer:
            topic = record.topic.removeprefix(self.prefix)
            assert record.value is not None
            self.records[topic].append((record.key, contract_for(topic).parse(record.value)))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    def messages(self, mailbox_id: str | None = None) -> list[MessageIngested]:
        return [
            event
            for _, event in self.records[MESSAGES_INGESTED]
            if mailbox_id is None or event.mailbox_id == mailbox_id
        ]

    def connection_changes(self, connection_id: str | None = None) -> list[ConnectionChanged]:
        return [
            event
            for _, event in self.records[CONNECTIONS_CHANGED]
            if connection_id is None or event.connection_id == connection_id
        ]

    async def wait_until(self, condition: Callable[[], bool], within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {within} s")
            await asyncio.sleep(0.1)


@dataclass
class Harness:
    """The sandbox and the service, wired together."""

    sandbox: GmailSandbox
    admin: GmailSandboxAdmin
    sandbox_url: str
    service_url: str
    settings: Settings
    app: web.Application | None
    tap: EventTap
    http: aiohttp.ClientSession
    mongo: AsyncMongoClient[dict[str, Any]]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def maintenance(self) -> Maintenance:
        assert self.app is not None
        return self.app[MAINTENANCE]

    @property
    def database(self) -> Any:
        return self.mongo[self.settings.mongodb_database]

    async def authorize(self, subaccount_id: str, user_id: str, **extra: Any) -> str:
        async with self.http.post(
            f"{self.service_url}/v1/connections/authorize",
            json={"subaccount_id": subaccount_id, "user_id": user_id, **extra},
        ) as response:
            assert response.status == 200, await response.text()
            return str((await response.json())["authorization_url"])

    async def consent(self, authorization_url: str) -> tuple[int, dict[str, Any]]:
        """The user's browser: Google's consent page redirects to the callback, which answers."""
        async with self.http.get(authorization_url, allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            callback = response.headers["Location"]
        assert callback.startswith(self.settings.oauth_redirect_uri)
        async with self.http.get(callback) as response:
            return response.status, dict(await response.json())

    async def connect(self, subaccount_id: str, user_id: str, address: str, **extra: Any) -> dict[str, Any]:
        url = await self.authorize(subaccount_id, user_id, login_hint=address, **extra)
        status, body = await self.consent(url)
        assert status in {200, 201}, body
        return body

    async def status(self, connection_id: str) -> dict[str, Any]:
        async with self.http.get(f"{self.service_url}/v1/connections/{connection_id}") as response:
            assert response.status == 200, await response.text()
            return dict(await response.json())

    async def access_token(self, connection_id: str, token: str | None = INTERNAL_TOKEN) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with self.http.post(
            f"{self.service_url}/internal/v1/connections/{connection_id}/access-token", headers=headers
        ) as response:
            return response.status, await response.json()

    async def push(self, body: bytes, token: str | None) -> int:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.http.post(
            f"{self.service_url}/v1/pubsub/push", data=body, headers=headers
        ) as response:
            return response.status

    @staticmethod
    def push_envelope(address: str, history_id: int | str) -> bytes:
        """A Pub/Sub push body carrying a Gmail notification."""
        data = base64.b64encode(json.dumps({"emailAddress": address, "historyId": history_id}).encode())
        return json.dumps(
            {
                "message": {"data": data.decode(), "messageId": "1", "publishTime": "2026-01-01T00:00:00Z"},
                "subscription": "projects/mailsync-local/subscriptions/gmail-push",
            }
        ).encode()

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A metric's current value, read from the service's registry (the ``service`` label is implied)."""
        assert self.app is not None
        labels = {"service": self.settings.service_name, **(labels or {})}
        value = self.app[RUNTIME].registry.get_sample_value(name, labels)
        return float(value or 0.0)

    def sample_total(self, name: str) -> float:
        """A metric's value summed over all its label sets."""
        assert self.app is not None
        return sum(
            sample.value
            for metric in self.app[RUNTIME].registry.collect()
            for sample in metric.samples
            if sample.name == name
        )

    async def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample's value as ``/metrics`` serves it (the ``service`` label is implied)."""
        async with self.http.get(f"{self.service_url}/metrics") as response:
            text = await response.text()
        wanted = {"service": self.settings.service_name, **(labels or {})}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == wanted:
                    return float(sample.value)
        return 0.0


HarnessFactory = Callable[..., Any]


@pytest.fixture
async def start_harness(
    kafka_bootstrap_servers: str, mongodb_uri: str, unique_name: Callable[[str], str]
) -> AsyncIterator[HarnessFactory]:
    """Factory: ``await start_harness(push=True, **settings_overrides)`` -> :class:`Harness`."""
    harnesses: list[Harness] = []
    servers: list[TestServer] = []

    async def start(
        *,
        push: bool = True,
        in_process: bool = True,
        sandbox_config: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> Harness:
        sandbox_app = create_sandbox_app(
            SandboxConfig(
                clock=SystemClock(),
                mailboxes=(
                    MailboxSpec(ALICE, display_name="Alice"),
                    MailboxSpec(BOB, display_name="Bob"),
                    MailboxSpec(CAROL, kind=AccountKind.WORKSPACE, display_name="Carol"),
                ),
                **(sandbox_config or {}),
            )
        )
        sandbox_server = TestServer(sandbox_app, host="127.0.0.1", port=0)
        await sandbox_server.start_server()
        servers.append(sandbox_server)
        sandbox_url = str(sandbox_server.make_url("")).rstrip("/")
        sandbox = sandbox_app[SANDBOX_KEY]

        port = free_port()
        service_url = f"http://127.0.0.1:{port}"
        prefix = unique_name("t") + "."
        values: dict[str, Any] = {
            "kafka_bootstrap_servers": kafka_bootstrap_servers,
            "kafka_topic_prefix": prefix,
            "mongodb_uri": mongodb_uri,
            "mongodb_database": unique_name("db"),
            "http_port": port,
            "google_client_id": DEFAULT_CLIENT.client_id,
            "google_client_secret": DEFAULT_CLIENT.client_secret,
            "google_auth_url": f"{sandbox_url}/o/oauth2/v2/auth",
            "google_token_url": f"{sandbox_url}/token",
            "gmail_api_url": sandbox_url,
            "oauth_redirect_uri": f"{service_url}/v1/oauth/callback",
            "token_keys": {"k1": TOKEN_KEY},
            "internal_api_token": INTERNAL_TOKEN,
            "pubsub_watch_topic": WATCH_TOPIC,
            "pubsub_push_audience": PUSH_AUDIENCE,
            "pubsub_push_service_account": sandbox.config.push_service_account,
            "pubsub_certs_url": f"{sandbox_url}/oauth2/v1/certs",
            "maintenance_interval_seconds": 3600.0,
            "kafka_max_attempts": 8,
            "sync_consumers": 1,  # group joins of one member keep tests fast; the fault test uses several
        }
        values.update(overrides)
        settings = Settings(**values)
        await _create_topics(kafka_bootstrap_servers, prefix)
        tap = EventTap(kafka_bootstrap_servers, prefix)
        await tap.start()
        app = create_app(settings) if in_process else None
        if app is not None:
            server = TestServer(app, host="127.0.0.1", port=port)
            await server.start_server()
            servers.append(server)
        admin = GmailSandboxAdmin(sandbox_url)
        if push:
            await admin.add_push_subscription(
                WATCH_TOPIC,
                f"{service_url}/v1/pubsub/push",
                audience=PUSH_AUDIENCE,
                min_backoff_seconds=0.2,
                max_backoff_seconds=1.0,
            )
        harness = Harness(
            sandbox=sandbox,
            admin=admin,
            sandbox_url=sandbox_url,
            service_url=service_url,
            settings=settings,
            app=app,
            tap=tap,
            http=aiohttp.ClientSession(),
            mongo=AsyncMongoClient(mongodb_uri, tz_aware=True),
            env={
                f"MAILSYNC_{name.upper()}": json.dumps(value) if isinstance(value, dict) else str(value)
                for name, value in values.items()
            },
        )
        harnesses.append(harness)
        return harness

    yield start
    for harness in harnesses:
        await harness.tap.stop()
        await harness.http.close()
        await harness.admin.close()
        await harness.mongo.close()
    for server in reversed(servers):
        await server.close()


async def _create_topics(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(prefix + topic, num_partitions=3, replication_factor=1)
                for topic in (MAILBOX_CHANGED, MESSAGES_INGESTED, CONNECTIONS_CHANGED)
            ]
        )
    finally:
        await admin.close()


@pytest.fixture
async def harness(start_harness: HarnessFactory) -> Harness:
    """The default harness: push mode."""
    result: Harness = await start_harness()
    return result
