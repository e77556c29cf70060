"""Access tokens of a connection, from its encrypted MSAL token cache (C6).

The MSAL cache is stored sealed (AES-GCM, see `adapters.token_cipher`); it is opened only here, refreshed by
MSAL off the event loop, and sealed again when MSAL changed it. Access tokens are kept in process memory until
`refresh_margin` before they expire, so hot paths don't touch MSAL.

A refresh answered `invalid_grant` (AADSTS50173 password changed or sessions revoked, AADSTS700082 expired,
AADSTS70008...) moves the connection `active` → `needs_reauth` exactly once (a conditional update), publishes
`ConnectionChanged(change="reauth_required", reason="invalid_grant")`, and raises `NeedsReauthError`: no
provider call is made for that connection until the user signs in again. Other failures are transient.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mailsync.common.contracts import CONNECTIONS_CHANGED, ConnectionChange, ConnectionChanged
from mailsync.common.delivery import TransientError
from mailsync.common.kafka import EventPublisher
from mailsync.common.token_cipher import TokenCipher
from mailsync.ingest_outlook.adapters.connection_store import ConnectionStore
from mailsync.ingest_outlook.adapters.graph_client import TokenSource
from mailsync.ingest_outlook.adapters.identity import Identity
from mailsync.ingest_outlook.domain.connections import Connection, is_invalid_grant, status_after
from mailsync.ingest_outlook.metrics import IngestMetrics

logger = logging.getLogger(__name__)


class NeedsReauthError(Exception):
    """The connection has no usable grant; only the user signing in again helps (C6)."""


class NotActiveError(Exception):
    """The connection is not active (disconnected, or awaiting re-authentication)."""


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_at: datetime


@dataclass
class Credentials:
    """Access tokens per connection, and the connection-changed events of lifecycle changes."""

    connections: ConnectionStore
    identity: Identity
    cipher: TokenCipher
    publisher: EventPublisher
    metrics: IngestMetrics
    refresh_margin: timedelta = timedelta(minutes=5)
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    _tokens: dict[str, AccessToken] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def seal(self, connection_id: str, serialized_cache: str) -> dict[str, Any]:
        return self.cipher.encrypt(serialized_cache, bound_to=connection_id)

    def forget(self, connection_id: str) -> None:
        """Drop the in-memory access token (after a disconnect or a new sign-in)."""
        self._tokens.pop(connection_id, None)

    def remember(self, connection_id: str, result: dict[str, Any]) -> None:
        """Keep the access token of a fresh token response."""
        self._tokens[connection_id] = AccessToken(
            result["access_token"], self.now() + timedelta(seconds=int(result.get("expires_in", 0)))
        )

    async def access_token(self, connection: Connection, *, force_refresh: bool = False) -> AccessToken:
        """A valid access token; raises `NeedsReauthError`, `NotActiveError` or `TransientError`.

        Concurrent callers for one connection share one refresh (a per-connection lock in this process).
        """
        cached = self._tokens.get(connection.connection_id)
        if not force_refresh and cached and cached.expires_at - self.refresh_margin > self.now():
            return cached
        lock = self._locks.setdefault(connection.connection_id, asyncio.Lock())
        async with lock:
            fresh = self._tokens.get(connection.connection_id)
            if (
                fresh is not None
                and fresh is not cached
                and fresh.expires_at - self.refresh_margin > self.now()
            ):
                return fresh
            return await self._refresh(connection, force_refresh=force_refresh)

    async def _refresh(self, connection: Connection, *, force_refresh: bool) -> AccessToken:
        sealed = await self.connections.sealed_cache(connection.connection_id)
        if sealed is None:
            raise NotActiveError(connection.connection_id)
        sealed_cache, home_account_id = sealed
        serialized = self.cipher.decrypt(sealed_cache, bound_to=connection.connection_id)
        outcome = await self.identity.acquire(serialized, home_account_id, force_refresh=force_refresh)
        result = outcome.result
        if "access_token" not in result:
            if is_invalid_grant(result):
                await self.mark_needs_reauth(connection, "invalid_grant")
                raise NeedsReauthError(connection.connection_id)
            raise TransientError(f"token refresh failed: {result.get('error', 'unknown')}")
        if outcome.serialized_cache is not None:
            await self.connections.store_cache(
                connection.connection_id, self.seal(connection.connection_id, outcome.serialized_cache)
            )
        self.remember(connection.connection_id, result)
        return self._tokens[connection.connection_id]

    def token_source(self, connection: Connection) -> TokenSource:
        """A `TokenSource` for Graph calls made with this connection's grant."""

        async def token(force: bool) -> str:
            return (await self.access_token(connection, force_refresh=force)).token

        return token

    async def mark_needs_reauth(self, connection: Connection, reason: str) -> None:
        """`active` → `needs_reauth`, publishing the change once (C6)."""
        self.forget(connection.connection_id)
        changed = await self.connections.transition(
            connection.connection_id,
            from_status="active",
            to_status="needs_reauth",
            reason=reason,
            at=self.now(),
        )
        if changed is not None:
            self.metrics.reauth_required.inc()
            logger.warning(
                "connection needs re-authentication",
                extra={"connection_id": connection.connection_id, "mailbox_id": connection.mailbox_id},
            )
            await self.publish_change(changed, "reauth_required", reason=reason)

    async def publish_change(
        self,
        connection: Connection,
        change: ConnectionChange,
        *,
        reason: str | None = None,
        previous: Connection | None = None,
    ) -> None:
        """Publish the connection's full state after `change`."""
        await self.publisher.publish(
            CONNECTIONS_CHANGED,
            ConnectionChanged(
                connection_id=connection.connection_id,
                subaccount_id=connection.subaccount_id,
                user_id=connection.user_id,
                provider="outlook",
                mailbox_id=connection.mailbox_id,
                email_address=connection.email_address,
                status=status_after(change),
                change=change,
                previous_mailbox_id=previous.mailbox_id if previous else None,
                previous_email_address=previous.email_address if previous else None,
                connected_at=connection.connected_at,
                last_synced_at=await self.connections.last_synced_at(connection.connection_id),
                reason=reason,
            ),
        )


def flow_json(flow: dict[str, Any]) -> str:
    """An MSAL flow as text for sealing."""
    return json.dumps(flow)
