"""What sending through a user's mailbox needs whatever the provider (S1, S3, C4, C5, C6): an access token
for the connection's current mailbox, a reservation in the quota ledger, and one way to turn a failure into
the command's answer.

* The token API's answer is authoritative for the mailbox (C4); a connection it no longer knows was
  disconnected after the read model last heard of it (C5), so the command goes through the subaccount
  provider instead; `invalid_grant` answers `connection_needs_reauth` (C6).
* The quota reservation (S3) is made after every check that can refuse the command and before the provider
  call, on the current quota day; the attempt journal records that day, so a redelivery of an attempted send
  after midnight reserves (idempotently) and releases on the same day. A delivery that reserved and stopped
  before its journal leaves a count on a day that has ended if it is redelivered after midnight; it can
  never refuse a send. The reservation is released whenever the send ends `failed`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from mailsync.common.contracts import SendCompleted, SendEmail, SendFailureReason
from mailsync.common.delivery import TransientError
from mailsync.sender.adapters.access_tokens import (
    AccessGrant,
    AccessTokens,
    ConnectionGoneError,
    ConnectionNeedsReauthError,
)
from mailsync.sender.adapters.delivery_errors import DeliveryRejectedError, SendingLimitError
from mailsync.sender.adapters.quota_ledger import Reservation
from mailsync.sender.domain import MailboxConnection, Refusal, not_sent, quota_day, quota_day_named
from mailsync.sender.handlers.attempts import Attempts, Progress
from mailsync.sender.handlers.retries import RetriesExhaustedError
from mailsync.sender.handlers.subaccount import SubaccountRoute
from mailsync.sender.metrics import SenderMetrics

_LEDGER_RETENTION = timedelta(days=3)


@dataclass(frozen=True)
class MailboxAccess:
    """Tokens, quota and failure answers shared by the Gmail and Outlook routes."""

    attempts: Attempts
    tokens: AccessTokens
    subaccount: SubaccountRoute
    metrics: SenderMetrics

    async def grant(
        self, command: SendEmail, connection: MailboxConnection, progress: Progress
    ) -> tuple[AccessGrant, MailboxConnection] | SendCompleted:
        """A token and the connection's current mailbox (C4), or the answer when there is no token to be
        had: rerouted through the subaccount provider (C5) or `connection_needs_reauth` (C6)."""
        try:
            grant = await self.tokens.grant(
                connection.connection_id, connection.provider, connection.mailbox_id
            )
        except ConnectionNeedsReauthError:
            return await self.needs_reauth(command, connection, progress)
        except ConnectionGoneError:
            await self.attempts.release(progress, command.request_id)
            return await self.subaccount.send(command, progress)
        current = replace(connection, mailbox_id=grant.mailbox_id, email_address=grant.email_address)
        return grant, current

    async def reserve_quota(
        self, command: SendEmail, connection: MailboxConnection, limit: int, progress: Progress
    ) -> SendCompleted | None:
        """Count the send against its connection's quota day (S3); the refusal when the day is used up."""
        ledger = self.attempts.ledger
        if progress.quota_key is None:
            today = quota_day(self.attempts.clock())
            progress.quota_key = ledger.key(connection.connection_id, today.key)
        day = quota_day_named(progress.quota_key.rpartition("|")[2])
        started = time.perf_counter()
        reservation = await ledger.reserve(
            progress.quota_key,
            command.request_id,
            limit=limit,
            expires_at=day.resets_at + _LEDGER_RETENTION,
        )
        self.metrics.quota_reserve_seconds.observe(time.perf_counter() - started)
        if reservation is Reservation.RESERVED:
            self.metrics.quota_used.labels(connection.provider, "daily_sends").inc()
            return None
        refusal = Refusal(
            SendFailureReason.QUOTA_EXCEEDED,
            f"The mailbox {connection.email_address} has sent its {limit} emails "
            f"for today (S3); the quota resets at {day.resets_at.isoformat()}.",
        )
        return self.refused(command, connection, refusal, quota_resets_at=day.resets_at)

    def refused(
        self,
        command: SendEmail,
        connection: MailboxConnection,
        refusal: Refusal,
        *,
        quota_resets_at: datetime | None = None,
    ) -> SendCompleted:
        """`refused`: the provider was never called."""
        return not_sent(
            command,
            refusal,
            attempted=False,
            at=self.attempts.clock(),
            route="mailbox",
            connection=connection,
            quota_resets_at=quota_resets_at,
        )

    async def needs_reauth(
        self, command: SendEmail, connection: MailboxConnection, progress: Progress
    ) -> SendCompleted:
        """`failed`/`connection_needs_reauth` (C6): the grant failed; the reservation is given back."""
        refusal = Refusal(
            SendFailureReason.CONNECTION_NEEDS_REAUTH,
            f"The mailbox {connection.email_address} needs re-authentication (its grant failed with "
            "invalid_grant); nothing was sent (C6).",
        )
        return await self.failed(command, connection, progress, refusal)

    async def failed(
        self,
        command: SendEmail,
        connection: MailboxConnection,
        progress: Progress,
        refusal: Refusal,
        *,
        quota_resets_at: datetime | None = None,
    ) -> SendCompleted:
        """`failed`: nothing was sent, for good; the reservation is given back."""
        await self.attempts.release(progress, command.request_id)
        return not_sent(
            command,
            refusal,
            attempted=True,
            at=self.attempts.clock(),
            route="mailbox",
            connection=connection,
            quota_resets_at=quota_resets_at,
        )

    async def after_failure(
        self, command: SendEmail, connection: MailboxConnection, progress: Progress, error: Exception
    ) -> SendCompleted:
        """The answer to a provider call that failed with `error` (one of `PROVIDER_FAILURES`); raises
        `TransientError` when the outcome is still unknown, so the command is redelivered and resolved
        through the Sent folder."""
        if isinstance(error, ConnectionNeedsReauthError):
            return await self.needs_reauth(command, connection, progress)
        resets_at = None
        if isinstance(error, ConnectionGoneError):
            refusal = Refusal(
                SendFailureReason.CONNECTION_DISCONNECTED,
                "The connection was disconnected while sending; nothing was sent (C5).",
            )
        elif isinstance(error, SendingLimitError):
            refusal = Refusal(SendFailureReason.QUOTA_EXCEEDED, f"{error.detail} (Gmail's own limit, S3)")
            resets_at = error.resets_at
        elif isinstance(error, DeliveryRejectedError):
            refusal = Refusal(error.reason, error.detail)
        elif isinstance(error, RetriesExhaustedError):
            if error.outcome_unknown:
                raise TransientError(f"send outcome unknown after retries: {error.detail}") from error
            refusal = Refusal(SendFailureReason.PROVIDER_UNAVAILABLE, error.detail)
        else:
            raise error
        return await self.failed(command, connection, progress, refusal, quota_resets_at=resets_at)


PROVIDER_FAILURES = (
    ConnectionNeedsReauthError,
    ConnectionGoneError,
    SendingLimitError,
    DeliveryRejectedError,
    RetriesExhaustedError,
)
"""The errors of a mailbox provider call that `MailboxAccess.after_failure` answers."""
