"""Microsoft Graph over aiohttp: subscriptions, delta rounds and attachments, within Outlook's limits.

- **Concurrency**: Outlook allows 4 concurrent requests per app and mailbox (`MailboxConcurrency`); every
  call for a mailbox takes a slot of that mailbox's semaphore (`max_concurrency`, at most 4).
- **Pacing**: every request first takes a token of its mailbox's bucket (see `pacing`), sized from
  Outlook's 10,000 requests per 10 minutes, so a long catch-up runs just under the limit instead of into it.
- **Throttling**: 429, 503 and 504 are retried after `Retry-After` (else exponential backoff) a few times
  in place; then `TransientError` carries the hint to the delivery middleware.
- **Auth**: a 401 gets one retry with a force-refreshed token.
- **Errors**: 410, or `syncStateNotFound` / `resyncRequired`, on a delta link is `DeltaExpiredError` (the
  caller resyncs); other 4xx are `GraphError`; network errors are transient.
- **Metrics**: every request is counted by operation and outcome (`mailsync_provider_calls_total`) and
  against the mailbox's request budget (`mailsync_quota_used_total{quota="graph_requests"}`).
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from mailsync.common.delivery import TransientError
from mailsync.common.metrics import BoundCounter
from mailsync.ingest_outlook.adapters.pacing import MailboxPacer

TokenSource = Callable[[bool], Awaitable[str]]
"""Gives the mailbox's access token; `True` forces a refresh (after a 401)."""

_RETRYABLE = frozenset({429, 503, 504})
_MAX_ATTEMPTS = 4
_MAX_WAIT = 30.0
_DELTA_EXPIRED_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid"})


class GraphError(Exception):
    """A Graph answer that retrying cannot fix (4xx other than 401/429)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code


class DeltaExpiredError(Exception):
    """The delta link's sync state is gone (410 / `syncStateNotFound`): a full resync is needed."""


@dataclass(frozen=True)
class GraphConfig:
    base_url: str
    ca_file: str | None = None
    timeout_seconds: float = 30.0
    max_concurrency: int = 4
    requests_per_window: int = 10_000
    window_seconds: float = 600.0
    burst_fraction: float = 0.05


