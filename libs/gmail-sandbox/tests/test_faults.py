"""Fault injection: server errors, 429, slow responses and timeouts, by rate (seeded) or for the next N
calls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from mailsync.gmail_sandbox.admin_client import AdminApiError


async def _status(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> int:
    async with session.get(url, headers=headers) as response:
        return response.status


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_for_the_next_calls(running: Any, status: int) -> None:
    headers = await running.auth_headers()
    url = f"{running.base_url}/gmail/v1/users/me/profile"
    await running.admin.add_fault("error", status=status, count=2)
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=headers) as response:
            assert response.status == status
            error = (await response.json())["error"]
        assert error["errors"][0]["reason"] == "backendError"
        assert [await _status(session, url, headers) for _ in range(2)] == [status, 200]
    assert (await running.admin.faults())[0]["fired"] == 2


async def test_injected_429_has_retry_after_and_the_official_client_retries(
    running: Any, gmail_service: Callable[..., Any], run: Any
) -> None:
    users = gmail_service(running, await running.token_for()).users()
    await running.admin.add_fault("error", status=429, count=1, path_pattern="/profile$")
    async with aiohttp.ClientSession() as session:
        headers = await running.auth_headers()
        async with session.get(f"{running.base_url}/gmail/v1/users/me/profile", headers=headers) as response:
            assert response.status == 429
            assert response.headers["Retry-After"] == "1"
            assert (await response.json())["error"]["errors"][0]["reason"] == "rateLimitExceeded"

    await running.admin.add_fault("error", status=503, count=1, path_pattern="/profile$")
    profile = await run(users.getProfile(userId="me"), 1)  # googleapiclient retries 5xx itself
    assert profile["emailAddress"] == "alice@example.com"


async def test_rate_based_faults_are_repeatable_with_a_seed(running: Any) -> None:
    headers = await running.auth_headers()
    url = f"{running.base_url}/gmail/v1/users/me/labels"

    async def pattern() -> list[int]:
        await running.admin.clear_faults(seed=42)
        await running.admin.add_fault("error", status=503, rate=0.5)
        async with aiohttp.ClientSession() as session:
            return [await _status(session, url, headers) for _ in range(20)]

    first, second = await pattern(), await pattern()
    assert first == second
    assert set(first) == {200, 503}


async def test_slow_responses_and_timeouts(running: Any) -> None:
    headers = await running.auth_headers()
    url = f"{running.base_url}/gmail/v1/users/me/profile"
    await running.admin.add_fault("slow", delay_seconds=0.3, count=1)
    async with aiohttp.ClientSession() as session:
        began = time.monotonic()
        assert await _status(session, url, headers) == 200
        assert time.monotonic() - began >= 0.3

        await running.admin.add_fault("timeout", delay_seconds=30, count=1)
        with pytest.raises((asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
            async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=0.3)):
                pass
        assert await _status(session, url, headers) == 200


async def test_fault_rules_are_validated(running: Any) -> None:
    with pytest.raises(AdminApiError) as error:
        await running.admin.add_fault("error", status=404)
    assert error.value.status == 400
