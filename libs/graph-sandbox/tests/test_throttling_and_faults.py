"""Outlook service limits (per app and mailbox) and injected faults."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from mailsync.graph_sandbox import GraphSandboxAdmin, ManualClock, SandboxServer
from mailsync.graph_sandbox.admin_client import AdminError
from mailsync.graph_sandbox.errors import GraphError
from mailsync.graph_sandbox.testing import GraphTestClient
from mailsync.graph_sandbox.throttling import MailboxThrottle, ThrottlePolicy


def test_ten_thousand_requests_per_ten_minutes_per_app_and_mailbox() -> None:
    clock = ManualClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    throttle = MailboxThrottle(ThrottlePolicy(), clock.now)
    for _ in range(10_000):
        throttle.acquire("app", "mailbox")
        throttle.release("app", "mailbox")
    with pytest.raises(GraphError) as raised:
        throttle.acquire("app", "mailbox")
    assert (raised.value.status, raised.value.code) == (429, "TooManyRequests")
    assert raised.value.headers["Retry-After"] == "600"
    throttle.acquire("other-app", "mailbox")  # the budget is per app ...
    throttle.acquire("app", "other-mailbox")  # ... and per mailbox
    clock.advance(300)
    with pytest.raises(GraphError) as raised:
        throttle.acquire("app", "mailbox")
    assert raised.value.headers["Retry-After"] == "300"
    clock.advance(300)
    throttle.acquire("app", "mailbox")


def test_four_concurrent_requests_per_app_and_mailbox() -> None:
    throttle = MailboxThrottle(ThrottlePolicy(), ManualClock().now)
    for _ in range(4):
        throttle.acquire("app", "mailbox")
    with pytest.raises(GraphError) as raised:
        throttle.acquire("app", "mailbox")
    assert raised.value.code == "ApplicationThrottled"
    assert raised.value.message == "Application is over its MailboxConcurrency limit."
    throttle.release("app", "mailbox")
    throttle.acquire("app", "mailbox")


@pytest.mark.parametrize("config", [{"throttle": ThrottlePolicy(requests_per_window=3)}], indirect=True)
async def test_rate_limit_answer_over_http(
    graph: GraphTestClient, alice: dict[str, Any], clock: ManualClock
) -> None:
    for _ in range(3):
        status, _, _ = await graph.call("GET", "/v1.0/me/messages")
        assert status == 200
    status, headers, body = await graph.call("GET", "/v1.0/me/messages")
    assert status == 429
    assert headers["Retry-After"] == "600"
    assert body["error"]["code"] == "TooManyRequests"
    assert "request-id" in body["error"]["innerError"]
    clock.advance(600)
    status, _, _ = await graph.call("GET", "/v1.0/me/messages")
    assert status == 200


async def test_a_fifth_concurrent_request_is_throttled(
    graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any]
) -> None:
    await admin.add_fault("slow", delay_s=0.5, count=4)
    results = await asyncio.gather(*(graph.call("GET", "/v1.0/me/messages") for _ in range(5)))
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200, 200, 200, 200, 429]
    throttled = next(r for r in results if r[0] == 429)
    assert throttled[2]["error"]["code"] == "ApplicationThrottled"
    assert "Retry-After" in throttled[1]


async def test_error_fault_for_the_next_n_calls(
    graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any]
) -> None:
    await admin.add_fault("error", status=503, count=2, retry_after_s=3, path_contains="/messages")
    first = await graph.call("GET", "/v1.0/me/messages")
    second = await graph.call("GET", "/v1.0/me/messages")
    third = await graph.call("GET", "/v1.0/me/messages")
    assert [first[0], second[0], third[0]] == [503, 503, 200]
    assert first[2]["error"]["code"] == "serviceNotAvailable"
    assert first[1]["Retry-After"] == "3"
    assert await admin.faults() == []


async def test_seeded_rate_faults_are_reproducible(
    graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any]
) -> None:
    async def run() -> list[int]:
        await admin.clear_faults()
        await admin.add_fault("error", status=500, rate=0.5, seed=7)
        return [(await graph.call("GET", "/v1.0/me/messages"))[0] for _ in range(20)]

    first, second = await run(), await run()
    assert first == second
    assert {500, 200} == set(first)


async def test_throttle_fault(
    graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any]
) -> None:
    await admin.add_fault("throttle", count=1, retry_after_s=7)
    status, headers, body = await graph.call("GET", "/v1.0/me/messages")
    assert (status, headers["Retry-After"], body["error"]["code"]) == (429, "7", "TooManyRequests")


async def test_timeout_fault_outlasts_the_client(
    server: SandboxServer, graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any]
) -> None:
    await admin.add_fault("timeout", count=1, delay_s=2.0)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await graph.call("GET", "/v1.0/me/messages")
    await asyncio.sleep(2.0)  # let the held request finish before the server stops


async def test_identity_faults(
    server: SandboxServer, admin: GraphSandboxAdmin, graph: GraphTestClient
) -> None:
    await admin.add_fault("error", scope="identity", status=503, count=1, path_contains="/token")
    async with graph.session.post(
        f"{server.authority}/oauth2/v2.0/token", data={"grant_type": "refresh_token"}, ssl=graph.ssl
    ) as response:
        body = await response.json()
        assert response.status == 503
        assert body["error"] == "temporarily_unavailable"
        assert body["error_codes"] == [90033]
    status, _, _ = await graph.call("GET", "/v1.0/me", auth=False)
    assert status == 401  # graph-scoped requests were untouched


async def test_admin_client_reports_errors(admin: GraphSandboxAdmin) -> None:
    with pytest.raises(AdminError) as raised:
        await admin.add_fault("explode")
    assert raised.value.status == 400
    with pytest.raises(AdminError):
        await admin.advance_clock(-1)
    assert isinstance((await admin.info())["ca_file"], str)