class GraphClient:
    """Graph calls on behalf of one mailbox at a time, each with that mailbox's token source."""

    def __init__(
        self,
        config: GraphConfig,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        pacer: MailboxPacer | None = None,
        calls: BoundCounter | None = None,
        quota_requests: BoundCounter | None = None,
    ):
        self._config = config
        self._calls = calls
        self._quota_requests = quota_requests
        self.pacer = pacer or MailboxPacer(
            config.requests_per_window, config.window_seconds, config.burst_fraction
        )
        self._root = config.base_url.rstrip("/") + "/v1.0"
        self._session: aiohttp.ClientSession | None = None
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._sleep = sleep
        self.throttled = 0
        """429s seen (for metrics and the benchmark)."""
        self.requests = 0
        """Requests sent (for the benchmark)."""

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            ssl_context: ssl.SSLContext | bool = True
            if self._config.ca_file:
                ssl_context = ssl.create_default_context(cafile=self._config.ca_file)
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._config.timeout_seconds),
                connector=aiohttp.TCPConnector(ssl=ssl_context, limit=200),
            )
        return self._session

    def _count(self, operation: str, outcome: str) -> None:
        if self._calls is not None:
            self._calls.labels(operation, outcome).inc()

    def _slot(self, mailbox_id: str) -> asyncio.Semaphore:
        slot = self._slots.get(mailbox_id)
        if slot is None:
            slot = self._slots[mailbox_id] = asyncio.Semaphore(self._config.max_concurrency)
        return slot

    async def call(
        self,
        mailbox_id: str,
        token: TokenSource,
        method: str,
        path_or_url: str,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        operation: str = "request",
    ) -> tuple[int, dict[str, Any] | None]:
        """One Graph call with retries; returns (status, JSON body or None) for 2xx, raises otherwise."""
        url = path_or_url if path_or_url.startswith("http") else f"{self._root}/{path_or_url.lstrip('/')}"
        force = False
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            access_token = await token(force)
            request_headers = {"Authorization": f"Bearer {access_token}", **(headers or {})}
            try:
                async with self._slot(mailbox_id):
                    await self.pacer.acquire(mailbox_id)
                    self.requests += 1
                    if self._quota_requests is not None:
                        self._quota_requests.inc()
                    async with self._client().request(
                        method, url, json=body, headers=request_headers
                    ) as response:
                        status = response.status
                        retry_after = _retry_after(response.headers.get("Retry-After"))
                        payload = await _json(response)
            except (aiohttp.ClientError, TimeoutError) as error:
                self._count(operation, "network_error")
                if attempt == _MAX_ATTEMPTS:
                    raise TransientError(f"Graph unreachable: {type(error).__name__}") from error
                await self._sleep(_backoff(attempt))
                continue
            self._count(operation, _outcome(status))
            if 200 <= status < 300:
                return status, payload
            code, message = _error_of(payload)
            if status == 401 and not force:
                force = True
                continue
            if status in _RETRYABLE or status >= 500:
                if status == 429:
                    self.throttled += 1
                wait = retry_after if retry_after is not None else _backoff(attempt)
                if attempt == _MAX_ATTEMPTS or wait > _MAX_WAIT:
                    raise TransientError(f"Graph {status} {code}", retry_after=retry_after)
                await self._sleep(wait)
                continue
            if status == 410 or code.lower() in _DELTA_EXPIRED_CODES:
                raise DeltaExpiredError(f"{status} {code}")
            raise GraphError(status, code, message)
        raise TransientError("Graph kept answering 401 after a token refresh")

    # Typed helpers -------------------------------------------------------------------------------------

    async def create_subscription(
        self, mailbox_id: str, token: TokenSource, request: dict[str, Any]
    ) -> dict[str, Any]:
        _, payload = await self.call(
            mailbox_id, token, "POST", "subscriptions", body=request, operation="subscriptions.create"
        )
        return payload or {}

    async def renew_subscription(
        self, mailbox_id: str, token: TokenSource, subscription_id: str, expiration: str
    ) -> None:
        await self.call(
            mailbox_id,
            token,
            "PATCH",
            f"subscriptions/{subscription_id}",
            body={"expirationDateTime": expiration},
            operation="subscriptions.renew",
        )

    async def delete_subscription(self, mailbox_id: str, token: TokenSource, subscription_id: str) -> None:
        try:
            await self.call(
                mailbox_id,
                token,
                "DELETE",
                f"subscriptions/{subscription_id}",
                operation="subscriptions.delete",
            )
        except GraphError as error:
            if error.status != 404:  # already gone: the goal is reached
                raise

    async def delta_page(
        self, mailbox_id: str, token: TokenSource, url: str, page_size: int
    ) -> dict[str, Any]:
        _, payload = await self.call(
            mailbox_id,
            token,
            "GET",
            url,
            headers={"Prefer": f'odata.maxpagesize={page_size}, outlook.body-content-type="html"'},
            operation="messages.delta",
        )
        return payload or {}

    async def attachments(self, mailbox_id: str, token: TokenSource, user: str, message_id: str) -> list[Any]:
        _, payload = await self.call(
            mailbox_id,
            token,
            "GET",
            f"users/{user}/messages/{message_id}/attachments",
            operation="attachments.list",
        )
        value = (payload or {}).get("value", [])
        return value if isinstance(value, list) else []

    def delta_url(self, user: str, folder: str, query: str) -> str:
        """The first URL of a folder's delta round (options are kept in the tokens by Graph)."""
        return f"{self._root}/users/{user}/mailFolders/{folder}/messages/delta?{query}"


def _outcome(status: int) -> str:
    if 200 <= status < 300:
        return "ok"
    if status == 401:
        return "unauthorized"
    if status in {404, 410}:
        return "not_found"
    if status == 429:
        return "rate_limited"
    return "server_error" if status >= 500 else "client_error"


async def _json(response: aiohttp.ClientResponse) -> dict[str, Any] | None:
    raw = await response.read()
    if not raw or "json" not in (response.content_type or ""):
        return None
    try:
        value = await response.json(content_type=None)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _error_of(payload: dict[str, Any] | None) -> tuple[str, str]:
    error = (payload or {}).get("error")
    if isinstance(error, dict):
        return str(error.get("code", "")), str(error.get("message", ""))
    return "", ""


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _backoff(attempt: int) -> float:
    return float(random.uniform(0, min(_MAX_WAIT, 0.2 * 2**attempt)))  # noqa: S311 - jitter, not crypto
