"""Short-lived access tokens from the ingest service that owns a connection (the sender holds no refresh
tokens).

Contract (served by ingest-gmail / ingest-outlook):
`POST {ingest}/internal/v1/connections/{connection_id}/access-token`, `Authorization: Bearer <internal token>`

* 200 `{"connection_id", "provider", "mailbox_id", "email_address", "status": "active", "access_token",
  "expires_at": "<ISO 8601 UTC>", "daily_send_limit": 500|2000}`
* 404 `{"error": "unknown_connection"}`, 410 `{"error": "connection_disconnected"}` -> `ConnectionGoneError`
* 409 `{"error": "connection_needs_reauth"}` (the refresh token failed with `invalid_grant`) ->
  `ConnectionNeedsReauthError`
* 401 (wrong internal token: a deployment error), 5xx, timeouts, network errors -> `TransientError`, so the
  command waits (and Kafka redelivers it) instead of failing.

Tokens are cached per connection and mailbox until a minute before they expire (a mailbox switch, C4,
bypasses the cache); `forget` drops one the provider refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import aiohttp
from pydantic import BaseModel, ConfigDict, ValidationError

from mailsync.common.contracts import Provider
from mailsync.common.delivery import TransientError
from mailsync.sender.adapters.http_session import HttpSession

_EXPIRY_MARGIN = timedelta(seconds=60)


@dataclass(frozen=True)
class AccessGrant:
    """A usable access token for one connection's current mailbox, and that connection's send limit."""

    connection_id: str
    provider: Provider
    mailbox_id: str
    email_address: str
    access_token: str
    expires_at: datetime
    daily_send_limit: int


class ConnectionNeedsReauthError(Exception):
    """The connection's grant failed (`invalid_grant`); the user must re-authenticate (C6)."""


class ConnectionGoneError(Exception):
    """The connection is unknown or disconnected (C5)."""


class AccessTokens(Protocol):
    """Where the sender gets access tokens."""

    async def grant(self, connection_id: str, provider: Provider, mailbox_id: str) -> AccessGrant:
        """A valid token for `connection_id`, whose current mailbox the caller believes is `mailbox_id`
        (raises `ConnectionNeedsReauthError`, `ConnectionGoneError`, `TransientError`)."""
        ...

    def forget(self, connection_id: str) -> None:
        """Drop a cached token the provider refused."""
        ...


class _GrantBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    connection_id: str
    provider: Provider
    mailbox_id: str
    email_address: str
    access_token: str
    expires_at: datetime
    daily_send_limit: int


class IngestAccessTokens:
    """`AccessTokens` over the ingest services' internal HTTP API."""

    def __init__(
        self,
        http: HttpSession,
        *,
        base_urls: dict[Provider, str],
        internal_token: str,
        timeout_seconds: float = 10.0,
    ) -> None:
        self._http = http
        self._base_urls = base_urls
        self._headers = {"Authorization": f"Bearer {internal_token}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._cache: dict[str, AccessGrant] = {}

    async def grant(self, connection_id: str, provider: Provider, mailbox_id: str) -> AccessGrant:
        cached = self._cache.get(connection_id)
        if (
            cached is not None
            and cached.mailbox_id == mailbox_id  # else the mailbox was switched (C4): ask again
            and cached.expires_at - _EXPIRY_MARGIN > datetime.now(UTC)
        ):
            return cached
        base_url = self._base_urls.get(provider)
        if not base_url:
            raise TransientError(f"no ingest service URL is configured for {provider}")
        url = f"{base_url.rstrip('/')}/internal/v1/connections/{connection_id}/access-token"
        try:
            async with self._http.session.post(url, headers=self._headers, timeout=self._timeout) as response:
                status = response.status
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise TransientError(f"token API unreachable: {error!r}") from error
        if status == 409:
            raise ConnectionNeedsReauthError(connection_id)
        if status in {404, 410}:
            raise ConnectionGoneError(connection_id)
        if status != 200:
            raise TransientError(f"token API answered {status} for connection {connection_id}")
        try:
            parsed = _GrantBody.model_validate_json(body)
        except ValidationError as error:
            raise TransientError(f"token API answered an unreadable grant: {error}") from error
        grant = AccessGrant(
            connection_id=parsed.connection_id,
            provider=parsed.provider,
            mailbox_id=parsed.mailbox_id,
            email_address=parsed.email_address,
            access_token=parsed.access_token,
            expires_at=parsed.expires_at.astimezone(UTC),
            daily_send_limit=parsed.daily_send_limit,
        )
        self._cache[connection_id] = grant
        return grant

    def forget(self, connection_id: str) -> None:
        self._cache.pop(connection_id, None)
