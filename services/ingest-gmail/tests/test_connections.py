"""Connection lifecycle (C1-C7) through the HTTP API, with OAuth through the sandbox, and the sender's
access-token API."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from mailsync.common.contracts import MAILBOX_CHANGED

pytestmark = [pytest.mark.kafka, pytest.mark.mongodb]

ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@corp.example"
CONTACT = "dora@contact.example"
READONLY = "https://www.googleapis.com/auth/gmail.readonly"
SEND = "https://www.googleapis.com/auth/gmail.send"
Harness = Any  # the conftest's harness (test modules cannot import the conftest under importlib mode)


async def test_c2_authorization_url_asks_offline_consent_with_state_pkce_and_scopes(harness: Harness) -> None:
    url = await harness.authorize("sub-1", "user-1")
    query = parse_qs(urlparse(url).query)
    assert query["access_type"] == ["offline"]
    assert query["prompt"] == ["consent"]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["state"][0]) >= 32
    assert set(query["scope"][0].split()) == {READONLY, SEND}
    assert query["redirect_uri"] == [harness.settings.oauth_redirect_uri]


async def test_c2_grant_missing_a_scope_is_refused_and_nothing_is_stored(harness: Harness) -> None:
    await harness.admin.set_consent(ALICE, granted_scopes=[READONLY])
    url = await harness.authorize("sub-1", "user-1", login_hint=ALICE)
    status, body = await harness.consent(url)
    assert status == 403
    assert body["error"] == "missing_scopes"
    assert body["missing_scopes"] == [SEND]
    assert await harness.database["gmail_connections"].count_documents({}) == 0


async def test_c2_denied_consent_and_replayed_state_are_refused(harness: Harness) -> None:
    await harness.admin.set_consent(ALICE, deny=True)
    status, body = await harness.consent(await harness.authorize("sub-1", "user-1", login_hint=ALICE))
    assert (status, body["error"]) == (400, "access_denied")
    await harness.admin.set_consent(ALICE)
    url = await harness.authorize("sub-1", "user-1", login_hint=ALICE)
    async with harness.http.get(url, allow_redirects=False) as response:
        callback = response.headers["Location"]
    async with harness.http.get(callback) as first:
        assert first.status == 201
    async with harness.http.get(callback) as replay:
        assert replay.status == 400
        assert (await replay.json())["error"] == "invalid_state"


async def test_c1_c3_one_connection_per_user_and_subaccount_with_status(harness: Harness) -> None:
    alice = await harness.connect("sub-1", "user-1", ALICE)
    bob = await harness.connect("sub-1", "user-2", BOB)
    alice_elsewhere = await harness.connect("sub-2", "user-1", ALICE)
    again = await harness.connect("sub-1", "user-1", ALICE)
    assert len({alice["connection_id"], bob["connection_id"], alice_elsewhere["connection_id"]}) == 3
    assert again["connection_id"] == alice["connection_id"]
    assert await harness.database["gmail_connections"].count_documents({}) == 3

    status = await harness.status(alice["connection_id"])
    assert status["provider"] == "gmail"
    assert status["email_address"] == ALICE
    assert status["status"] == "active"
    assert status["daily_send_limit"] == 500
    # M1: one message reaches both connections of Alice's mailbox, once.
    await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="to both", text="x")
    await harness.tap.wait_until(lambda: len(harness.tap.messages("gmail:alice@example.com")) == 1)
    event = harness.tap.messages("gmail:alice@example.com")[0]
    assert set(event.connection_ids) == {alice["connection_id"], alice_elsewhere["connection_id"]}
    await harness.tap.wait_until(lambda: len(harness.tap.connection_changes(alice["connection_id"])) == 2)
    changes = [c.change for c in harness.tap.connection_changes(alice["connection_id"])]
    assert changes == ["connected", "reauthenticated"]


async def test_tokens_are_encrypted_at_rest(harness: Harness) -> None:
    connection = await harness.connect("sub-1", "user-1", ALICE)
    status, grant = await harness.access_token(connection["connection_id"])
    assert status == 200
    documents = [d async for d in harness.database["gmail_connections"].find({})]
    dumped = json.dumps(
        documents, default=lambda v: base64.b64encode(bytes(v)).decode() if isinstance(v, bytes) else str(v)
    )
    assert grant["access_token"] not in dumped
    sealed = documents[0]["refresh_token"]
    assert set(sealed) == {"kid", "nonce", "ct"}
    assert sealed["kid"] == "k1"
    states = [d async for d in harness.database["gmail_oauth_states"].find({})]
    assert states == []  # the flow's state was consumed


async def test_s1_s3_access_token_api_for_the_sender(harness: Harness) -> None:
    carol = await harness.connect("sub-1", "user-1", CAROL, daily_send_limit=2000)
    connection_id = carol["connection_id"]
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
    assert body["provider"] == "gmail"
    assert body["status"] == "active"
    assert body["mailbox_id"] == "gmail:carol@corp.example"
    assert body["daily_send_limit"] == 2000
    assert body["expires_at"].endswith("Z")
    # The token works against Gmail.
    async with harness.http.get(
        f"{harness.sandbox_url}/gmail/v1/users/me/profile",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    ) as response:
        assert (await response.json())["emailAddress"] == CAROL

    assert await harness.access_token(connection_id, token=None) == (401, {"error": "unauthorized"})
    assert await harness.access_token(connection_id, token="wrong") == (401, {"error": "unauthorized"})
    assert await harness.access_token("gconn_unknown") == (
        404,
        {"error": "unknown_connection"},
    )

    async with harness.http.put(
        f"{harness.service_url}/v1/connections/{connection_id}/daily-send-limit",
        json={"daily_send_limit": 500},
        headers={"Authorization": "Bearer internal-test-token"},
    ) as response:
        assert response.status == 200
    assert (await harness.access_token(connection_id))[1]["daily_send_limit"] == 500


async def test_access_token_refreshes_before_expiry(start_harness: Any) -> None:
    harness = await start_harness(token_refresh_margin_seconds=3600)
    connection = await harness.connect("sub-1", "user-1", ALICE)
    first = (await harness.access_token(connection["connection_id"]))[1]["access_token"]
    second = (await harness.access_token(connection["connection_id"]))[1]["access_token"]
    assert first != second  # every token expires within the margin, so each call refreshed


async def test_c6_revoked_grant_needs_reauth_then_reauthentication_catches_up(harness: Harness) -> None:
    connection = await harness.connect("sub-1", "user-1", ALICE)
    connection_id = connection["connection_id"]
    await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="before", text="1")
    await harness.tap.wait_until(lambda: len(harness.tap.messages()) == 1)

    await harness.admin.revoke(ALICE)
    missed = await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="while revoked", text="2")
    await harness.tap.wait_until(
        lambda: [c.change for c in harness.tap.connection_changes(connection_id)][-1:] == ["reauth_required"]
    )
    change = harness.tap.connection_changes(connection_id)[-1]
    assert (change.status, change.reason) == ("needs_reauth", "invalid_grant")
    assert (await harness.status(connection_id))["status"] == "needs_reauth"
    assert await harness.access_token(connection_id) == (
        409,
        {"error": "connection_needs_reauth"},
    )
    assert len(harness.tap.messages()) == 1

    again = await harness.connect("sub-1", "user-1", ALICE)
    assert (again["connection_id"], again["change"]) == (connection_id, "reauthenticated")
    await harness.tap.wait_until(lambda: len(harness.tap.messages()) == 2)
    assert harness.tap.messages()[1].provider_message_id == missed["id"]
    assert any(h.source == "reauthenticated" for _, h in harness.tap.records[MAILBOX_CHANGED])
    assert (await harness.access_token(connection_id))[0] == 200


async def test_c6_access_token_api_detects_invalid_grant(start_harness: Any) -> None:
    harness = await start_harness(token_refresh_margin_seconds=3600)
    connection = await harness.connect("sub-1", "user-1", ALICE)
    await harness.admin.change_password(ALICE)
    status, body = await harness.access_token(connection["connection_id"])
    assert (status, body["error"]) == (409, "connection_needs_reauth")
    await harness.tap.wait_until(
        lambda: [c.change for c in harness.tap.connection_changes()][-1:] == ["reauth_required"]
    )


async def test_c4_update_email_switches_the_mailbox_and_the_old_one_stops_syncing(harness: Harness) -> None:
    connection = await harness.connect("sub-1", "user-1", ALICE)
    connection_id = connection["connection_id"]
    async with harness.http.post(
        f"{harness.service_url}/v1/connections/{connection_id}/update-email", json={"login_hint": BOB}
    ) as response:
        assert response.status == 200
        url = (await response.json())["authorization_url"]
    status, body = await harness.consent(url)
    assert status == 200
    assert (body["connection_id"], body["change"], body["email_address"]) == (
        connection_id,
        "mailbox_replaced",
        BOB,
    )
    await harness.tap.wait_until(lambda: len(harness.tap.connection_changes(connection_id)) == 2)
    replaced = harness.tap.connection_changes(connection_id)[-1]
    assert replaced.previous_mailbox_id == "gmail:alice@example.com"
    assert replaced.previous_email_address == ALICE
    assert replaced.mailbox_id == "gmail:bob@example.com"

    await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="to the old mailbox", text="x")
    to_bob = await harness.admin.deliver_inbound(BOB, sender=CONTACT, subject="to the new mailbox", text="y")
    await harness.tap.wait_until(lambda: len(harness.tap.messages()) == 1)
    assert harness.tap.messages()[0].provider_message_id == to_bob["id"]
    assert harness.tap.messages()[0].connection_ids == (connection_id,)
    assert harness.tap.messages("gmail:alice@example.com") == []


async def test_c5_d1_disconnect_stops_sync_drops_tokens_and_keeps_history(harness: Harness) -> None:
    connection = await harness.connect("sub-1", "user-1", ALICE)
    connection_id = connection["connection_id"]
    await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="synced", text="1")
    await harness.tap.wait_until(lambda: len(harness.tap.messages()) == 1)

    async with harness.http.post(
        f"{harness.service_url}/v1/connections/{connection_id}/disconnect"
    ) as response:
        assert response.status == 200
        assert (await response.json())["status"] == "disconnected"
    async with harness.http.post(
        f"{harness.service_url}/v1/connections/{connection_id}/disconnect"
    ) as response:
        assert response.status == 200  # idempotent
    await harness.tap.wait_until(lambda: len(harness.tap.connection_changes(connection_id)) == 2)
    assert harness.tap.connection_changes(connection_id)[-1].change == "disconnected"
    assert await harness.access_token(connection_id) == (
        410,
        {"error": "connection_disconnected"},
    )
    stored = await harness.database["gmail_connections"].find_one({"_id": connection_id})
    assert stored["refresh_token"] is None
    assert stored["access_token"] is None
    assert await harness.database["gmail_published_messages"].count_documents({}) == 1  # D1: kept

    token = await harness.admin.sign_push_token(
        "https://ingest-gmail.test/v1/pubsub/push", harness.sandbox.config.push_service_account
    )
    later = await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="after", text="2")
    assert await harness.push(harness.push_envelope(ALICE, later["historyId"]), token) == 204
    assert harness.sample("mailsync_notifications_dropped_total", {"reason": "no_active_connection"}) == 1
    assert len(harness.tap.messages()) == 1
    assert harness.sandbox.store.find(ALICE).watch is None  # users.stop was called
