"""The connection lifecycle (C1-C7): sign-in (MSAL auth-code flow with PKCE), update email, disconnect,
status, and access tokens for the sender.

- **Start**: MSAL's `initiate_auth_code_flow` makes `state`, the PKCE verifier and the nonce. The flow is
  stored sealed under the SHA-256 of `state`, for `oauth_state_ttl` and one use; the user's browser goes to
  the returned `authorization_url`.
- **Callback**: the flow is taken (consumed) and redeemed with `acquire_token_by_auth_code_flow` (checks
  state, PKCE and nonce). A grant lacking a required scope is refused (403 `missing_scopes`) and nothing is
  kept (C2). The signed-in Graph user (`oid`) names the mailbox `outlook:<oid>`. `domain.connections`
  decides the change: `connected`, `mailbox_replaced` (C4) or `reauthenticated` (C6). The MSAL cache is
  sealed and stored, the change published, the mailbox subscribed (Graph validates our endpoints during the
  create call), and a hint published so the worker takes the first delta round (or catches up).
- **Disconnect** (C5): subscriptions deleted when no other connection reads the mailbox, token cache erased,
  status `disconnected`, change published; nothing synced is deleted (D1). Idempotent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mailsync.common.contracts import MAILBOX_CHANGED, MailboxChanged, MailboxChangeSource
from mailsync.common.delivery import TransientError
from mailsync.common.http_api import ApiError
from mailsync.common.kafka import EventPublisher
from mailsync.common.token_cipher import TokenCipher, TokenKeyError
from mailsync.ingest_outlook.adapters.connection_store import ConnectionStore
from mailsync.ingest_outlook.adapters.graph_client import GraphError
from mailsync.ingest_outlook.adapters.identity import Identity, granted_scopes
from mailsync.ingest_outlook.domain.connections import (
    Connection,
    FlowPurpose,
    SignIn,
    change_after_sign_in,
    is_invalid_grant,
    missing_scopes,
)
from mailsync.ingest_outlook.handlers.credentials import (
    AccessToken,
    Credentials,
    NeedsReauthError,
    NotActiveError,
)
from mailsync.ingest_outlook.handlers.subscriptions import Subscriptions

logger = logging.getLogger(__name__)


class LifecycleError(ApiError):
    """A refused lifecycle request (HTTP `status`, stable `code`, human `message`, extra fields)."""


@dataclass(frozen=True)
class OAuthConfig:
    redirect_uri: str
    state_ttl: timedelta


@dataclass(frozen=True)
class Grant:
    """What the sender gets: the connection and a valid access token."""

    connection: Connection
    token: AccessToken


@dataclass
class ConnectionManager:
    """Use cases of the lifecycle API."""

    connections: ConnectionStore
    identity: Identity
    cipher: TokenCipher
    credentials: Credentials
    subscriptions: Subscriptions
    publisher: EventPublisher
    config: OAuthConfig
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def start_authorization(self, subaccount_id: str, user_id: str, login_hint: str | None) -> str:
        """Begin connecting (or re-authenticating) the pair's Outlook mailbox; returns the sign-in URL."""
        return await self._start("connect", {"subaccount_id": subaccount_id, "user_id": user_id}, login_hint)

    async def start_update_email(self, connection_id: str, login_hint: str | None) -> str:
        """C4: begin switching a connection to another mailbox; returns the sign-in URL."""
        connection = await self._existing(connection_id)
        if connection.status == "disconnected":
            raise LifecycleError(410, "connection_disconnected", "the connection was disconnected")
        return await self._start(
            "update_email",
            {
                "subaccount_id": connection.subaccount_id,
                "user_id": connection.user_id,
                "connection_id": connection_id,
            },
            login_hint,
        )

    async def _start(self, purpose: FlowPurpose, pair: dict[str, str], login_hint: str | None) -> str:
        if not self.identity.configured or not self.cipher.configured:
            raise LifecycleError(
                503, "not_configured", "the Outlook app or the token keys are not configured"
            )
        flow = await self.identity.start_flow(self.config.redirect_uri, login_hint)
        state_hash = _digest(flow["state"])
        await self.connections.save_flow(
            state_hash,
            {
                **pair,
                "purpose": purpose,
                "flow": self.cipher.encrypt(json.dumps(flow), bound_to=state_hash),
                "expires_at": self.now() + self.config.state_ttl,
            },
        )
        return str(flow["auth_uri"])

    async def complete_authorization(self, query: dict[str, str]) -> tuple[Connection, str]:
        """Finish a sign-in from the redirect's query; returns the connection and the change made."""
        state = query.get("state")
        if not state:
            raise LifecycleError(400, "invalid_state", "the redirect carries no state")
        state_hash = _digest(state)
        stored = await self.connections.take_flow(state_hash)
        if stored is None or stored["expires_at"] <= self.now():
            raise LifecycleError(400, "invalid_state", "unknown, used or expired sign-in")
        if "error" in query:
            raise LifecycleError(
                400,
                "access_denied",
                query.get("error_description", query["error"])[:500],
                provider_error=query["error"],
            )
        try:
            flow = json.loads(self.cipher.decrypt(stored["flow"], bound_to=state_hash))
        except TokenKeyError as error:
            raise LifecycleError(400, "invalid_state", "the sign-in can no longer be read") from error
        redeemed = await self.identity.redeem(flow, dict(query))
        result = redeemed.result
        if "access_token" not in result or redeemed.serialized_cache is None or not redeemed.home_account_id:
            if is_invalid_grant(result) or result.get("error") in {"invalid_request", "invalid_client"}:
                raise LifecycleError(
                    400, "code_exchange_failed", str(result.get("error_description", ""))[:500]
                )
            raise LifecycleError(503, "provider_unavailable", "the identity platform did not answer")
        missing = missing_scopes(granted_scopes(result))
        if missing or not result.get("refresh_token"):
            raise LifecycleError(
                403,
                "missing_scopes",
                "the grant lacks required permissions; sign in again and accept all of them",
                missing_scopes=missing or ["offline_access"],
            )
        claims = result.get("id_token_claims") or {}
        oid, email = claims.get("oid"), claims.get("preferred_username") or claims.get("email")
        if not isinstance(oid, str) or not isinstance(email, str):
            raise LifecycleError(400, "code_exchange_failed", "the sign-in did not identify the mailbox user")
        return await self._apply_sign_in(
            stored,
            SignIn(graph_user_id=oid, email_address=email),
            redeemed.serialized_cache,
            redeemed.home_account_id,
            result,
        )

    async def _apply_sign_in(
        self,
        stored: dict[str, Any],
        sign_in: SignIn,
        serialized_cache: str,
        home_account_id: str,
        result: dict[str, Any],
    ) -> tuple[Connection, str]:
        existing = await self.connections.for_pair(stored["subaccount_id"], stored["user_id"])
        if stored.get("connection_id") and (
            existing is None or existing.connection_id != stored["connection_id"]
        ):
            raise LifecycleError(409, "connection_changed", "the connection changed while signing in")
        change = change_after_sign_in(existing, sign_in, stored["purpose"])
        now = self.now()
        connection = Connection(
            connection_id=existing.connection_id if existing else f"oconn_{secrets.token_hex(12)}",
            subaccount_id=stored["subaccount_id"],
            user_id=stored["user_id"],
            mailbox_id=sign_in.mailbox_id,
            graph_user_id=sign_in.graph_user_id,
            email_address=sign_in.email_address,
            status="active",
            connected_at=existing.connected_at if existing and change == "reauthenticated" else now,
        )
        if existing is not None and change == "mailbox_replaced":
            await self._release_mailbox(existing)
        await self.connections.upsert(
            connection,
            sealed_cache=self.credentials.seal(connection.connection_id, serialized_cache),
            home_account_id=home_account_id,
            at=now,
        )
        self.credentials.forget(connection.connection_id)
        self.credentials.remember(connection.connection_id, result)
        await self.credentials.publish_change(
            connection, change, previous=existing if change == "mailbox_replaced" else None
        )
        try:
            await self.subscriptions.ensure(connection)
        except (GraphError, TransientError):
            # Maintenance retries; the first sync below still catches up whatever arrives meanwhile.
            logger.warning("could not subscribe the mailbox yet", extra={"mailbox_id": connection.mailbox_id})
        source: MailboxChangeSource = "reauthenticated" if change == "reauthenticated" else "watchdog"
        await self._hint(connection, source)
        return connection, change

    async def status(self, connection_id: str) -> tuple[Connection, datetime | None]:
        """C3: the connection and when it last synced."""
        connection = await self._existing(connection_id)
        return connection, await self.connections.last_synced_at(connection_id)

    async def disconnect(self, connection_id: str) -> Connection:
        """C5: stop syncing both ways; keep every synced message (D1). Idempotent."""
        connection = await self._existing(connection_id)
        if connection.status == "disconnected":
            return connection
        await self._release_mailbox(connection)
        changed = await self.connections.transition(
            connection_id,
            from_status=connection.status,
            to_status="disconnected",
            reason="user_request",
            at=self.now(),
            erase_tokens=True,
        )
        self.credentials.forget(connection_id)
        if changed is None:
            return await self._existing(connection_id)
        await self.credentials.publish_change(changed, "disconnected", reason="user_request")
        return changed

    async def access_token(self, connection_id: str) -> Grant:
        """The sender's access token: 404/409/410 as `LifecycleError`, outages as `TransientError`."""
        connection = await self.connections.get(connection_id)
        if connection is None:
            raise LifecycleError(404, "unknown_connection", "no such connection")
        if connection.status == "disconnected":
            raise LifecycleError(410, "connection_disconnected", "the connection was disconnected")
        if connection.status == "needs_reauth":
            raise LifecycleError(409, "connection_needs_reauth", "the user must sign in again")
        try:
            token = await self.credentials.access_token(connection)
        except NeedsReauthError as error:
            raise LifecycleError(409, "connection_needs_reauth", "the user must sign in again") from error
        except NotActiveError as error:
            raise LifecycleError(409, "connection_needs_reauth", "the connection is not active") from error
        return Grant(connection, token)

    async def _release_mailbox(self, connection: Connection) -> None:
        """Unsubscribe the connection's mailbox unless another active connection still reads it."""
        others = [
            c
            for c in await self.connections.active_for_mailbox(connection.mailbox_id)
            if c.connection_id != connection.connection_id
        ]
        if not others:
            # Without a usable grant (needs_reauth) only the records go: Graph expires the subscriptions and
            # their notifications are dropped as unknown meanwhile.
            grant = connection if connection.status == "active" else None
            await self.subscriptions.remove_all(connection.mailbox_id, grant)

    async def _hint(self, connection: Connection, source: MailboxChangeSource) -> None:
        await self.publisher.publish(
            MAILBOX_CHANGED,
            MailboxChanged(
                provider="outlook",
                mailbox_id=connection.mailbox_id,
                email_address=connection.email_address,
                source=source,
                received_at=self.now(),
            ),
        )

    async def _existing(self, connection_id: str) -> Connection:
        connection = await self.connections.get(connection_id)
        if connection is None:
            raise LifecycleError(404, "unknown_connection", "no such connection")
        return connection


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
