"""The router's output: messages filed into CRM conversations, and messages deliberately not filed.

For every ``MessageIngested`` and every connection it names, the router either files the message into
one CRM conversation (``ConversationMessageRecorded``, possibly several for one message when it matches
several subaccounts, M1) or publishes why it did not (``MessageNotSynced``), so nothing vanishes without
a trace. Both are published after the CRM write and may be repeated on redelivery with the same
``message_id``; consumers deduplicate on (``subaccount_id``, ``message_id``) or on ``event_id``.
"""

from enum import StrEnum
from typing import Literal

from pydantic import Field

from mailsync.common.contracts.base import (
    EntityId,
    Event,
    InternetMessageId,
    Provider,
    ProviderId,
    UtcDatetime,
)
from mailsync.common.contracts.mail import (
    Address,
    AttachmentMeta,
    Direction,
    MessageBody,
    Snippet,
    Subject,
)

__all__ = ["ConversationMessageRecorded", "MessageNotSynced", "NotSyncedReason"]


class ConversationMessageRecorded(Event):
    """A provider message was filed into a CRM conversation (for the CRM and analytics).

    Keyed by ``"{subaccount_id}:{contact_id}"`` so a contact's messages stay in order. Stored at most
    once per conversation (D2): a redelivery republishes the same ``message_id``.
    """

    event_type: Literal["conversations.message_recorded"] = "conversations.message_recorded"
    subaccount_id: EntityId = Field(description="The CRM subaccount the message was filed in.")
    contact_id: EntityId = Field(description="The contact owning the conversation (P1-P4).")
    conversation_id: EntityId = Field(description="The CRM conversation.")
    message_id: EntityId = Field(description="The CRM message id; the same on every redelivery (D2).")
    connection_id: EntityId = Field(description="The connection through which the message synced.")
    user_id: EntityId = Field(description="The user owning that connection.")
    provider: Provider = Field(description="Mailbox provider.")
    provider_message_id: ProviderId = Field(description="Gmail message id or Graph message id.")
    provider_thread_id: ProviderId = Field(description="Gmail `threadId` or Graph `conversationId`.")
    internet_message_id: InternetMessageId | None = Field(
        default=None, description="The `Message-ID` header, with angle brackets; null if absent."
    )
    direction: Direction = Field(
        description="`outbound`: the user sent it (from the mailbox or the CRM); `inbound`: the contact did."
    )
    subject: Subject = Field(default="", description="Subject line, decoded.")
    from_: Address = Field(alias="from", description="The `From` address (JSON name `from`).")
    to: tuple[Address, ...] = Field(default=(), description="`To` recipients.")
    cc: tuple[Address, ...] = Field(default=(), description="`Cc` recipients.")
    sent_at: UtcDatetime = Field(description="When the message was sent.")
    snippet: Snippet = Field(default="", description="Plain-text preview.")
    body: MessageBody = Field(description="The message body (inline or stored parts).")
    attachments: tuple[AttachmentMeta, ...] = Field(default=(), description="Attachments, stored.")
    contact_created: bool = Field(
        default=False,
        description="True when the contact was created for this message because the user copied their "
        "CRM BCC address (P6).",
    )
    recorded_at: UtcDatetime = Field(description="When the router filed the message.")


class NotSyncedReason(StrEnum):
    """Why a message was not filed. Values are stable; new ones may be added (readers should treat an
    unknown reason as "not synced, reason unknown")."""

    BEFORE_CONNECTION = "before_connection"
    """Sent or received before the connection was made (C7)."""
    UNKNOWN_SENDER = "unknown_sender"
    """An inbound message from an address that is no contact of the subaccount (G1)."""
    UNKNOWN_RECIPIENTS = "unknown_recipients"
    """An outbound message, outside a synced thread, to no contact of the subaccount."""
    CONTACT_NOT_ASSIGNED = "contact_not_assigned"
    """The contact exists but is not assigned to the connection's user (G1, G3, M1)."""
    THREAD_NOT_SYNCED = "thread_not_synced"
    """A Gmail thread that neither the CRM nor an assigned contact started (G1)."""
    OUTLOOK_THREAD_NOT_CRM_STARTED = "outlook_thread_not_crm_started"
    """An Outlook thread not started from the CRM (O1)."""
    THREAD_CLAIMED_BY_OTHER_SUBACCOUNT = "thread_claimed_by_other_subaccount"
    """Another subaccount owns the thread (M2, M3)."""
    SENDER_IS_USER = "sender_is_user"
    """The counterpart is a user of the subaccount, not a contact (P7)."""
    CONNECTION_DISCONNECTED = "connection_disconnected"
    """The connection was disconnected before the message arrived (C5)."""
    CONNECTION_NEEDS_REAUTH = "connection_needs_reauth"
    """The connection needed re-authentication when the message was routed (C6)."""
    MAILBOX_REPLACED = "mailbox_replaced"
    """The connection moved to another mailbox; the previous one no longer syncs (C4)."""
    ATTACHMENT_POLICY = "attachment_policy"
    """An attachment breaks the size or type policy (O3)."""


class MessageNotSynced(Event):
    """A message, or its filing for one connection, was deliberately not synced; the reason is kept.

    Keyed by ``mailbox_id`` (the key of the ingested message). One per (message, connection) that was
    considered, or one with ``connection_id`` null when no connection applied at all.
    """

    event_type: Literal["conversations.message_not_synced"] = "conversations.message_not_synced"
    provider: Provider = Field(description="Mailbox provider.")
    mailbox_id: EntityId = Field(description="mailsync's id of the mailbox the message came from.")
    provider_message_id: ProviderId = Field(description="Gmail message id or Graph message id.")
    provider_thread_id: ProviderId | None = Field(
        default=None, description="Gmail `threadId` or Graph `conversationId`, when known."
    )
    internet_message_id: InternetMessageId | None = Field(
        default=None, description="The `Message-ID` header, with angle brackets; null if absent."
    )
    subaccount_id: EntityId | None = Field(
        default=None, description="The subaccount for which it was not synced; null when none applied."
    )
    connection_id: EntityId | None = Field(
        default=None, description="The connection for which it was not synced; null when none applied."
    )
    reason: NotSyncedReason = Field(description="Why the message was not synced.")
    detail: str = Field(default="", max_length=4000, description="Human-readable explanation.")
