"""ingest-outlook end to end: the Graph + identity sandbox (TLS, local CA) and the service on free loopback
ports, on the real Kafka broker and MongoDB-wire server, with a Kafka tap reading what the service publishes.

The sandbox runs on the system clock, so token expiry, subscriptions and the service's C7 cutoff share one
time line. Notifications reach the service over real HTTP from the sandbox's delivery loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr

from mailsync.common.contracts import (
    CONNECTIONS_CHANGED,
    MAILBOX_CHANGED,
    MESSAGES_INGESTED,
    ConnectionChanged,
    MailboxChanged,
    MessageIngested,
    contract_for,
)
from mailsync.common.service import RUNTIME
from mailsync.devstack.ports import free_port
from mailsync.graph_sandbox import GraphSandboxAdmin, SandboxConfig, SandboxServer
from mailsync.graph_sandbox.admin_client import attachment
from mailsync.ingest_outlook.adapters.connection_store import ConnectionStore
from mailsync.ingest_outlook.app import CONNECTIONS, SUBSCRIPTIONS, SYNC, WATCHDOG, create_app
from mailsync.ingest_outlook.domain.connections import mailbox_id_for
from mailsync.ingest_outlook.handlers.subscriptions import Subscriptions
from mailsync.ingest_outlook.settings import Settings

INTERNAL_TOKEN = "internal-test-token"
TOKEN_KEY = base64.b64encode(b"o" * 32).decode()
ALICE = "alice@sandbox.onmicrosoft.com"
BOB = "bob@sandbox.onmicrosoft.com"
CONTACT = "dora@contact.example"


class _FormFields(HTMLParser):
    """The form_post page of the authorize endpoint: its action and hidden fields."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = values["action"]
        elif tag == "input":
            self.fields[values["name"]] = values["value"]


class EventTap:
    """Reads the service's output topics from the beginning, into per-topic lists."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.prefix = prefix
        self.records: dict[str, list[Any]] = {
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
            self.records[topic].append(contract_for(topic).parse(record.value))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    def messages(self, mailbox_id: str | None = None) -> list[MessageIngested]:
        events: list[MessageIngested] = self.records[MESSAGES_INGESTED]
        return [e for e in events if mailbox_id is None or e.mailbox_id == mailbox_id]

    def changes(self, connection_id: str | None = None) -> list[ConnectionChanged]:
        events: list[ConnectionChanged] = self.records[CONNECTIONS_CHANGED]
        return [e for e in events if connection_id is None or e.connection_id == connection_id]

    def hints(self) -> list[MailboxChanged]:
        events: list[MailboxChanged] = self.records[MAILBOX_CHANGED]
        return events


async def eventually(condition: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.1)


@dataclass
class Harness:
    """The sandbox, the service and a tap, plus the calls tests make."""

    sandbox: SandboxServer
    admin: GraphSandboxAdmin
    service: TestServer
    http: aiohttp.ClientSession
    tap: EventTap
    settings: Settings
    ssl_context: ssl.SSLContext

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}"

    @property
    def subscriptions(self) -> Subscriptions:
        return self.service.app[SUBSCRIPTIONS]

    @property
    def connections(self) -> ConnectionStore:
        return self.service.app[CONNECTIONS]

    async def authorize(self, subaccount_id: str, user_id: str, login_hint: str) -> str:
        body = {"subaccount_id": subaccount_id, "user_id": user_id, "login_hint": login_hint}
        async with self.http.post(f"{self.base}/v1/connections/authorize", json=body) as response:
            assert response.status == 200, await response.text()
            return str((await response.json())["authorization_url"])

    async def sign_in(self, authorization_url: str) -> tuple[int, dict[str, Any]]:
        """The browser: the sandbox's authorize page auto-posts a form to the service's callback."""
        async with self.http.get(authorization_url, allow_redirects=False, ssl=self.ssl_context) as response:
            assert response.status == 200, await response.text()
            form = _FormFields()
            form.feed(await response.text())
        assert form.action == self.settings.oauth_redirect_uri
        async with self.http.post(form.action, data=form.fields) as response:
            return response.status, await response.json()

    async def connect(self, subaccount_id: str, user_id: str, address: str) -> dict[str, Any]:
        status, body = await self.sign_in(await self.authorize(subaccount_id, user_id, address))
        assert status in {200, 201}, body
        return body

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.http.request(method, f"{self.base}{path}", **kwargs) as response:
            body = (
                await response.json()
                if response.content_type == "application/json"
                else await response.text()
            )
            return response.status, body

    async def access_token(self, connection_id: str, token: str | None = INTERNAL_TOKEN) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.call(
            "POST", f"/internal/v1/connections/{connection_id}/access-token", headers=headers
        )

    def metric(self, name: str, labels: dict[str, str]) -> float:
        """A sample's current value (the ``service`` label is implied)."""
        labels = {"service": "ingest-outlook", **labels}
        value = self.service.app[RUNTIME].registry.get_sample_value(name, labels)
        return value or 0.0


