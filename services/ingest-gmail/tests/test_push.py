"""Pub/Sub push authentication and decoding: forged, expired, misaddressed and malformed pushes are refused
and counted; a push for a mailbox nobody reads is acked and dropped; pull mode on the Pub/Sub emulator."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt, jwt
from google.cloud import pubsub_v1

from mailsync.common.contracts import MAILBOX_CHANGED

pytestmark = [pytest.mark.kafka, pytest.mark.mongodb]

ALICE = "alice@example.com"
CONTACT = "dora@contact.example"
AUDIENCE = "https://ingest-gmail.test/v1/pubsub/push"
Harness = Any  # the conftest's harness (test modules cannot import the conftest under importlib mode)


def _forged_token(service_account: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "email": service_account,
        "email_verified": True,
        "sub": "1",
        "iat": now,
        "exp": now + 3600,
    }
    signer = crypt.RSASigner.from_string(pem, key_id="forged")  # type: ignore[no-untyped-call]  # google-auth is unannotated
    token: bytes = jwt.encode(signer, claims)  # type: ignore[no-untyped-call]
    return token.decode()


async def _signed(harness: Harness, **body: Any) -> str:
    async with harness.http.post(f"{harness.sandbox_url}/_admin/push-token", json=body) as response:
        return str((await response.json())["token"])


async def test_forged_expired_misaddressed_and_malformed_pushes_are_rejected(harness: Harness) -> None:
    await harness.connect("sub-1", "user-1", ALICE)
    account = harness.sandbox.config.push_service_account
    body = harness.push_envelope(ALICE, 10**9)
    valid = await _signed(harness, audience=AUDIENCE, email=account)
    expired = await _signed(
        harness, audience=AUDIENCE, email=account, issued_at=time.time() - 7200, lifetime_seconds=3600
    )
    cases = [
        (None, body, 401, "missing_token"),
        ("not-a-jwt", body, 401, "invalid_token"),
        (_forged_token(account), body, 401, "invalid_token"),
        (expired, body, 401, "invalid_token"),
        (
            await _signed(harness, audience="https://elsewhere.test/push", email=account),
            body,
            403,
            "wrong_audience",
        ),
        (
            await _signed(harness, audience=AUDIENCE, email="intruder@evil.example"),
            body,
            403,
            "wrong_service_account",
        ),
        (valid, b"not json", 400, "body_not_json"),
        (valid, b'{"message": {}}', 400, "missing_data"),
        (
            valid,
            json.dumps({"message": {"data": base64.b64encode(b"[1]").decode()}}).encode(),
            400,
            "data_not_object",
        ),
        (valid, harness.push_envelope(ALICE, "x1"), 400, "invalid_history_id"),
    ]
    for token, payload, status, reason in cases:
        assert await harness.push(payload, token) == status, reason
        assert (
            harness.sample("mailsync_webhook_rejected_total", {"endpoint": "pubsub_push", "reason": reason})
            >= 1
        ), reason
    hints = [h for _, h in harness.tap.records[MAILBOX_CHANGED] if h.history_id == 10**9]
    assert hints == []
    assert await harness.push(body, valid) == 204
    async with harness.http.get(f"{harness.service_url}/healthz") as response:
        assert response.status == 200


async def test_push_for_an_unknown_mailbox_is_acked_and_dropped(harness: Harness) -> None:
    token = await _signed(harness, audience=AUDIENCE, email=harness.sandbox.config.push_service_account)
    assert await harness.push(harness.push_envelope("stranger@example.com", 5), token) == 204
    assert harness.sample("mailsync_notifications_dropped_total", {"reason": "unknown_mailbox"}) == 1


@pytest.mark.pubsub
async def test_pull_mode_turns_emulator_notifications_into_events(
    start_harness: Any, pubsub_emulator_host: str, unique_name: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator_host)
    topic = f"projects/mailsync-local/topics/{unique_name('gmail')}"
    subscription = f"projects/mailsync-local/subscriptions/{unique_name('gmail-sub')}"
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    await asyncio.to_thread(publisher.create_topic, name=topic)
    await asyncio.to_thread(subscriber.create_subscription, name=subscription, topic=topic)
    try:
        harness = await start_harness(
            push=False,
            sandbox_config={"pubsub_emulator_host": pubsub_emulator_host},
            notification_mode="pull",
            pubsub_subscription=subscription,
            pubsub_emulator_host=pubsub_emulator_host,
            pubsub_watch_topic=topic,
        )
        await harness.connect("sub-1", "user-1", ALICE)
        delivered = await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="pulled", text="x")
        await harness.tap.wait_until(lambda: len(harness.tap.messages()) == 1)
        assert harness.tap.messages()[0].provider_message_id == delivered["id"]
        sources = {h.source for _, h in harness.tap.records[MAILBOX_CHANGED]}
        assert sources == {"pull"}
    finally:
        subscriber.close()
        publisher.transport.close()
