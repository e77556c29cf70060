"""What the sender answers for one command: the `SendCompleted` builders and the refusal value.

Every command ends in exactly one `SendCompleted` (see `mailsync.common.contracts.sending`); these builders
echo the command's fields so each result can be tied back to its request by consumers that only keep results.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailsync.common.contracts import SendCompleted, SendEmail, SendFailureReason, SendRoute
from mailsync.sender.domain.connections import MailboxConnection


@dataclass(frozen=True)
class Refusal:
    """Why a command is not (or could not be) sent: a stable reason code and a sentence for the user."""

    reason: SendFailureReason
    detail: str


@dataclass(frozen=True)
class ProviderReceipt:
    """What a mailbox provider returned for a sent message."""

    provider_message_id: str
    provider_thread_id: str


def _echo(command: SendEmail) -> dict[str, Any]:
    return {
        "request_id": command.request_id,
        "subaccount_id": command.subaccount_id,
        "user_id": command.user_id,
        "contact_id": command.contact_id,
        "conversation_id": command.conversation_id,
        "kind": command.kind,
    }


def sent_through_mailbox(
    command: SendEmail,
    connection: MailboxConnection,
    receipt: ProviderReceipt,
    internet_message_id: str,
    *,
    at: datetime,
) -> SendCompleted:
    """S1: the email went out through the user's mailbox; carries what the router needs for G1a/O1/M3."""
    return SendCompleted(
        **_echo(command),
        occurred_at=at,
        status="sent",
        route="mailbox",
        provider=connection.provider,
        connection_id=connection.connection_id,
        mailbox_id=connection.mailbox_id,
        mailbox_address=connection.email_address,
        provider_message_id=receipt.provider_message_id,
        provider_thread_id=receipt.provider_thread_id,
        internet_message_id=internet_message_id,
    )


def sent_through_provider(command: SendEmail, internet_message_id: str, *, at: datetime) -> SendCompleted:
    """S2/C5: the email went out through the subaccount-level SMTP provider."""
    return SendCompleted(
        **_echo(command),
        occurred_at=at,
        status="sent",
        route="subaccount_provider",
        internet_message_id=internet_message_id,
    )


def not_sent(
    command: SendEmail,
    refusal: Refusal,
    *,
    attempted: bool,
    at: datetime,
    route: SendRoute | None = None,
    connection: MailboxConnection | None = None,
    quota_resets_at: datetime | None = None,
) -> SendCompleted:
    """`refused` (never attempted) or `failed` (attempted, failed permanently), with the reason."""
    mailbox: dict[str, Any] = {}
    if route == "mailbox" and connection is not None:
        mailbox = {
            "provider": connection.provider,
            "connection_id": connection.connection_id,
            "mailbox_id": connection.mailbox_id,
            "mailbox_address": connection.email_address,
        }
    return SendCompleted(
        **_echo(command),
        **mailbox,
        occurred_at=at,
        status="failed" if attempted else "refused",
        reason=refusal.reason,
        detail=refusal.detail[:4000],
        route=route,
        quota_resets_at=quota_resets_at,
    )