@pytest.fixture
async def harness(
    kafka_bootstrap_servers: str, mongodb_uri: str, unique_name: Callable[[str], str]
) -> AsyncIterator[Harness]:
    async with SandboxServer(SandboxConfig(), http_port=0) as sandbox:
        admin = GraphSandboxAdmin(sandbox.base_url, ca_file=sandbox.ca_file)
        for address in (ALICE, BOB):
            await admin.create_mailbox(address)
        port = free_port()
        prefix = unique_name("t") + "."
        settings = Settings(
            kafka_bootstrap_servers=kafka_bootstrap_servers,
            kafka_topic_prefix=prefix,
            kafka_ensure_topics=True,
            kafka_max_attempts=3,
            mongodb_uri=SecretStr(mongodb_uri),
            mongodb_database=unique_name("ingest_outlook"),
            client_id=sandbox.config.default_app.client_id,
            client_secret=SecretStr(sandbox.config.default_app.client_secret),
            authority=sandbox.authority,
            graph_url=sandbox.base_url,
            ca_file=str(sandbox.ca_file),
            http_port=port,
            oauth_redirect_uri=f"http://127.0.0.1:{port}/v1/oauth/callback",
            public_base_url=f"http://127.0.0.1:{port}/",
            token_keys={"k1": SecretStr(TOKEN_KEY)},
            internal_api_token=SecretStr(INTERNAL_TOKEN),
            maintenance_interval_seconds=3600,
            log_format="text",
        )
        service = TestServer(create_app(settings), host="127.0.0.1", port=port)
        await service.start_server()
        tap = EventTap(kafka_bootstrap_servers, prefix)
        await tap.start()
        ssl_context = ssl.create_default_context(cafile=str(sandbox.ca_file))
        try:
            async with aiohttp.ClientSession() as http:
                yield Harness(sandbox, admin, service, http, tap, settings, ssl_context)
        finally:
            await tap.stop()
            await service.close()
            await admin.close()


async def _connected_alice(harness: Harness) -> tuple[str, str]:
    body = await harness.connect("sub_1", "usr_alice", ALICE)
    await eventually(lambda: len(harness.tap.changes(body["connection_id"])) == 1)
    await eventually(lambda: len(harness.tap.hints()) >= 1)
    # the first delta round after connecting establishes the cursors
    await eventually(
        lambda: (
            harness.metric("mailsync_push_channel_operations_total", {"operation": "create", "outcome": "ok"})
            == 2
        )
    )
    return body["connection_id"], body["mailbox_id"]


