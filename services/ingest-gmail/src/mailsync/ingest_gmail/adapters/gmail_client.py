"""The Gmail API and Google OAuth token endpoint over aiohttp, with Google's errors classified.

Classification (see https://developers.google.com/gmail/api/guides/handle-errors):

- Network failures, timeouts, 5xx, 429 and 403 ``rateLimitExceeded``/``userRateLimitExceeded`` raise
  ``TransientError`` carrying ``Retry-After`` (seconds or an HTTP date) when the server sent one; the
  consumer's delivery middleware retries with backoff and jitter, never sooner than that hint.
- 401 on an API call raises :class:`AccessTokenRejectedError` (the caller refreshes once and retries).
- 404 raises :class:`GmailNotFoundError` (stale ``startHistoryId``, message deleted since notified).
- ``invalid_grant`` from the token endpoint raises :class:`InvalidGrantError` (revoked, password changed):
  the connection needs re-authentication (C6).
- Any other 4xx raises ``PermanentError`` (a bug or a misconfiguration; retrying cannot help).

Every call is one request; nothing here retries on its own. Each is counted by operation and outcome
(`mailsync_provider_calls_total`), and each API call's quota units (`mailsync_quota_used_total`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from mailsync.common.delivery import PermanentError, TransientError
from mailsync.common.metrics import BoundCounter
from mailsync.ingest_gmail.domain.quota import METHOD_UNITS

_RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"})


class AccessTokenRejectedError(Exception):
    """The API answered 401: the access token is expired or revoked."""


class GmailNotFoundError(Exception):
    """The API answered 404."""


class InvalidGrantError(Exception):
    """The token endpoint answered ``invalid_grant``: the grant is dead until the user consents again."""


class OAuthRequestError(Exception):
    """The token endpoint refused the request for another reason (``error`` is Google's code)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


PROVIDER_ERRORS: tuple[type[Exception], ...] = (
    TransientError,
    PermanentError,
    AccessTokenRejectedError,
    GmailNotFoundError,
    InvalidGrantError,
    OAuthRequestError,
)
"""Every error a call of this client raises."""


@dataclass(frozen=True)
class TokenGrant:
    """A token endpoint response."""

    access_token: str
    expires_in: int
    scopes: frozenset[str]
    refresh_token: str | None


@dataclass(frozen=True)
class OAuthClientConfig:
    """Where Google's endpoints are and who mailsync is to them."""

    client_id: str
    client_secret: str
    token_url: str
    api_url: str
    timeout_seconds: float


class GmailClient:
    """One shared aiohttp session, created on first use inside the running loop, closed by :meth:`close`.

    ``calls`` counts calls by operation and outcome, ``quota_units`` the Gmail quota units they spend.
    """

    def __init__(
        self,
        config: OAuthClientConfig,
        *,
        calls: BoundCounter | None = None,
        quota_units: BoundCounter | None = None,
    ) -> None:
        self._config = config
        self._session: aiohttp.ClientSession | None = None
        self._calls = calls
        self._quota_units = quota_units

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._config.timeout_seconds)
            )
        return self._session

    # OAuth token endpoint

    async def exchange_code(self, code: str, redirect_uri: str, code_verifier: str) -> TokenGrant:
        """Exchange an authorization code (PKCE) for tokens."""
        return await self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            }
        )

    async def refresh(self, refresh_token: str) -> TokenGrant:
        """A new access token for a refresh token; raises :class:`InvalidGrantError` when the grant died."""
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def _token(self, form: dict[str, str]) -> TokenGrant:
        form = {**form, "client_id": self._config.client_id, "client_secret": self._config.client_secret}
        try:
            async with self._http().post(self._config.token_url, data=form) as response:
                body: Any = await response.json(content_type=None)
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            self._count("token", "network_error")
            raise TransientError(f"token endpoint unreachable: {type(error).__name__}") from error
        self._count("token", _token_outcome(status, body))
        if status >= 500 or status == 429:
            raise TransientError(f"token endpoint answered {status}", retry_after=retry_after)
        if not isinstance(body, dict):
            raise TransientError(f"token endpoint answered {status} without JSON")
        if status != 200:
            code = str(body.get("error", "unknown"))
            description = str(body.get("error_description", ""))
            if code == "invalid_grant" and form["grant_type"] == "refresh_token":
                raise InvalidGrantError(description)
            raise OAuthRequestError(code, description)
        return TokenGrant(
            access_token=str(body["access_token"]),
            expires_in=int(body.get("expires_in", 3599)),
            scopes=frozenset(str(body.get("scope", "")).split()),
            refresh_token=str(body["refresh_token"]) if body.get("refresh_token") else None,
        )

    # Gmail API (userId is always "me": the token decides the mailbox)

    async def profile(self, access_token: str) -> dict[str, Any]:
        """``users.getProfile``: ``{emailAddress, historyId, messagesTotal, threadsTotal}``."""
        return await self._api("profile", "GET", "/profile", access_token)

    async def watch(self, access_token: str, topic_name: str) -> dict[str, Any]:
        """``users.watch`` on every label: ``{historyId, expiration}`` (strings)."""
        return await self._api("watch", "POST", "/watch", access_token, json={"topicName": topic_name})

    async def stop(self, access_token: str) -> None:
        """``users.stop``."""
        await self._api("stop", "POST", "/stop", access_token)

    async def history(
        self, access_token: str, start_history_id: int, page_token: str | None
    ) -> dict[str, Any]:
        """``users.history.list`` of ``messageAdded`` records after ``start_history_id``, 500 per page."""
        params = {
            "startHistoryId": str(start_history_id),
            "historyTypes": "messageAdded",
            "maxResults": "500",
        }
        if page_token:
            params["pageToken"] = page_token
        return await self._api("history", "GET", "/history", access_token, params=params)

    async def list_messages(self, access_token: str, query: str, page_token: str | None) -> dict[str, Any]:
        """``users.messages.list`` with a search query (newest first), 500 per page."""
        params = {"q": query, "maxResults": "500"}
        if page_token:
            params["pageToken"] = page_token
        return await self._api("messages.list", "GET", "/messages", access_token, params=params)

    async def get_raw(self, access_token: str, message_id: str) -> tuple[dict[str, Any], bytes]:
        """``users.messages.get?format=raw``: the resource (labels, dates, snippet) and the RFC 5322 bytes."""
        resource = await self._api(
            "messages.get", "GET", f"/messages/{message_id}", access_token, params={"format": "raw"}
        )
        raw = str(resource.get("raw", ""))
        return resource, base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))

    async def _api(
        self,
        operation: str,
        method: str,
        path: str,
        access_token: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        url = f"{self._config.api_url.rstrip('/')}/gmail/v1/users/me{path}"
        headers = {"Authorization": f"Bearer {access_token}"}
        if self._quota_units is not None:
            self._quota_units.inc(METHOD_UNITS.get(operation, 0))
        try:
            async with self._http().request(
                method, url, params=params, json=json, headers=headers
            ) as response:
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"))
                body: Any = await response.json(content_type=None) if status != 204 else {}
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            self._count(operation, "network_error")
            raise TransientError(f"Gmail unreachable: {type(error).__name__}") from error
        reason = _reason(body) if status >= 300 else ""
        self._count(operation, _api_outcome(status, reason))
        if status < 300:
            return body if isinstance(body, dict) else {}
        if status == 401:
            raise AccessTokenRejectedError(reason)
        if status == 404:
            raise GmailNotFoundError(reason)
        if status >= 500 or status == 429 or (status == 403 and reason in _RATE_LIMIT_REASONS):
            raise TransientError(f"Gmail answered {status} {reason}", retry_after=retry_after)
        raise PermanentError(f"gmail_http_{status}", f"{method} {path}: {reason}")

    def _count(self, operation: str, outcome: str) -> None:
        if self._calls is not None:
            self._calls.labels(operation, outcome).inc()


def _api_outcome(status: int, reason: str) -> str:
    if status < 300:
        return "ok"
    if status == 401:
        return "unauthorized"
    if status == 404:
        return "not_found"
    if status == 429 or (status == 403 and reason in _RATE_LIMIT_REASONS):
        return "rate_limited"
    return "server_error" if status >= 500 else "client_error"


def _token_outcome(status: int, body: Any) -> str:
    if status == 200:
        return "ok"
    if isinstance(body, dict) and body.get("error") == "invalid_grant":
        return "invalid_grant"
    return _api_outcome(status, "")


def _reason(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        errors = body["error"].get("errors") or [{}]
        return str(errors[0].get("reason") or body["error"].get("status") or "")
    return ""


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
