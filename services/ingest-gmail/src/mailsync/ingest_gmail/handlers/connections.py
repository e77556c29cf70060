"""Connection lifecycle (C1-C7): OAuth connect, update email, re-authentication, disconnect, status, and
access tokens for the sender.

OAuth: authorization-code flow with ``access_type=offline``, ``prompt=consent`` (Google only returns a
refresh token on consent), ``state`` (random, single use, hashed at rest, expiring) and PKCE S256 (the
verifier sealed at rest). A grant lacking a required scope is refused (C2) and no connection is created.

Every change publishes one ``ConnectionChanged`` carrying the full state. Watches: a connection's first grant
for a mailbox starts ``users.watch``; a failure to watch does not fail the connection (the maintenance loop
retries it soon).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from mailsync.common.contracts import MAILBOX_CHANGED, ConnectionChange, MailboxChanged
from mailsync.common.http_api import ApiError
from mailsync.common.kafka import EventPublisher
from mailsync.common.token_cipher import TokenCipher
from mailsync.ingest_gmail.adapters.connection_store import (
    ConnectionRecord,
    ConnectionStore,
    PendingAuthorization,
)
from mailsync.ingest_gmail.adapters.gmail_client import PROVIDER_ERRORS, GmailClient, OAuthRequestError
from mailsync.ingest_gmail.adapters.mailbox_store import MailboxStore
from mailsync.ingest_gmail.domain.connections import (
    DAILY_SEND_LIMITS,
    REQUESTED_SCOPES,
    Connection,
    ConnectPurpose,
    grant_outcome,
    mailbox_id_for,
    missing_scopes,
    next_watch_renewal,
)
from mailsync.ingest_gmail.handlers.credentials import Clock, Credentials, ReauthRequiredError
from mailsync.ingest_gmail.metrics import IngestMetrics

logger = logging.getLogger(__name__)


class LifecycleError(ApiError):
    """A refused lifecycle request (HTTP `status`, stable `code`, human `message`, extra fields)."""


@dataclass(frozen=True)
class OAuthConfig:
    """Static OAuth parameters."""

    client_id: str
    auth_url: str
    redirect_uri: str
    state_ttl: timedelta
    default_daily_send_limit: int
    watch_topic: str
    watch_interval: timedelta
    watch_spread: timedelta


@dataclass(frozen=True)
class AccessGrant:
    """What the sender receives (the internal access-token API)."""

    connection: Connection
    access_token: str
    expires_at: datetime


class ConnectionManager:
    """The lifecycle use cases; each is safe to retry (state transitions are atomic and conditional)."""

    def __init__(
        self,
        *,
        connections: ConnectionStore,
        mailboxes: MailboxStore,
        credentials: Credentials,
        gmail: GmailClient,
        cipher: TokenCipher,
        publisher: EventPublisher,
        metrics: IngestMetrics,
        config: OAuthConfig,
        now: Clock,
    ) -> None:
        self._connections = connections
        self._mailboxes = mailboxes
        self._credentials = credentials
        self._gmail = gmail
        self._cipher = cipher
        self._publisher = publisher
        self._metrics = metrics
        self._config = config
        self._now = now

    async def start_authorization(
        self,
        *,
        subaccount_id: str,
        user_id: str,
        purpose: ConnectPurpose = "connect",
        connection_id: str | None = None,
        daily_send_limit: int | None = None,
        login_hint: str | None = None,
    ) -> str:
        """The Google consent URL to send the user to."""
        if not self._cipher.configured:
            raise LifecycleError(503, "not_configured", "token encryption keys are not configured")
        if daily_send_limit is not None and daily_send_limit not in DAILY_SEND_LIMITS:
            raise LifecycleError(400, "invalid_daily_send_limit", "daily_send_limit must be 500 or 2000")
        state = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        await self._connections.save_authorization(
            state,
            PendingAuthorization(
                subaccount_id=subaccount_id,
                user_id=user_id,
                purpose=purpose,
                connection_id=connection_id,
                daily_send_limit=daily_send_limit,
                code_verifier=self._cipher.encrypt(verifier, bound_to=state),
                expires_at=self._now() + self._config.state_ttl,
            ),
        )
        params = {
            "client_id": self._config.client_id,
            "redirect_uri": self._config.redirect_uri,
            "response_type": "code",
            "scope": " ".join(REQUESTED_SCOPES),
            "access_type": "offline",
            "prompt": "consent",
            "include_granted_scopes": "false",
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if login_hint:
            params["login_hint"] = login_hint
        return f"{self._config.auth_url}?{urlencode(params)}"

    async def start_update_email(self, connection_id: str, login_hint: str | None) -> str:
        """C4: a consent URL whose grant switches the connection to another mailbox."""
        record = await self._require(connection_id)
        if record.connection.status == "disconnected":
            raise LifecycleError(410, "connection_disconnected", "connect again instead")
        return await self.start_authorization(
            subaccount_id=record.connection.subaccount_id,
            user_id=record.connection.user_id,
            purpose="update_email",
            connection_id=connection_id,
            login_hint=login_hint,
        )

    async def complete_authorization(
        self, *, state: str | None, code: str | None, error: str | None
    ) -> tuple[Connection, str]:
        """The OAuth callback: returns the connection and the change made.

        Refused (``LifecycleError``): unknown/used/expired ``state`` (400), consent denied (400), a code the
        token endpoint rejects (400), a grant missing a required scope (403, nothing stored).
        """
        pending = await self._connections.take_authorization(state) if state else None
        if pending is None or state is None:
            raise LifecycleError(400, "invalid_state", "unknown, expired or already used OAuth state")
        if pending.expires_at <= self._now():
            raise LifecycleError(400, "invalid_state", "the OAuth flow expired; start again")
        if error:
            raise LifecycleError(400, "access_denied" if error == "access_denied" else "oauth_error", error)
        if not code:
            raise LifecycleError(400, "missing_code", "the callback carries no authorization code")
        verifier = self._cipher.decrypt(pending.code_verifier, bound_to=state)
        try:
            grant = await self._gmail.exchange_code(code, self._config.redirect_uri, verifier)
        except OAuthRequestError as failure:
            raise LifecycleError(400, "code_exchange_failed", failure.error) from failure
        missing = missing_scopes(grant.scopes)
        if missing:
            raise LifecycleError(
                403,
                "missing_scopes",
                "Gmail access was only partly granted: allow every requested permission and connect again",
                missing_scopes=list(missing),
            )
        if grant.refresh_token is None:
            raise LifecycleError(400, "no_refresh_token", "Google returned no refresh token; connect again")
        profile = await self._gmail.profile(grant.access_token)
        email = str(profile["emailAddress"])
        mailbox_id = mailbox_id_for(email)
        existing = await self._connections.find_for_pair(pending.subaccount_id, pending.user_id)
        if pending.purpose == "update_email" and (
            existing is None or existing.connection.connection_id != pending.connection_id
        ):
            raise LifecycleError(409, "connection_changed", "the connection changed during the flow")
        outcome = grant_outcome(existing.connection if existing else None, mailbox_id)
        now = self._now()
        previous = existing.connection if existing else None
        if outcome.change == "mailbox_replaced" and existing is not None:
            await self._release_mailbox(existing)
        await self._start_mailbox(
            mailbox_id, email, int(profile["historyId"]), existing=existing, change=outcome.change, now=now
        )
        connection = await self._connections.save_grant(
            subaccount_id=pending.subaccount_id,
            user_id=pending.user_id,
            mailbox_id=mailbox_id,
            email_address=email,
            connected_at=now if outcome.reset_connected_at or previous is None else previous.connected_at,
            daily_send_limit=pending.daily_send_limit
            or (previous.daily_send_limit if previous else self._config.default_daily_send_limit),
            scopes=grant.scopes,
            seal=lambda plaintext, connection_id: self._cipher.encrypt(plaintext, bound_to=connection_id),
            refresh_token=grant.refresh_token,
            access_token=grant.access_token,
            access_expires_at=now + timedelta(seconds=grant.expires_in),
            now=now,
        )
        await self.watch(mailbox_id, grant.access_token)
        await self._credentials.publish_change(
            connection,
            outcome.change,
            previous=previous if outcome.change == "mailbox_replaced" else None,
            reason="user_request",
        )
        if outcome.change == "reauthenticated":
            await self._publish_catch_up(connection)
        return connection, outcome.change

    async def disconnect(self, connection_id: str) -> Connection:
        """C5: stop syncing now; keep everything synced (D1). Idempotent."""
        record = await self._require(connection_id)
        if record.connection.status == "disconnected":
            return record.connection
        if record.connection.status == "active":
            await self._release_mailbox(record)
        changed = await self._connections.transition(
            connection_id,
            from_status=record.connection.status,
            to_status="disconnected",
            reason="user_request",
            now=self._now(),
            drop_tokens=True,
        )
        if changed is None:  # changed concurrently: decide again on the new state
            return await self.disconnect(connection_id)
        await self._credentials.publish_change(changed, "disconnected", reason="user_request")
        return changed

    async def status(self, connection_id: str) -> tuple[Connection, datetime | None]:
        """C3: the connection and when its mailbox last synced."""
        record = await self._require(connection_id)
        mailbox = await self._mailboxes.get(record.connection.mailbox_id)
        return record.connection, mailbox.last_synced_at if mailbox else None

    async def set_daily_send_limit(self, connection_id: str, limit: int) -> Connection:
        """S3: change a connection's daily send limit (500 consumer, 2000 Workspace)."""
        if limit not in DAILY_SEND_LIMITS:
            raise LifecycleError(400, "invalid_daily_send_limit", "daily_send_limit must be 500 or 2000")
        connection = await self._connections.set_daily_send_limit(connection_id, limit)
        if connection is None:
            raise LifecycleError(404, "unknown_connection", connection_id)
        return connection

    async def access_token(self, connection_id: str) -> AccessGrant:
        """The internal API for the sender: a valid access token (refreshed when close to expiry).

        404 unknown, 410 disconnected, 409 needs re-authentication (also when the refresh now fails with
        ``invalid_grant``, which moves the connection to ``needs_reauth``); ``TransientError`` when Google's
        token endpoint is unavailable.
        """
        record = await self._require(connection_id)
        status = record.connection.status
        if status == "disconnected":
            raise LifecycleError(410, "connection_disconnected", connection_id)
        if status == "needs_reauth":
            raise LifecycleError(409, "connection_needs_reauth", connection_id)
        try:
            token, expires_at = await self._credentials.access_token(record)
        except ReauthRequiredError:
            raise LifecycleError(409, "connection_needs_reauth", connection_id) from None
        return AccessGrant(connection=record.connection, access_token=token, expires_at=expires_at)

    async def watch(self, mailbox_id: str, access_token: str) -> bool:
        """``users.watch`` the mailbox and schedule its renewal; on failure, retry at the next maintenance."""
        now = self._now()
        try:
            response = await self._gmail.watch(access_token, self._config.watch_topic)
        except PROVIDER_ERRORS:  # the connection stands; the maintenance loop retries the watch
            logger.warning("users.watch failed; will retry", extra={"mailbox_id": mailbox_id}, exc_info=True)
            self._metrics.watch_calls.labels("failed").inc()
            await self._mailboxes.set_watch(mailbox_id, None, now)
            return False
        self._metrics.watch_calls.labels("ok").inc()
        expires_at = datetime.fromtimestamp(int(response["expiration"]) / 1000, tz=now.tzinfo)
        renew_at = next_watch_renewal(mailbox_id, now, self._config.watch_interval, self._config.watch_spread)
        await self._mailboxes.set_watch(mailbox_id, expires_at, renew_at)
        return True

    async def _require(self, connection_id: str) -> ConnectionRecord:
        record = await self._connections.get(connection_id)
        if record is None:
            raise LifecycleError(404, "unknown_connection", connection_id)
        return record

    async def _start_mailbox(
        self,
        mailbox_id: str,
        email: str,
        history_id: int,
        *,
        existing: ConnectionRecord | None,
        change: ConnectionChange,
        now: datetime,
    ) -> None:
        mailbox = await self._mailboxes.get(mailbox_id)
        if mailbox is not None and change == "reauthenticated":
            return  # C6: resume from the stored cursor
        readers = await self._connections.count_active_for_mailbox(mailbox_id)
        if existing is not None and existing.connection.mailbox_id == mailbox_id:
            readers -= existing.connection.status == "active"
        if mailbox is None or readers == 0:
            await self._mailboxes.start(mailbox_id, email, history_id, now)

    async def _release_mailbox(self, record: ConnectionRecord) -> None:
        """Stop the mailbox's watch when ``record`` is its last active reader (best effort: watches lapse)."""
        mailbox_id = record.connection.mailbox_id
        if await self._connections.count_active_for_mailbox(mailbox_id) > 1:
            return
        await self._mailboxes.set_watch(mailbox_id, None, None)
        try:
            token, _ = await self._credentials.access_token(record)
            await self._gmail.stop(token)
        except ReauthRequiredError:
            logger.info("no grant to call users.stop with", extra={"mailbox_id": mailbox_id})
        except PROVIDER_ERRORS:  # the watch lapses within 7 days anyway
            logger.warning("users.stop failed", extra={"mailbox_id": mailbox_id}, exc_info=True)

    async def _publish_catch_up(self, connection: Connection) -> None:
        await self._publisher.publish(
            MAILBOX_CHANGED,
            MailboxChanged(
                provider="gmail",
                mailbox_id=connection.mailbox_id,
                email_address=connection.email_address,
                source="reauthenticated",
                received_at=self._now(),
            ),
        )
        self._metrics.hints_published.labels("reauthenticated").inc()