async def test_c2_c7_o2_connect_subscribes_and_crm_thread_reply_and_outlook_send_each_give_one_event(
    harness: Harness,
) -> None:
    mailboxes = {m["address"]: m["id"] for m in await harness.admin.mailboxes()}
    await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="Before", body="old mail (C7)")
    await asyncio.sleep(1.1)  # Graph times have whole seconds
    connection_id, mailbox_id = await _connected_alice(harness)
    assert mailbox_id == mailbox_id_for(mailboxes[ALICE])
    change = harness.tap.changes(connection_id)[0]
    assert (change.change, change.status, change.provider, change.email_address) == (
        "connected",
        "active",
        "outlook",
        ALICE,
    )

    subscriptions = await harness.admin.subscriptions()
    assert sorted(s["resource"].split("'")[1] for s in subscriptions) == ["Inbox", "SentItems"]
    for subscription in subscriptions:
        assert subscription["changeType"] == "created"
        assert subscription["lifecycleNotificationUrl"].endswith("/v1/graph/lifecycle")
        assert len(subscription["clientState"]) >= 32

    # The CRM-started thread: the first message leaves through the mailbox (Sent Items → outbound event).
    sent = await harness.admin.send(ALICE, to=[CONTACT], subject="Quote", body="Here is the quote")
    await eventually(lambda: len(harness.tap.messages(mailbox_id)) == 1)
    outbound = harness.tap.messages(mailbox_id)[0]
    assert outbound.direction == "outbound"
    assert outbound.sent_by_owner
    assert outbound.folders == ("SentItems",)
    assert [a.email for a in outbound.to] == [CONTACT]
    assert outbound.provider_message_id == sent["id"]
    assert outbound.connection_ids == (connection_id,)

    # The contact's reply joins the conversation: exactly one inbound event, with threading headers.
    reply = await harness.admin.deliver_inbound(ALICE, sender=CONTACT, body="Thanks!", in_reply_to=sent["id"])
    await eventually(lambda: len(harness.tap.messages(mailbox_id)) == 2)
    inbound = harness.tap.messages(mailbox_id)[1]
    assert inbound.direction == "inbound"
    assert not inbound.sent_by_owner
    assert inbound.provider_message_id == reply["id"]
    assert inbound.provider_thread_id == outbound.provider_thread_id
    assert inbound.in_reply_to == outbound.internet_message_id
    assert outbound.internet_message_id in inbound.references
    assert inbound.from_.email == CONTACT
    assert inbound.body.html or inbound.body.text
    await harness.admin.flush_notifications()
    await _quiet(harness)
    assert len(harness.tap.messages(mailbox_id)) == 2


async def _quiet(harness: Harness, seconds: float = 1.5) -> None:
    del harness
    await asyncio.sleep(seconds)


def _notification(subscription: dict[str, Any], client_state: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "subscriptionId": subscription["id"],
        "subscriptionExpirationDateTime": subscription["expirationDateTime"],
        "changeType": "created",
        "resource": "Users/x/Messages/y",
        "tenantId": "t",
        "clientState": subscription["clientState"] if client_state is None else client_state,
        "resourceData": {"@odata.type": "#Microsoft.Graph.Message", "id": "y"},
    }
    return {"value": [item]}


async def test_d2_duplicate_notifications_publish_no_duplicate_events(harness: Harness) -> None:
    _, mailbox_id = await _connected_alice(harness)
    await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="Hello", body="once")
    await eventually(lambda: len(harness.tap.messages(mailbox_id)) == 1)
    inbox = next(s for s in await harness.admin.subscriptions() if "Inbox" in s["resource"])
    hints_before = len(harness.tap.hints())

    statuses = await asyncio.gather(
        *(harness.call("POST", "/v1/graph/notifications", json=_notification(inbox)) for _ in range(5))
    )

    assert [status for status, _ in statuses] == [202] * 5
    await eventually(lambda: len(harness.tap.hints()) == hints_before + 5)
    await _quiet(harness, 3)
    assert len(harness.tap.messages(mailbox_id)) == 1
    assert harness.metric("mailsync_webhook_accepted_total", {"endpoint": "change"}) >= 6

    # A hint older than the start of the last complete sync is coalesced: no Graph call, no event.
    stale = harness.tap.hints()[-1].model_copy(
        update={"event_id": uuid.uuid4(), "received_at": datetime.now(UTC) - timedelta(minutes=5)}
    )
    await harness.service.app[RUNTIME].publisher.publish(MAILBOX_CHANGED, stale)
    await eventually(lambda: harness.metric("mailsync_hints_coalesced_total", {}) >= 1)
    assert len(harness.tap.messages(mailbox_id)) == 1


