"""Access tokens for provider calls: refreshed before expiry, and the C6 transition when a grant dies.

``invalid_grant`` on refresh (revoked access, changed password) moves the connection ``active`` ->
``needs_reauth`` exactly once (an atomic status transition), publishes ``ConnectionChanged(reauth_required)``
and raises :class:`ReauthRequiredError`; from then on no provider call is made for the connection until the
user re-authenticates.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from mailsync.common.contracts import CONNECTIONS_CHANGED, ConnectionChange, ConnectionChanged
from mailsync.common.kafka import EventPublisher
from mailsync.common.token_cipher import TokenCipher
from mailsync.ingest_gmail.adapters.connection_store import ConnectionRecord, ConnectionStore
from mailsync.ingest_gmail.adapters.gmail_client import GmailClient, InvalidGrantError
from mailsync.ingest_gmail.adapters.mailbox_store import MailboxStore
from mailsync.ingest_gmail.domain.connections import Connection, needs_refresh
from mailsync.ingest_gmail.metrics import IngestMetrics

Clock = Callable[[], datetime]


class ReauthRequiredError(Exception):
    """The connection's grant is dead (C6); no provider call may be made for it."""


class Credentials:
    """Hands out valid access tokens for connections."""

    def __init__(
        self,
        *,
        connections: ConnectionStore,
        mailboxes: MailboxStore,
        gmail: GmailClient,
        cipher: TokenCipher,
        publisher: EventPublisher,
        metrics: IngestMetrics,
        refresh_margin: timedelta,
        now: Clock,
    ) -> None:
        self._connections = connections
        self._mailboxes = mailboxes
        self._gmail = gmail
        self._cipher = cipher
        self._publisher = publisher
        self._metrics = metrics
        self._margin = refresh_margin
        self._now = now

    async def access_token(
        self, record: ConnectionRecord, *, force_refresh: bool = False
    ) -> tuple[str, datetime]:
        """A valid access token and its expiry; refreshes when it expires within the margin (or forced).

        Raises ``ReauthRequiredError`` (C6) or ``TransientError`` (token endpoint unavailable).
        """
        connection = record.connection
        if connection.status != "active" or record.refresh_token is None:
            raise ReauthRequiredError(connection.connection_id)
        now = self._now()
        if (
            not force_refresh
            and record.access_token is not None
            and record.access_expires_at is not None
            and not needs_refresh(record.access_expires_at, now, self._margin)
        ):
            return self._cipher.decrypt(record.access_token, bound_to=connection.connection_id), (
                record.access_expires_at
            )
        refresh_token = self._cipher.decrypt(record.refresh_token, bound_to=connection.connection_id)
        try:
            grant = await self._gmail.refresh(refresh_token)
        except InvalidGrantError:
            await self.require_reauth(connection, reason="invalid_grant")
            raise ReauthRequiredError(connection.connection_id) from None
        expires_at = _ms(now + timedelta(seconds=grant.expires_in))
        await self._connections.save_access_token(
            connection.connection_id,
            self._cipher.encrypt(grant.access_token, bound_to=connection.connection_id),
            expires_at,
            # Re-sealed under the current key, so records migrate as keys rotate.
            self._cipher.encrypt(grant.refresh_token or refresh_token, bound_to=connection.connection_id),
        )
        return grant.access_token, expires_at

    async def require_reauth(self, connection: Connection, *, reason: str) -> None:
        """C6: ``active`` -> ``needs_reauth`` once, with a ``reauth_required`` event."""
        changed = await self._connections.transition(
            connection.connection_id,
            from_status="active",
            to_status="needs_reauth",
            reason=reason,
            now=self._now(),
        )
        if changed is not None:
            self._metrics.reauth_required.inc()
            await self.publish_change(changed, "reauth_required", reason=reason)

    async def publish_change(
        self,
        connection: Connection,
        change: ConnectionChange,
        *,
        reason: str | None = None,
        previous: Connection | None = None,
    ) -> None:
        """Publish the connection's full state after ``change``."""
        mailbox = await self._mailboxes.get(connection.mailbox_id)
        await self._publisher.publish(
            CONNECTIONS_CHANGED,
            ConnectionChanged(
                connection_id=connection.connection_id,
                subaccount_id=connection.subaccount_id,
                user_id=connection.user_id,
                provider="gmail",
                mailbox_id=connection.mailbox_id,
                email_address=connection.email_address,
                status=connection.status,
                change=change,
                previous_mailbox_id=previous.mailbox_id if previous else None,
                previous_email_address=previous.email_address if previous else None,
                connected_at=connection.connected_at,
                last_synced_at=mailbox.last_synced_at if mailbox else None,
                reason=reason,
            ),
        )


def _ms(value: datetime) -> datetime:
    """Truncated to milliseconds, MongoDB's resolution, so stored and computed values compare equal."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def utc_now_ms() -> datetime:
    """The current UTC time at MongoDB's resolution."""
    return _ms(datetime.now(UTC))
