"""Subscriptions: validation handshake, lifetime limits, change and lifecycle notifications, retries."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from msgraph.generated.models.subscription import Subscription

from mailsync.graph_sandbox import GraphSandboxAdmin, ManualClock
from mailsync.graph_sandbox.clock import parse_graph_timestamp, to_graph_timestamp
from mailsync.graph_sandbox.notifications import DeliveryPolicy
from mailsync.graph_sandbox.testing import GraphTestClient, WebhookReceiver

SdkParse = Callable[[type[Any], Any], Any]
ALICE = "alice@contoso.example"
CHANGE_NOTIFICATION_KEYS = {
    "subscriptionId",
    "subscriptionExpirationDateTime",
    "changeType",
    "resource",
    "resourceData",
    "clientState",
    "tenantId",
}
VALIDATION_FAILED = (
    "Subscription validation request failed. Notification endpoint must respond with 200 OK to "
    "validation request."
)


def _body(
    receiver: WebhookReceiver,
    clock: ManualClock,
    *,
    minutes: int = 4000,
    lifecycle: bool = True,
    resource: str = "me/mailFolders('Inbox')/messages",
    change_type: str = "created,updated,deleted",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "changeType": change_type,
        "notificationUrl": receiver.url,
        "resource": resource,
        "expirationDateTime": to_graph_timestamp(clock.now() + dt.timedelta(minutes=minutes)),
        "clientState": "secret-client-state",
    }
    if lifecycle:
        body["lifecycleNotificationUrl"] = receiver.lifecycle_url
    return body


async def _subscribe(
    graph: GraphTestClient, receiver: WebhookReceiver, clock: ManualClock, **kwargs: Any
) -> dict[str, Any]:
    status, _, body = await graph.call("POST", "/v1.0/subscriptions", _body(receiver, clock, **kwargs))
    assert status == 201, body
    return dict(body)


async def test_create_runs_the_handshake_on_both_urls(
    graph: GraphTestClient,
    alice: dict[str, Any],
    receiver: WebhookReceiver,
    clock: ManualClock,
    sdk_parse: SdkParse,
) -> None:
    created = await _subscribe(graph, receiver, clock)
    subscription = sdk_parse(Subscription, created)
    assert subscription.client_state == "secret-client-state"
    assert subscription.change_type == "created,updated,deleted"
    assert subscription.creator_id == alice["id"]
    assert len(receiver.validations) == 2
    assert " " in receiver.validations[0]  # the app received the decoded token
    status, _, listed = await graph.call("GET", f"/v1.0/subscriptions/{created['id']}")
    assert status == 200
    assert listed["notificationUrl"] == receiver.url


@pytest.mark.parametrize("mode", ["status", "encoded", "json"])
async def test_a_bad_handshake_answer_is_the_documented_400(
    graph: GraphTestClient, alice: dict[str, Any], receiver: WebhookReceiver, clock: ManualClock, mode: str
) -> None:
    receiver.handshake = mode
    status, _, body = await graph.call("POST", "/v1.0/subscriptions", _body(receiver, clock))
    assert status == 400
    assert body["error"]["code"] == "InvalidRequest"
    assert body["error"]["message"] == VALIDATION_FAILED


@pytest.mark.parametrize("config", [{"delivery": DeliveryPolicy(validation_timeout_s=0.3)}], indirect=True)
async def test_a_handshake_slower_than_the_deadline_fails(
    graph: GraphTestClient, alice: dict[str, Any], receiver: WebhookReceiver, clock: ManualClock
) -> None:
    receiver.handshake, receiver.delay_s = "slow", 1.0
    status, headers, body = await graph.call("POST", "/v1.0/subscriptions", _body(receiver, clock))
    assert (status, body["error"]["message"]) == (400, VALIDATION_FAILED)
    assert "0.3 s" in headers["x-sandbox-validation-failure"]


async def test_lifetime_limits(
    graph: GraphTestClient, alice: dict[str, Any], receiver: WebhookReceiver, clock: ManualClock
) -> None:
    status, _, body = await graph.call("POST", "/v1.0/subscriptions", _body(receiver, clock, minutes=10081))
    assert status == 400
    assert "10080 minutes" in body["error"]["message"]
    created = await _subscribe(graph, receiver, clock, minutes=10)
    expiry = parse_graph_timestamp(created["expirationDateTime"])
    assert expiry - clock.now() == dt.timedelta(minutes=45)
    status, _, body = await graph.call("POST", "/v1.0/subscriptions", _body(receiver, clock, minutes=-1))
    assert status == 400
    clock.advance(46 * 60)
    status, _, body = await graph.call("GET", f"/v1.0/subscriptions/{created['id']}")
    assert status == 404


async def test_renew_reauthorize_and_delete(
    graph: GraphTestClient, alice: dict[str, Any], receiver: WebhookReceiver, clock: ManualClock
) -> None:
    created = await _subscribe(graph, receiver, clock, minutes=60)
    new_expiry = to_graph_timestamp(clock.now() + dt.timedelta(minutes=10000))
    status, _, renewed = await graph.call(
        "PATCH", f"/v1.0/subscriptions/{created['id']}", {"expirationDateTime": new_expiry}
    )
    assert status == 200
    assert parse_graph_timestamp(renewed["expirationDateTime"]) == parse_graph_timestamp(new_expiry)
    status, _, body = await graph.call(
        "PATCH", f"/v1.0/subscriptions/{created['id']}", {"lifecycleNotificationUrl": receiver.lifecycle_url}
    )
    assert (status, body["error"]["code"]) == (400, "InvalidRequest")
    status, _, _ = await graph.call("POST", f"/v1.0/subscriptions/{created['id']}/reauthorize")
    assert status == 204
    status, _, _ = await graph.call("DELETE", f"/v1.0/subscriptions/{created['id']}")
    assert status == 204
    status, _, _ = await graph.call("DELETE", f"/v1.0/subscriptions/{created['id']}")
    assert status == 404


async def test_resource_rules(
    graph: GraphTestClient,
    admin: GraphSandboxAdmin,
    alice: dict[str, Any],
    receiver: WebhookReceiver,
    clock: ManualClock,
) -> None:
    bob = await admin.create_mailbox("bob@contoso.example")
    status, _, _ = await graph.call(
        "POST", "/v1.0/subscriptions", _body(receiver, clock, resource=f"users/{bob['id']}/messages")
    )
    assert status == 403
    status, _, _ = await graph.call(
        "POST", "/v1.0/subscriptions", _body(receiver, clock, resource="me/events")
    )
    assert status == 400
    status, _, _ = await graph.call(
        "POST", "/v1.0/subscriptions", _body(receiver, clock, resource=f"users/{ALICE}/messages")
    )
    assert status == 201
    status, _, _ = await graph.call(
        "POST", "/v1.0/subscriptions", {**_body(receiver, clock), "clientState": "x" * 129}
    )
    assert status == 400


async def test_change_notifications_for_a_folder(
    graph: GraphTestClient,
    admin: GraphSandboxAdmin,
    alice: dict[str, Any],
    receiver: WebhookReceiver,
    clock: ManualClock,
) -> None:
    created = await _subscribe(graph, receiver, clock)
    message = await admin.deliver_inbound(ALICE, sender="c@fabrikam.example", subject="Hi")
    await admin.update_message(ALICE, message["id"], is_read=True)
    await admin.update_message(ALICE, message["id"], move_to="deleteditems")
    await admin.send(ALICE, to=["x@fabrikam.example"], subject="not in the inbox")
    received = await receiver.wait_for(3)
    items = [n["value"][0] for n in received]
    assert [i["changeType"] for i in items] == ["created", "updated", "deleted"]
    first = items[0]
    assert set(first) == CHANGE_NOTIFICATION_KEYS
    assert first["subscriptionId"] == created["id"]
    assert first["clientState"] == "secret-client-state"
    assert first["tenantId"] == (await admin.info())["tenant_id"]
    assert first["resource"] == f"Users/{alice['id']}/Messages/{message['id']}"
    assert first["resourceData"]["@odata.type"] == "#Microsoft.Graph.Message"
    assert first["resourceData"]["id"] == message["id"]
    assert first["resourceData"]["@odata.etag"].startswith('W/"')
    await asyncio.sleep(0.2)
    assert len(receiver.received) == 3


async def test_mailbox_wide_subscription_sees_sent_mail(
    graph: GraphTestClient,
    admin: GraphSandboxAdmin,
    alice: dict[str, Any],
    receiver: WebhookReceiver,
    clock: ManualClock,
) -> None:
    await _subscribe(graph, receiver, clock, resource="me/messages", change_type="created")
    await admin.send(ALICE, to=["x@fabrikam.example"], subject="outbound")
    received = await receiver.wait_for(1)
    assert received[0]["value"][0]["changeType"] == "created"


async def test_failed_deliveries_are_retried_with_backoff(
    graph: GraphTestClient,
    admin: GraphSandboxAdmin,
    alice: dict[str, Any],
    receiver: WebhookReceiver,
    clock: ManualClock,
) -> None:
    await _subscribe(graph, receiver, clock)
    receiver.statuses = [500, 503]
    await admin.deliver_inbound(ALICE, sender="c@fabrikam.example", subject="Hi")
    await _until(lambda: _attempts(admin, 1))
    clock.advance(60)
    await _until(lambda: _attempts(admin, 2))
    clock.advance(60)
    await asyncio.sleep(0.2)
    assert receiver.received == []  # the second backoff is 120 s
    clock.advance(60)
    received = await receiver.wait_for(1)
    assert received[0]["value"][0]["changeType"] == "created"
    outcomes = [a["outcome"] for a in (await admin.notifications())["attempts"] if a["kind"] == "change"]
    assert outcomes == ["failed: 500", "failed: 503", "delivered"]


@pytest.mark.parametrize("config", [{"delivery": DeliveryPolicy(delivery_timeout_s=0.2)}], indirect=True)
async def test_an_answer_slower_than_the_timeout_is_retried(
    graph: GraphTestClient,
    admin: GraphSandboxAdmin,
    alice: dict[str, Any],
    receiver: WebhookReceiver,
    clock: ManualClock,
) -> None:
    await _subscribe(graph, receiver, clock)
    receiver.slow_notifications, receiver.delay_s = True, 0.5
    await admin.deliver_inbound(ALICE, sender="c@fabrikam.example", subject="Hi")
    await _until(lambda: _attempts(admin, 1))
    receiver.slow_notifications = False
    clock.advance(60)
    received = await receiver.wait_for(2)  # the slow first answer still arrived: the retry is a duplicate
    assert received[0]["value"][0] == received[1]["value"][0]
    outcomes = [a["outcome"] for a in (await admin.notifications())["attempts"]]
    assert outcomes[:2] == ["failed: timeout", "delivered"]


async def test_giving_up_after_four_hours_sends_missed(
    graph: GraphTestClient,
    admin: GraphSandboxAdmin,
    alice: dict[str, Any],
    receiver: WebhookReceiver,
    clock: ManualClock,
) -> None:
    await _subscribe(graph, receiver, clock)
    receiver.statuses = [500] * 50
    await admin.deliver_inbound(ALICE, sender="c@fabrikam.example", subject="Hi")
    await _until(lambda: _attempts(admin, 1))
    for _ in range(20):
        if await _pending_empty(admin):
            break
        before = len((await admin.notifications())["attempts"])
        clock.advance(1800)
        await _until(lambda before=before: _attempts_or_empty(admin, before + 1))  # type: ignore[misc]
    received = await receiver.wait_for(1)
    assert received[0]["path"] == "/lifecycle"
    assert received[0]["value"][0]["lifecycleEvent"] == "missed"
    records = (await admin.notifications())["attempts"]
    assert any(r["outcome"] == "dropped: retry horizon" for r in records)


async def test_lifecycle_events_from_the_admin_api(
    graph: GraphTestClient,
    admin: GraphSandboxAdmin,
    alice: dict[str, Any],
    receiver: WebhookReceiver,
    clock: ManualClock,
) -> None:
    created = await _subscribe(graph, receiver, clock)
    await admin.lifecycle(created["id"], "reauthorizationRequired")
    await admin.lifecycle(created["id"], "missed")
    await admin.lifecycle(created["id"], "subscriptionRemoved")
    received = await receiver.wait_for(3)
    events = sorted(n["value"][0]["lifecycleEvent"] for n in received)
    assert events == ["missed", "reauthorizationRequired", "subscriptionRemoved"]
    assert all(n["path"] == "/lifecycle" for n in received)
    assert all(n["value"][0]["clientState"] == "secret-client-state" for n in received)
    status, _, _ = await graph.call("GET", f"/v1.0/subscriptions/{created['id']}")
    assert status == 404
    await admin.deliver_inbound(ALICE, sender="c@fabrikam.example", subject="after removal")
    await asyncio.sleep(0.2)
    assert len(receiver.received) == 3


async def test_revoking_the_user_asks_for_reauthorization(
    graph: GraphTestClient,
    admin: GraphSandboxAdmin,
    alice: dict[str, Any],
    receiver: WebhookReceiver,
    clock: ManualClock,
) -> None:
    created = await _subscribe(graph, receiver, clock)
    assert await admin.revoke(ALICE) == [created["id"]]
    received = await receiver.wait_for(1)
    assert received[0]["value"][0]["lifecycleEvent"] == "reauthorizationRequired"


@pytest.mark.parametrize(
    "config",
    [
        {
            "delivery": DeliveryPolicy(
                slow_threshold_s=0.05, health_min_samples=4, drop_ratio=0.15, delay_ratio=0.10
            )
        }
    ],
    indirect=True,
)
async def test_a_slow_endpoint_gets_its_notifications_dropped(
    graph: GraphTestClient,
    admin: GraphSandboxAdmin,
    alice: dict[str, Any],
    receiver: WebhookReceiver,
    clock: ManualClock,
) -> None:
    await _subscribe(graph, receiver, clock, lifecycle=False)
    receiver.slow_notifications, receiver.delay_s = True, 0.1
    for number in range(4):
        await admin.deliver_inbound(ALICE, sender="c@fabrikam.example", subject=f"m{number}")
    await _until(lambda: _attempts(admin, 4))
    await admin.deliver_inbound(ALICE, sender="c@fabrikam.example", subject="dropped")
    records = (await admin.notifications())["attempts"]
    assert records[-1]["outcome"] == "endpoint throttled: dropped"


@pytest.mark.parametrize(
    "config",
    [
        {
            "delivery": DeliveryPolicy(
                slow_threshold_s=0.05, health_min_samples=4, drop_ratio=2.0, delay_ratio=0.10
            )
        }
    ],
    indirect=True,
)
async def test_a_slowish_endpoint_gets_its_notifications_delayed(
    graph: GraphTestClient,
    admin: GraphSandboxAdmin,
    alice: dict[str, Any],
    receiver: WebhookReceiver,
    clock: ManualClock,
) -> None:
    await _subscribe(graph, receiver, clock, lifecycle=False)
    receiver.slow_notifications, receiver.delay_s = True, 0.1
    for number in range(4):
        await admin.deliver_inbound(ALICE, sender="c@fabrikam.example", subject=f"m{number}")
    await _until(lambda: _attempts(admin, 4))
    receiver.slow_notifications = False
    await admin.deliver_inbound(ALICE, sender="c@fabrikam.example", subject="delayed")
    pending = [p for p in (await admin.notifications())["pending"] if p["attempts"] == 0]
    assert len(pending) == 1
    delay = parse_graph_timestamp(pending[0]["next_due"]) - clock.now()
    assert abs(delay - dt.timedelta(minutes=10)) < dt.timedelta(seconds=1)


async def _attempts(admin: GraphSandboxAdmin, count: int) -> bool:
    return len((await admin.notifications())["attempts"]) >= count


async def _attempts_or_empty(admin: GraphSandboxAdmin, count: int) -> bool:
    return await _attempts(admin, count) or await _pending_empty(admin)


async def _pending_empty(admin: GraphSandboxAdmin) -> bool:
    return not (await admin.notifications())["pending"]


async def _until(check: Callable[[], Any], timeout_s: float = 5.0) -> None:
    """Poll the admin API until ``check`` holds (the sandbox runs in this event loop)."""
    for _ in range(int(timeout_s / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("condition not reached")


async def test_subscriptions_are_listed_per_app(
    graph: GraphTestClient,
    admin: GraphSandboxAdmin,
    alice: dict[str, Any],
    receiver: WebhookReceiver,
    clock: ManualClock,
) -> None:
    created = await _subscribe(graph, receiver, clock)
    status, _, listed = await graph.call("GET", "/v1.0/subscriptions")
    assert (status, [s["id"] for s in listed["value"]]) == (200, [created["id"]])
    await admin.register_app("22222222-0000-0000-0000-000000000000", "other")
    graph.token = (await admin.mint_tokens(ALICE, ["Mail.Read"], "22222222-0000-0000-0000-000000000000"))[
        "access_token"
    ]
    status, _, listed = await graph.call("GET", "/v1.0/subscriptions")
    assert listed["value"] == []
    status, _, _ = await graph.call("GET", f"/v1.0/subscriptions/{created['id']}")
    assert status == 404