async def test_forged_notifications_are_rejected_counted_and_never_hinted(harness: Harness) -> None:
    await _connected_alice(harness)
    inbox = next(s for s in await harness.admin.subscriptions() if "Inbox" in s["resource"])
    hints_before = len(harness.tap.hints())
    unknown = {**inbox, "id": "00000000-0000-0000-0000-000000000000"}

    wrong_state = await harness.call(
        "POST", "/v1/graph/notifications", json=_notification(inbox, "not-the-secret")
    )
    unknown_subscription = await harness.call("POST", "/v1/graph/lifecycle", json=_notification(unknown))
    not_json = await harness.call("POST", "/v1/graph/notifications", data=b"{not json")
    no_value = await harness.call("POST", "/v1/graph/notifications", json={"items": []})
    missing_state = await harness.call("POST", "/v1/graph/notifications", json=_notification(inbox, ""))

    assert wrong_state[0] == 202
    assert unknown_subscription[0] == 202
    assert not_json[0] == 400
    assert not_json[1]["error"] == "body_not_json"
    assert no_value[0] == 400
    assert missing_state[0] == 202
    for endpoint, outcome, count in (
        ("change", "wrong_client_state", 2),
        ("lifecycle", "unknown_subscription", 1),
        ("change", "body_not_json", 1),
        ("change", "missing_value", 1),
    ):
        assert (
            harness.metric("mailsync_webhook_rejected_total", {"endpoint": endpoint, "reason": outcome})
            == count
        )
    await _quiet(harness)
    assert len(harness.tap.hints()) == hints_before
    status, _ = await harness.call("GET", "/healthz")
    assert status == 200


async def test_lifecycle_reauthorization_removed_and_missed_are_each_recovered(harness: Harness) -> None:
    _, mailbox_id = await _connected_alice(harness)
    store = harness.subscriptions.mailboxes
    inbox = next(s for s in await harness.admin.subscriptions() if "Inbox" in s["resource"])

    # reauthorizationRequired → the subscription is renewed
    await harness.admin.lifecycle(inbox["id"], "reauthorizationRequired")
    await eventually(
        lambda: (
            harness.metric("mailsync_push_channel_operations_total", {"operation": "renew", "outcome": "ok"})
            == 1
        )
    )

    # subscriptionRemoved → recreated, and mail flows again
    await harness.admin.lifecycle(inbox["id"], "subscriptionRemoved")
    await eventually(
        lambda: (
            harness.metric(
                "mailsync_push_channel_operations_total", {"operation": "recreate", "outcome": "ok"}
            )
            == 1
        )
    )
    subscriptions = await harness.admin.subscriptions()
    assert len(subscriptions) == 2
    assert inbox["id"] not in {s["id"] for s in subscriptions}
    await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="After removal", body="1")
    await eventually(lambda: len(harness.tap.messages(mailbox_id)) == 1)

    # missed → a notification was lost (here: dropped as unknown), the delta resync still finds the mail
    inbox = next(s for s in subscriptions if "Inbox" in s["resource"])
    record = await store.subscription(inbox["id"])
    assert record is not None
    await store.remove_subscription(inbox["id"], datetime.now(UTC))
    await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="Missed", body="2")
    await eventually(
        lambda: (
            harness.metric(
                "mailsync_webhook_rejected_total",
                {"endpoint": "change", "reason": "unknown_subscription"},
            )
            == 1
        )
    )
    await _quiet(harness)
    assert len(harness.tap.messages(mailbox_id)) == 1
    await store.add_subscription(record)
    await harness.admin.lifecycle(inbox["id"], "missed")
    await eventually(lambda: len(harness.tap.messages(mailbox_id)) == 2)
    assert harness.tap.messages(mailbox_id)[1].subject == "Missed"


async def test_d2_dead_delta_token_resyncs_from_connection_time_without_duplicates(harness: Harness) -> None:
    _, mailbox_id = await _connected_alice(harness)
    await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="First", body="1")
    await eventually(lambda: len(harness.tap.messages(mailbox_id)) == 1)

    assert await harness.admin.expire_delta(user=ALICE) >= 1
    await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="Second", body="2")

    await eventually(lambda: len(harness.tap.messages(mailbox_id)) == 2)
    await eventually(lambda: harness.metric("mailsync_resyncs_total", {"cause": "sync_state_not_found"}) >= 1)
    await _quiet(harness)
    subjects = [m.subject for m in harness.tap.messages(mailbox_id)]
    assert subjects == ["First", "Second"]


