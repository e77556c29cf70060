"""Gmail's usage limits: quota units, concurrency, the daily sending limit and the size caps."""

from __future__ import annotations

import base64
from email.message import EmailMessage
from typing import Any

import aiohttp
import pytest

ALICE = "alice@example.com"
BOB = "bob@outside.example"


def _raw(subject: str = "hello", attachment: bytes | None = None) -> bytes:
    message = EmailMessage()
    message["To"] = BOB
    message["Subject"] = subject
    message.set_content("body")
    if attachment is not None:
        message.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="big.bin")
    return message.as_bytes()


async def _post_send(
    session: aiohttp.ClientSession, running: Any, headers: dict[str, str], raw: bytes
) -> Any:
    return session.post(
        f"{running.base_url}/gmail/v1/users/me/messages/send",
        headers=headers,
        json={"raw": base64.urlsafe_b64encode(raw).decode()},
    )


async def test_per_user_quota_of_15000_units_per_minute(running: Any) -> None:
    headers = await running.auth_headers()
    url = f"{running.base_url}/gmail/v1/users/me/messages/send"
    body = {"raw": base64.urlsafe_b64encode(_raw()).decode()}
    async with aiohttp.ClientSession() as session:
        for _ in range(150):  # 150 sends x 100 units = 15,000 units
            async with session.post(url, headers=headers, json=body) as response:
                assert response.status == 200
        async with session.get(f"{running.base_url}/gmail/v1/users/me/profile", headers=headers) as response:
            assert response.status == 403
            assert response.headers["Retry-After"] == "60"
            error = (await response.json())["error"]
        assert error["code"] == 403
        assert error["errors"] == [
            {
                "message": "User Rate Limit Exceeded",
                "domain": "usageLimits",
                "reason": "userRateLimitExceeded",
            }
        ]
        await running.clock.advance(60)
        async with session.get(f"{running.base_url}/gmail/v1/users/me/profile", headers=headers) as response:
            assert response.status == 200


async def test_concurrent_requests_per_user_answer_429(start_sandbox: Any) -> None:
    running = await start_sandbox(max_concurrent_requests_per_user=1)
    headers = await running.auth_headers()
    async with aiohttp.ClientSession() as session:
        with running.sandbox.concurrency.hold(ALICE):  # one request is in flight
            async with session.get(
                f"{running.base_url}/gmail/v1/users/me/profile", headers=headers
            ) as response:
                assert response.status == 429
                error = (await response.json())["error"]
                assert response.headers["Retry-After"]
        assert error["message"] == "Too many concurrent requests for user"
        assert error["errors"][0]["reason"] == "rateLimitExceeded"
        assert error["status"] == "RESOURCE_EXHAUSTED"
        async with session.get(f"{running.base_url}/gmail/v1/users/me/profile", headers=headers) as response:
            assert response.status == 200


async def _send_many(running: Any, headers: dict[str, str], count: int) -> None:
    url = f"{running.base_url}/gmail/v1/users/me/messages/send"
    body = {"raw": base64.urlsafe_b64encode(_raw()).decode()}
    async with aiohttp.ClientSession() as session:
        for index in range(count):
            if index and index % 100 == 0:
                await running.clock.advance(60)  # stay under the per-minute quota
            async with session.post(url, headers=headers, json=body) as response:
                assert response.status == 200, await response.text()


async def test_consumer_daily_sending_limit_of_500(running: Any) -> None:
    assert (await running.admin.mailbox(ALICE))["daily_send_limit"] == 500
    headers = await running.auth_headers()
    await _send_many(running, headers, 500)
    await running.clock.advance(60)
    async with aiohttp.ClientSession() as session:
        async with await _post_send(session, running, headers, _raw()) as response:
            assert response.status == 429
            error = (await response.json())["error"]
            retry_after = int(response.headers["Retry-After"])
        assert error["message"].startswith("User-rate limit exceeded.  Retry after ")
        assert error["message"].endswith("(Mail sending)")
        assert error["errors"][0]["reason"] == "rateLimitExceeded"
        assert 0 < retry_after <= 86400
        # The UI counts against the same limit.
        async with session.post(
            f"{running.base_url}/_admin/mailboxes/{ALICE}/send",
            json={"to": [BOB], "subject": "s", "text": "t"},
        ) as response:
            assert response.status == 429
        await running.clock.advance(retry_after)
        headers = await running.auth_headers()  # the old access token expired meanwhile
        async with await _post_send(session, running, headers, _raw()) as response:
            assert response.status == 200


async def test_workspace_daily_limit_is_2000_and_enforced(running: Any) -> None:
    created = await running.admin.create_mailbox("bob@corp.example", kind="workspace")
    assert created["daily_send_limit"] == 2000
    await running.admin.update_mailbox("bob@corp.example", daily_send_limit=2)
    headers = await running.auth_headers("bob@corp.example")
    await _send_many(running, headers, 2)
    async with (
        aiohttp.ClientSession() as session,
        await _post_send(session, running, headers, _raw()) as response,
    ):
        assert response.status == 429


async def test_attachments_over_25_mb_are_refused(running: Any) -> None:
    headers = await running.auth_headers()
    async with aiohttp.ClientSession() as session:
        too_big = _raw(attachment=b"\0" * (25 * 1024 * 1024 + 1))
        async with await _post_send(session, running, headers, too_big) as response:
            assert response.status == 400
            error = (await response.json())["error"]
        assert error["errors"][0]["reason"] == "badRequest"
        assert "attachments exceed" in error["message"]
        async with await _post_send(session, running, headers, _raw(attachment=b"\0" * 1024)) as response:
            assert response.status == 200


@pytest.mark.parametrize("upload_type", ["media", "json"])
async def test_send_uploads_over_35_mb_are_refused(running: Any, upload_type: str) -> None:
    headers = await running.auth_headers()
    raw = b"To: bob@outside.example\r\nSubject: big\r\n\r\n" + b"a" * 36_700_160
    async with aiohttp.ClientSession() as session:
        if upload_type == "media":
            response = await session.post(
                f"{running.base_url}/upload/gmail/v1/users/me/messages/send?uploadType=media",
                headers={**headers, "Content-Type": "message/rfc822"},
                data=raw,
            )
        else:
            response = await (await _post_send(session, running, headers, raw))
        async with response:
            assert response.status == 400
            error = (await response.json())["error"]
    assert error["message"] == "Request payload size exceeds the limit: 36700160 bytes."
