"""Watch notifications: coalescing to one per second, label filters, the Pub/Sub emulator, signed push."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping
from typing import Any

import aiohttp
import google.auth.transport.requests
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from google.auth import exceptions as auth_exceptions
from google.cloud import pubsub_v1
from google.oauth2 import id_token

from mailsync.gmail_sandbox.notifications import RecordingPublisher

ALICE = "alice@example.com"
BOB = "bob@outside.example"
TOPIC = "projects/mailsync-local/topics/gmail-watch"


async def _watch(running: Any, body: dict[str, Any]) -> dict[str, Any]:
    headers = await running.auth_headers()
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{running.base_url}/gmail/v1/users/me/watch", headers=headers, json=body) as response,
    ):
        result: dict[str, Any] = {"status": response.status, **(await response.json())}
        return result


def _decoded(publisher: RecordingPublisher) -> list[dict[str, Any]]:
    return [json.loads(data) for _, data in publisher.messages]


async def test_one_notification_per_second_with_the_latest_history_id(start_sandbox: Any) -> None:
    publisher = RecordingPublisher()
    running = await start_sandbox(publisher=publisher)
    watched = await _watch(running, {"topicName": TOPIC})
    assert watched["status"] == 200
    assert _decoded(publisher) == [{"emailAddress": ALICE, "historyId": int(watched["historyId"])}]

    for index in range(3):
        await running.admin.deliver_inbound(ALICE, sender=BOB, subject=f"burst {index}", text="x")
    await asyncio.sleep(0)
    assert len(publisher.messages) == 1  # still inside the first second

    await running.clock.advance(1.0)
    latest = int((await running.admin.mailbox(ALICE))["history_id"])
    assert _decoded(publisher)[1:] == [{"emailAddress": ALICE, "historyId": latest}]

    await running.clock.advance(5.0)
    await running.admin.deliver_inbound(ALICE, sender=BOB, subject="later", text="x")
    await running.sandbox.notifications.wait_idle()
    assert len(publisher.messages) == 3  # an idle user is notified at once
    assert publisher.messages[-1][0] == TOPIC


async def test_label_filter_and_stop(start_sandbox: Any) -> None:
    publisher = RecordingPublisher()
    running = await start_sandbox(publisher=publisher)
    await _watch(running, {"topicName": TOPIC, "labelIds": ["SENT"], "labelFilterBehavior": "INCLUDE"})
    await running.clock.advance(2)
    await running.admin.deliver_inbound(ALICE, sender=BOB, subject="not sent", text="x")
    await running.sandbox.notifications.wait_idle()
    assert len(publisher.messages) == 1  # the INBOX delivery does not pass the SENT filter

    await running.admin.send_as_user(ALICE, to=[BOB], subject="sent one", text="x")
    await running.sandbox.notifications.wait_idle()
    assert len(publisher.messages) == 2

    headers = await running.auth_headers()
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{running.base_url}/gmail/v1/users/me/stop", headers=headers) as response,
    ):
        assert response.status == 204
    await running.clock.advance(2)
    await running.admin.send_as_user(ALICE, to=[BOB], subject="after stop", text="x")
    await running.sandbox.notifications.wait_idle()
    assert len(publisher.messages) == 2


async def test_watch_validation_and_expiry(start_sandbox: Any) -> None:
    publisher = RecordingPublisher(known_topics={TOPIC})
    running = await start_sandbox(publisher=publisher)
    missing = await _watch(running, {})
    assert (missing["status"], missing["error"]["message"]) == (400, "topicName required")
    malformed = await _watch(running, {"topicName": "gmail"})
    assert malformed["status"] == 400
    unknown = await _watch(running, {"topicName": "projects/mailsync-local/topics/absent"})
    assert unknown["status"] == 404
    assert unknown["error"]["message"].startswith("Error sending test message to Cloud PubSub")

    await _watch(running, {"topicName": TOPIC})
    await running.clock.advance(7 * 86400 + 1)
    await running.admin.deliver_inbound(ALICE, sender=BOB, subject="too late", text="x")
    await running.sandbox.notifications.wait_idle()
    assert len(publisher.messages) == 1  # the watch expired after 7 days


@pytest.mark.pubsub
async def test_notifications_arrive_on_the_pubsub_emulator(
    start_sandbox: Any, pubsub_emulator_host: str, unique_name: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator_host)

    topic = f"projects/mailsync-local/topics/{unique_name('gmail')}"
    subscription = f"projects/mailsync-local/subscriptions/{unique_name('gmail-sub')}"
    publisher_client = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    await asyncio.to_thread(publisher_client.create_topic, name=topic)
    await asyncio.to_thread(subscriber.create_subscription, name=subscription, topic=topic)

    running = await start_sandbox(pubsub_emulator_host=pubsub_emulator_host)
    watched = await _watch(running, {"topicName": topic})
    assert watched["status"] == 200
    await running.clock.advance(1.5)
    delivered = await running.admin.deliver_inbound(ALICE, sender=BOB, subject="via emulator", text="x")
    await running.sandbox.notifications.wait_idle()

    received: list[dict[str, Any]] = []
    for _ in range(20):
        response = await asyncio.to_thread(
            subscriber.pull, subscription=subscription, max_messages=10, timeout=5
        )
        received += [json.loads(m.message.data) for m in response.received_messages]
        if response.received_messages:
            await asyncio.to_thread(
                subscriber.acknowledge,
                subscription=subscription,
                ack_ids=[m.ack_id for m in response.received_messages],
            )
        if len(received) >= 2:
            break
    assert received == [
        {"emailAddress": ALICE, "historyId": int(watched["historyId"])},
        {"emailAddress": ALICE, "historyId": int(delivered["historyId"])},
    ]

    absent = await _watch(running, {"topicName": f"projects/mailsync-local/topics/{unique_name('absent')}"})
    assert absent["status"] == 404
    subscriber.close()
    publisher_client.transport.close()


def _verify(token: str, audience: str, certs_url: str) -> Mapping[str, Any]:
    claims: Mapping[str, Any] = id_token.verify_token(
        token, google.auth.transport.requests.Request(), audience=audience, certs_url=certs_url
    )
    return claims


async def test_signed_push_delivery_with_retry(start_sandbox: Any) -> None:
    publisher = RecordingPublisher()
    running = await start_sandbox(publisher=publisher)
    statuses = [500, 204]
    received: list[tuple[Mapping[str, Any], dict[str, Any]]] = []

    async def endpoint(request: web.Request) -> web.Response:
        token = request.headers["Authorization"].removeprefix("Bearer ")
        claims = await asyncio.to_thread(_verify, token, audience, f"{running.base_url}/oauth2/v1/certs")
        received.append((claims, await request.json()))
        return web.Response(status=statuses.pop(0))

    app = web.Application()
    app.router.add_post("/push", endpoint)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    audience = str(server.make_url("/push"))
    try:
        await running.admin.add_push_subscription(TOPIC, audience, min_backoff_seconds=10)
        await _watch(running, {"topicName": TOPIC})
        for _ in range(250):
            if received:
                break
            await asyncio.sleep(0.02)
        await running.clock.advance(10)
        for _ in range(250):
            if len(received) == 2:
                break
            await asyncio.sleep(0.02)
    finally:
        await server.close()

    assert len(received) == 2  # nacked with 500, redelivered after the backoff, acked with 204
    claims, envelope = received[1]
    assert claims["iss"] == "https://accounts.google.com"
    assert claims["aud"] == audience
    assert claims["email_verified"] is True
    assert claims["email"] == running.sandbox.config.push_service_account
    assert claims["exp"] - claims["iat"] == 3600
    data = json.loads(base64.b64decode(envelope["message"]["data"]))
    assert data["emailAddress"] == ALICE
    assert envelope["subscription"].startswith("projects/mailsync-local/subscriptions/")
    assert envelope["message"]["messageId"] == received[0][1]["message"]["messageId"]
    attempts = (await running.admin.push_subscriptions())[0]["attempts"]
    assert [a["outcome"] for a in attempts] == [500, 204]


async def test_push_token_helper_and_both_cert_formats(running: Any) -> None:
    audience = "https://crm.example/gmail/push"
    token = await running.admin.sign_push_token(audience)
    for path in ("/oauth2/v1/certs", "/oauth2/v3/certs"):
        claims = await asyncio.to_thread(_verify, token, audience, running.base_url + path)
        assert claims["aud"] == audience
    with pytest.raises(auth_exceptions.GoogleAuthError):
        await asyncio.to_thread(
            _verify, token, "https://wrong.example/", running.base_url + "/oauth2/v1/certs"
        )