async def test_c6_revoked_grant_needs_reauth_then_reauthentication_catches_up(harness: Harness) -> None:
    connection_id, mailbox_id = await _connected_alice(harness)

    await harness.admin.revoke(ALICE)  # Graph sends reauthorizationRequired; the refresh gets AADSTS50173

    await eventually(lambda: len(harness.tap.changes(connection_id)) == 2)
    lost = harness.tap.changes(connection_id)[1]
    assert (lost.change, lost.status, lost.reason) == ("reauth_required", "needs_reauth", "invalid_grant")
    status, body = await harness.call("GET", f"/v1/connections/{connection_id}")
    assert (status, body["status"]) == (200, "needs_reauth")
    assert await harness.access_token(connection_id) == (409, {"error": "connection_needs_reauth"})

    await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="While revoked", body="x")
    await _quiet(harness)
    assert harness.tap.messages(mailbox_id) == []

    status, body = await harness.sign_in(await harness.authorize("sub_1", "usr_alice", ALICE))
    assert (status, body["change"], body["connection_id"]) == (200, "reauthenticated", connection_id)
    await eventually(lambda: len(harness.tap.messages(mailbox_id)) == 1)
    assert harness.tap.messages(mailbox_id)[0].subject == "While revoked"
    assert harness.tap.changes(connection_id)[2].change == "reauthenticated"
    status, _ = await harness.access_token(connection_id)
    assert status == 200


async def test_access_token_api_answers_the_senders_contract(harness: Harness) -> None:
    connection_id, mailbox_id = await _connected_alice(harness)

    assert await harness.access_token(connection_id, token=None) == (401, {"error": "unauthorized"})
    assert await harness.access_token(connection_id, token="wrong") == (401, {"error": "unauthorized"})
    assert await harness.access_token("oconn_unknown") == (404, {"error": "unknown_connection"})
    status, body = await harness.access_token(connection_id)
    assert status == 200
    assert set(body) == {
        "connection_id",
        "provider",
        "mailbox_id",
        "email_address",
        "status",
        "access_token",
        "expires_at",
        "daily_send_limit",
    }
    assert (body["provider"], body["mailbox_id"], body["email_address"], body["status"]) == (
        "outlook",
        mailbox_id,
        ALICE,
        "active",
    )
    assert body["expires_at"].endswith("Z")
    assert body["daily_send_limit"] == 10_000
    me = await harness.http.get(
        f"{harness.sandbox.base_url}/v1.0/me",
        headers={"Authorization": f"Bearer {body['access_token']}"},
        ssl=harness.ssl_context,
    )
    assert me.status == 200

    await harness.call("POST", f"/v1/connections/{connection_id}/disconnect")
    assert await harness.access_token(connection_id) == (410, {"error": "connection_disconnected"})


async def test_msal_token_cache_is_encrypted_at_rest(harness: Harness) -> None:
    connection_id, _ = await _connected_alice(harness)
    _, body = await harness.access_token(connection_id)

    stored = await harness.connections.raw(connection_id)

    assert stored is not None
    sealed = stored["token_cache"]
    assert set(sealed) == {"kid", "nonce", "ct"}
    assert sealed["kid"] == "k1"
    document = repr(stored).encode()
    for plaintext in (body["access_token"].encode(), b"RefreshToken", b"refresh_token", b"secret"):
        assert plaintext not in document


async def test_c1_c5_d1_disconnect_unsubscribes_stops_sync_and_leaves_others_alone(harness: Harness) -> None:
    alice_id, alice_mailbox = await _connected_alice(harness)
    bob = await harness.connect("sub_1", "usr_bob", BOB)
    await eventually(
        lambda: (
            harness.metric("mailsync_push_channel_operations_total", {"operation": "create", "outcome": "ok"})
            == 4
        )
    )

    status, body = await harness.call("POST", f"/v1/connections/{alice_id}/disconnect")
    assert (status, body["status"]) == (200, "disconnected")
    again = await harness.call("POST", f"/v1/connections/{alice_id}/disconnect")
    assert again[0] == 200
    await eventually(
        lambda: [c.change for c in harness.tap.changes(alice_id)] == ["connected", "disconnected"]
    )
    remaining = await harness.admin.subscriptions()
    assert {s["resource"].split("/")[1] for s in remaining} == {bob["mailbox_id"].removeprefix("outlook:")}

    await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="After disconnect", body="x")
    await harness.admin.deliver_inbound(BOB, sender=CONTACT, subject="Bob still syncs", body="y")
    await eventually(lambda: len(harness.tap.messages(bob["mailbox_id"])) == 1)
    await _quiet(harness)
    assert harness.tap.messages(alice_mailbox) == []
    status, body = await harness.call("GET", f"/v1/connections/{bob['connection_id']}")
    assert body["status"] == "active"


async def test_c4_update_email_switches_mailbox_and_old_mailbox_stops_syncing(harness: Harness) -> None:
    connection_id, alice_mailbox = await _connected_alice(harness)

    status, body = await harness.call(
        "POST", f"/v1/connections/{connection_id}/update-email", json={"login_hint": BOB}
    )
    assert status == 200
    status, body = await harness.sign_in(body["authorization_url"])

    assert (status, body["change"], body["connection_id"], body["email_address"]) == (
        200,
        "mailbox_replaced",
        connection_id,
        BOB,
    )
    await eventually(lambda: len(harness.tap.changes(connection_id)) == 2)
    replaced = harness.tap.changes(connection_id)[1]
    assert (replaced.previous_mailbox_id, replaced.previous_email_address) == (alice_mailbox, ALICE)
    subscriptions = await harness.admin.subscriptions()
    assert {s["resource"].split("/")[1] for s in subscriptions} == {
        body["mailbox_id"].removeprefix("outlook:")
    }

    await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="Old mailbox", body="x")
    await harness.admin.deliver_inbound(BOB, sender=CONTACT, subject="New mailbox", body="y")
    await eventually(lambda: len(harness.tap.messages(body["mailbox_id"])) == 1)
    await _quiet(harness)
    assert harness.tap.messages(alice_mailbox) == []


async def test_c2_grant_missing_a_scope_is_refused(harness: Harness) -> None:
    await harness.admin.limit_consent(BOB, ["Mail.Read", "User.Read"])

    status, body = await harness.sign_in(await harness.authorize("sub_1", "usr_bob", BOB))

    assert status == 403
    assert body["error"] == "missing_scopes"
    assert set(body["missing_scopes"]) == {"Mail.ReadWrite", "Mail.Send"}
    await _quiet(harness)
    assert harness.tap.changes() == []
    assert await harness.admin.subscriptions() == []


async def test_o3_attachments_carry_sizes_and_types_and_large_bodies_are_stored(harness: Harness) -> None:
    _, mailbox_id = await _connected_alice(harness)
    pdf, exe = b"%PDF-1.4 quote", b"MZ" + b"\0" * 100
    long_text = "x" * (70 * 1024)

    await harness.admin.deliver_inbound(
        ALICE,
        sender=CONTACT,
        subject="Files",
        body=long_text,
        attachments=[attachment("quote.pdf", pdf, "application/pdf"), attachment("tool.exe", exe)],
    )

    await eventually(lambda: len(harness.tap.messages(mailbox_id)) == 1)
    event = harness.tap.messages(mailbox_id)[0]
    by_name = {a.filename: a for a in event.attachments}
    assert set(by_name) == {"quote.pdf", "tool.exe"}
    assert (by_name["quote.pdf"].content_type, by_name["quote.pdf"].size_bytes) == (
        "application/pdf",
        len(pdf),
    )
    assert by_name["quote.pdf"].blob is not None
    assert by_name["quote.pdf"].blob.size_bytes == len(pdf)
    assert by_name["tool.exe"].blob is None  # outside the O3 type list: metadata only, content not fetched
    assert by_name["tool.exe"].size_bytes > 0
    assert event.body.text is None
    assert event.body.html is None
    stored = event.body.text_blob or event.body.html_blob
    assert stored is not None
    assert stored.size_bytes > 64 * 1024


async def test_throttled_graph_calls_wait_for_retry_after_and_complete(harness: Harness) -> None:
    _, mailbox_id = await _connected_alice(harness)
    await harness.admin.add_fault(
        "throttle", scope="graph", count=2, retry_after_s=1, path_contains="/delta", method="GET"
    )

    await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="Throttled", body="x")

    await eventually(lambda: len(harness.tap.messages(mailbox_id)) == 1)
    assert harness.service.app[SYNC].graph.throttled == 2


def _environment(settings: Settings) -> dict[str, str]:
    """The service's settings as the `MAILSYNC_*` variables a deployed process reads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSYNC_")}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"MAILSYNC_{name.upper()}"] = _variable(value)
    return env


def _variable(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return json.dumps({k: v.get_secret_value() for k, v in value.items()})
    if isinstance(value, tuple):
        return json.dumps(list(value))
    return str(value)


async def _start_process(harness: Harness, log: Path, **overrides: Any) -> subprocess.Popen[bytes]:
    env = {**_environment(harness.settings), **overrides}
    with log.open("ab") as stderr:
        process = subprocess.Popen(  # noqa: ASYNC220 - started once, then polled over HTTP
            [sys.executable, "-m", "mailsync.ingest_outlook"], env=env, stderr=stderr
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            async with harness.http.get(f"{harness.base}/readyz") as response:
                if response.status == 200:
                    return process
        await asyncio.sleep(0.2)
    process.kill()
    raise AssertionError(f"the service did not become ready; see {log}")


async def test_d2_service_killed_mid_batch_loses_nothing(harness: Harness, tmp_path: Path) -> None:
    """SIGKILL while a delta round is being published: after a restart every message is there, and only the
    page in flight may repeat (with the same event ids)."""
    await harness.service.close()  # the same service, as a real process that can be killed
    log = tmp_path / "ingest-outlook.log"
    process = await _start_process(harness, log, MAILSYNC_DELTA_PAGE_SIZE="2")
    try:
        await harness.connect("sub_1", "usr_alice", ALICE)
        await eventually(lambda: len(harness.tap.changes()) == 1)
        mailbox_id = harness.tap.changes()[0].mailbox_id
        await harness.admin.add_fault("slow", scope="graph", delay_s=0.3, path_contains="/delta", count=1000)
        for number in range(12):
            await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject=f"m{number}", body="x")
        await eventually(lambda: len(harness.tap.messages(mailbox_id)) >= 3)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert len({m.provider_message_id for m in harness.tap.messages(mailbox_id)}) < 12

        await harness.admin.clear_faults()
        process = await _start_process(harness, log, MAILSYNC_DELTA_PAGE_SIZE="2")
        await eventually(lambda: len({m.provider_message_id for m in harness.tap.messages(mailbox_id)}) == 12)
        await asyncio.sleep(1.5)
        events = harness.tap.messages(mailbox_id)
        assert sorted({m.subject for m in events}) == sorted(f"m{n}" for n in range(12))
        assert len(events) <= 14  # page size 2: at most the page in flight twice
        assert len({m.event_id for m in events}) == 12
    finally:
        process.kill()
        process.wait(timeout=10)


async def test_maintenance_renews_due_subscriptions_and_recreates_lost_ones(harness: Harness) -> None:
    await _connected_alice(harness)
    store = harness.subscriptions.mailboxes
    inbox, sent = sorted(await harness.admin.subscriptions(), key=lambda s: s["resource"])
    record = await store.subscription(inbox["id"])
    assert record is not None
    assert record.expires_at - record.renew_at >= timedelta(hours=24)
    await store.renewed(inbox["id"], record.expires_at, datetime.now(UTC) - timedelta(seconds=1))
    await store.remove_subscription(sent["id"], datetime.now(UTC))

    await harness.subscriptions.maintain()

    assert (
        harness.metric("mailsync_push_channel_operations_total", {"operation": "renew", "outcome": "ok"}) == 1
    )
    assert (
        harness.metric("mailsync_push_channel_operations_total", {"operation": "create", "outcome": "ok"})
        == 3
    )
    renewed = await store.subscription(inbox["id"])
    assert renewed is not None
    assert renewed.renew_at > datetime.now(UTC) + timedelta(days=5)


async def test_c5_c6_disconnect_while_awaiting_reauthentication_drops_the_subscriptions(
    harness: Harness,
) -> None:
    connection_id, mailbox_id = await _connected_alice(harness)
    await harness.admin.revoke(ALICE)
    await eventually(lambda: [c.status for c in harness.tap.changes(connection_id)][-1:] == ["needs_reauth"])

    status, body = await harness.call("POST", f"/v1/connections/{connection_id}/disconnect")

    assert (status, body["status"]) == (200, "disconnected")
    assert await harness.subscriptions.mailboxes.subscriptions_of(mailbox_id) == []
    await eventually(lambda: harness.tap.changes(connection_id)[-1].change == "disconnected")
    stored = await harness.connections.raw(connection_id)
    assert stored is not None
    assert "token_cache" not in stored


async def _watchdog_at(harness: Harness, mailbox_id: str) -> datetime | None:
    database = harness.service.app[RUNTIME].mongo[harness.settings.mongodb_database]
    doc = await database["outlook_mailbox_syncs"].find_one({"_id": mailbox_id})
    value = None if doc is None else doc.get("watchdog_at")
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) and value.tzinfo is None else value


async def test_watchdog_syncs_a_mailbox_whose_notifications_went_silent(harness: Harness) -> None:
    _, mailbox_id = await _connected_alice(harness)
    store = harness.subscriptions.mailboxes
    deadline = time.monotonic() + 30
    while await _watchdog_at(harness, mailbox_id) is None:  # the first sync completed
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    first_due = await _watchdog_at(harness, mailbox_id)
    assert first_due is not None
    assert first_due >= datetime.now(UTC) + timedelta(minutes=59)

    # Notifications go silent: the service no longer knows the subscriptions, so Graph's deliveries are
    # dropped as unknown and nothing syncs the new message.
    for record in await store.subscriptions_of(mailbox_id):
        await store.remove_subscription(record.subscription_id, datetime.now(UTC))
    await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="Unheard", body="no notification")
    await harness.admin.flush_notifications()
    await eventually(
        lambda: (
            harness.metric(
                "mailsync_webhook_rejected_total",
                {"endpoint": "change", "reason": "unknown_subscription"},
            )
            >= 1
        )
    )
    watchdog = harness.service.app[WATCHDOG]
    assert await watchdog.run_round() == 0  # not silent for an hour yet
    await _quiet(harness, 0.5)
    assert harness.tap.messages(mailbox_id) == []

    real_now = watchdog.now
    watchdog.now = lambda: real_now() + timedelta(hours=1, minutes=11)  # past silence + spread
    assert await watchdog.run_round() == 1
    await eventually(lambda: [h.source for h in harness.tap.hints()][-1:] == ["watchdog"])
    await eventually(lambda: [m.subject for m in harness.tap.messages(mailbox_id)] == ["Unheard"])
    # The watchdog's sync recreated the subscriptions and scheduled the next watchdog an hour ahead (the
    # watchdog itself had postponed it by a period from its moved clock, past two hours from now).
    assert len(await store.subscriptions_of(mailbox_id)) == 2
    deadline = time.monotonic() + 30
    while (due := await _watchdog_at(harness, mailbox_id)) is None or due > real_now() + timedelta(hours=2):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    watchdog.now = real_now
    assert await watchdog.run_round() == 0
    assert harness.metric("mailsync_watchdog_hints_total", {}) == 1


async def test_watchdog_forgets_mailboxes_nobody_reads(harness: Harness) -> None:
    connection_id, mailbox_id = await _connected_alice(harness)
    deadline = time.monotonic() + 30
    while await _watchdog_at(harness, mailbox_id) is None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    status, _ = await harness.call("POST", f"/v1/connections/{connection_id}/disconnect")
    assert status == 200
    watchdog = harness.service.app[WATCHDOG]
    real_now = watchdog.now
    watchdog.now = lambda: real_now() + timedelta(hours=2)

    assert await watchdog.run_round() == 0
    assert await _watchdog_at(harness, mailbox_id) is None


async def test_maintenance_subscribes_a_mailbox_whose_subscription_failed_at_connect_time(
    harness: Harness,
) -> None:
    await harness.admin.add_fault(
        "error", scope="graph", status=400, code="InvalidRequest", path_contains="/subscriptions", count=10
    )
    body = await harness.connect("sub_1", "usr_alice", ALICE)
    mailbox_id = body["mailbox_id"]
    await eventually(lambda: len(harness.tap.hints()) >= 1)
    await _quiet(harness, 1.0)  # the first sync also tried (and failed) to subscribe
    store = harness.subscriptions.mailboxes
    assert await store.subscriptions_of(mailbox_id) == []
    assert await store.due_subscribe(datetime.now(UTC)) == [mailbox_id]
    await harness.admin.clear_faults()

    await harness.subscriptions.maintain()

    assert sorted(r.folder for r in await store.subscriptions_of(mailbox_id)) == ["Inbox", "SentItems"]
    assert await store.due_subscribe(datetime.now(UTC)) == []
    await harness.subscriptions.maintain()  # nothing due: nothing more is created
    assert (
        harness.metric("mailsync_push_channel_operations_total", {"operation": "create", "outcome": "ok"})
        == 2
    )
