"""Outbound mail: the ``SendEmail`` command other platform services publish, and its ``SendCompleted`` result.

Delivery semantics: commands are keyed by ``request_id``, which is also the idempotency key (S7): the
sender sends a given ``request_id`` at most once and answers every delivery of it with the same
``SendCompleted`` (exactly one result per distinct command, republished unchanged on redelivery).
A command that cannot be parsed at all (no usable ``request_id``) cannot be answered and goes to the
dead-letter topic with its reason; any other invalid command is answered ``refused``/``invalid_command``.

Routing (S1, S2): ``individual`` mail goes through the user's connected mailbox when two-way sync is
active, otherwise through the subaccount provider; ``bulk`` and ``workflow`` mail always goes through the
subaccount provider and never counts against a mailbox quota.
"""

from __future__ import annotations

import string
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from mailsync.common.contracts.base import (
    ContractModel,
    EmailAddress,
    EntityId,
    Event,
    InternetMessageId,
    Provider,
    ProviderId,
    UtcDatetime,
)
from mailsync.common.contracts.mail import (
    REFERENCES_MAX_ENTRIES,
    Address,
    AttachmentMeta,
    MessageBody,
    Subject,
)

__all__ = [
    "MAX_RECIPIENTS",
    "REQUEST_ID_MAX_LENGTH",
    "ReplyContext",
    "RequestId",
    "SendCompleted",
    "SendEmail",
    "SendFailureReason",
    "SendKind",
    "SendRoute",
    "SendStatus",
]

REQUEST_ID_MAX_LENGTH = 128
"""Longest ``request_id`` accepted."""

MAX_RECIPIENTS = 500
"""Most recipients (To + Cc + Bcc) on one command: Gmail's and Outlook's per-message limit."""

_REQUEST_ID_CHARS = frozenset(string.printable) - frozenset(string.whitespace)


def _check_request_id(value: str) -> str:
    if not set(value) <= _REQUEST_ID_CHARS:
        raise ValueError(
            "request_id (the S7 idempotency key) must be printable ASCII without whitespace, "
            "e.g. a UUID or '<service>:<entity id>'"
        )
    return value


RequestId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=REQUEST_ID_MAX_LENGTH, pattern=r"^[!-~]+$"),
    AfterValidator(_check_request_id),
]
"""The idempotency key of a send (S7): 1-128 printable ASCII characters, no whitespace."""

SendKind = Literal["individual", "bulk", "workflow"]
"""``individual``: one-to-one mail a user sends from the CRM (S1); ``bulk`` and ``workflow`` (S2)."""

SendStatus = Literal["sent", "refused", "failed"]
"""``sent``: handed to the provider; ``refused``: not attempted (policy, quota, invalid command,
connection state); ``failed``: attempted, and the provider or transport failed permanently."""

SendRoute = Literal["mailbox", "subaccount_provider"]
"""``mailbox``: through the user's connected Gmail/Outlook mailbox (S1); ``subaccount_provider``: through
the subaccount-level SMTP or platform mail service (S2)."""


class SendFailureReason(StrEnum):
    """Why a send was refused or failed. Values are stable; new ones may be added (readers should treat
    an unknown reason like ``internal_error``)."""

    INVALID_COMMAND = "invalid_command"
    """The command broke a rule of this contract or referenced something that does not exist."""
    QUOTA_EXCEEDED = "quota_exceeded"
    """The mailbox's daily send quota is used up (S3); ``quota_resets_at`` says when it resets."""
    ATTACHMENT_TOO_LARGE = "attachment_too_large"
    """Attachments exceed the provider's or the policy's size limit (S4, S5/O3)."""
    ATTACHMENT_TYPE_NOT_ALLOWED = "attachment_type_not_allowed"
    """An attachment's type is outside the allowed list (S5/O3)."""
    ATTACHMENT_UNAVAILABLE = "attachment_unavailable"
    """An attachment's blob could not be read from its store."""
    MESSAGE_TOO_LARGE = "message_too_large"
    """The encoded message exceeds the provider's message size limit."""
    CONNECTION_NEEDS_REAUTH = "connection_needs_reauth"
    """The user's connection needs re-authentication (C6); nothing was sent."""
    CONNECTION_DISCONNECTED = "connection_disconnected"
    """The connection was disconnected (C5) and the mail could not be rerouted."""
    PROVIDER_REJECTED = "provider_rejected"
    """The provider refused the message permanently (e.g. invalid recipient, policy)."""
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    """The provider kept failing transiently until the retry budget ran out."""
    INTERNAL_ERROR = "internal_error"
    """An unexpected error in mailsync; details in ``detail`` and the sender's logs."""


class ReplyContext(ContractModel):
    """Which existing thread a send replies to, so the reply joins the provider thread (S6).

    Gmail needs the ``threadId`` plus ``In-Reply-To``, ``References`` and a matching subject; Outlook
    replies to the thread's last message so its ``conversationId`` is kept. The sender resolves what the
    provider needs from these ids; the subject of the command is used as given.
    """

    conversation_id: EntityId | None = Field(
        default=None, description="The CRM conversation the thread belongs to, when known."
    )
    provider_thread_id: ProviderId | None = Field(
        default=None,
        description=(
            "Gmail `threadId` / Graph `conversationId` of the thread in the sending mailbox, when known; "
            "the sender looks it up from `in_reply_to` otherwise."
        ),
    )
    in_reply_to: InternetMessageId = Field(
        description="`Message-ID` of the message replied to, with angle brackets; becomes `In-Reply-To`."
    )
    references: tuple[InternetMessageId, ...] = Field(
        default=(),
        max_length=REFERENCES_MAX_ENTRIES,
        description="The thread's `References`, oldest first; the sender appends `in_reply_to` if missing.",
    )


class SendEmail(Event):
    """Command: send one email on behalf of a CRM subaccount (published by other platform services).

    Keyed by ``request_id``. Idempotent (S7): the same ``request_id`` sends once and always yields the
    same ``SendCompleted``. Attachments are stored first (``AttachmentMeta.blob`` is required) and
    referenced, never inlined.
    """

    event_type: Literal["sending.send_email"] = "sending.send_email"
    request_id: RequestId = Field(
        description=(
            "Idempotency key chosen by the caller (S7): resending the same id never sends twice. "
            "1-128 printable ASCII characters without whitespace; "
            "the Kafka key of the command and its result."
        )
    )
    kind: SendKind = Field(
        description=(
            "`individual` goes through the user's mailbox when two-way sync is active (S1); `bulk` and "
            "`workflow` always go through the subaccount provider (S2)."
        )
    )
    subaccount_id: EntityId = Field(description="The CRM subaccount (location) sending the email.")
    user_id: EntityId | None = Field(
        default=None,
        description=(
            "The CRM user sending; required for `individual` mail (it selects the user's connection)."
        ),
    )
    contact_id: EntityId | None = Field(default=None, description="The CRM contact addressed, when known.")
    conversation_id: EntityId | None = Field(
        default=None, description="The CRM conversation the email belongs to, when known."
    )
    to: tuple[Address, ...] = Field(default=(), description="`To` recipients.")
    cc: tuple[Address, ...] = Field(default=(), description="`Cc` recipients.")
    bcc: tuple[Address, ...] = Field(default=(), description="`Bcc` recipients.")
    subject: Subject = Field(description="Subject line; for a reply, the thread's subject (S6).")
    body: MessageBody = Field(description="Text and/or HTML body; at least one part, inline or stored.")
    attachments: tuple[AttachmentMeta, ...] = Field(
        default=(),
        description="Attachments, each already stored (`blob` set) and with a file name.",
    )
    reply_context: ReplyContext | None = Field(
        default=None,
        description=(
            "Set when the email replies within an existing thread (S6); null for a new thread. "
            "(Named `reply_context`, not `reply_to`, to avoid confusion with the `Reply-To` header.)"
        ),
    )
    requested_at: UtcDatetime = Field(description="When the user or automation asked for the send (UTC).")

    @model_validator(mode="after")
    def _check_command(self) -> SendEmail:
        recipients = len(self.to) + len(self.cc) + len(self.bcc)
        if recipients == 0:
            raise ValueError("a send needs at least one recipient in to, cc or bcc")
        if recipients > MAX_RECIPIENTS:
            raise ValueError(f"a send has at most {MAX_RECIPIENTS} recipients in to, cc and bcc together")
        if self.kind == "individual" and self.user_id is None:
            raise ValueError("an individual send (S1) needs user_id: it selects the user's connected mailbox")
        if self.body.is_empty:
            raise ValueError("body needs a text or html part (inline or stored)")
        for index, attachment in enumerate(self.attachments):
            if attachment.blob is None:
                raise ValueError(f"attachments[{index}] has no blob: store the content and reference it")
            if not attachment.filename:
                raise ValueError(f"attachments[{index}] needs a filename")
            if attachment.size_bytes != attachment.blob.size_bytes:
                raise ValueError(f"attachments[{index}].size_bytes differs from its blob's size_bytes")
        context = self.reply_context
        if (
            context is not None
            and context.conversation_id is not None
            and self.conversation_id is not None
            and context.conversation_id != self.conversation_id
        ):
            raise ValueError("reply_context.conversation_id differs from conversation_id")
        return self

    @property
    def recipients(self) -> tuple[Address, ...]:
        """To, Cc and Bcc recipients, in that order."""
        return (*self.to, *self.cc, *self.bcc)


class SendCompleted(Event):
    """Result of one ``SendEmail``: exactly one per distinct ``request_id``, keyed by ``request_id``.

    On redelivery of the command the same result is published again (same ``event_id``); consumers
    keep the first result per ``request_id``. Consistency rules:

    * ``sent``: ``reason`` is null and ``route`` is set; through a mailbox (S1) the provider, connection,
      mailbox address and the provider's message and thread ids are set.
    * ``refused`` / ``failed``: ``reason`` is set and no provider message id exists (nothing was sent).
    * ``quota_resets_at`` is set exactly when ``reason`` is ``quota_exceeded`` (S3).
    """

    event_type: Literal["sending.send_completed"] = "sending.send_completed"
    request_id: RequestId = Field(description="The command's idempotency key (S7).")
    status: SendStatus = Field(
        description=(
            "`sent`: handed to the provider; `refused`: not attempted (invalid command, quota, policy, "
            "connection state); `failed`: attempted and failed permanently."
        )
    )
    reason: SendFailureReason | None = Field(
        default=None, description="Why the send was refused or failed; null exactly when `status` is `sent`."
    )
    detail: str = Field(
        default="", max_length=4000, description="Human-readable explanation, suitable for showing to a user."
    )
    route: SendRoute | None = Field(
        default=None,
        description="How the email was (or would have been) sent; null when refused before routing.",
    )
    provider: Provider | None = Field(default=None, description="Mailbox provider, for the `mailbox` route.")
    connection_id: EntityId | None = Field(
        default=None, description="The connection used, for the `mailbox` route."
    )
    mailbox_address: EmailAddress | None = Field(
        default=None, description="The sending mailbox's address (the From), for the `mailbox` route."
    )
    mailbox_id: EntityId | None = Field(
        default=None,
        description=(
            "mailsync's id of the sending mailbox, for the `mailbox` route: the same id its ingested "
            "messages carry, so the router can tie the CRM-started thread to them (G1a, O1, M3)."
        ),
    )
    provider_message_id: ProviderId | None = Field(
        default=None,
        description="The provider's id of the sent message (Gmail message id / Graph message id).",
    )
    provider_thread_id: ProviderId | None = Field(
        default=None, description="Gmail `threadId` / Graph `conversationId` of the sent message."
    )
    internet_message_id: InternetMessageId | None = Field(
        default=None, description="`Message-ID` of the sent message, with angle brackets."
    )
    quota_resets_at: UtcDatetime | None = Field(
        default=None, description="When the exhausted quota resets; set exactly for `quota_exceeded` (S3)."
    )
    subaccount_id: EntityId | None = Field(
        default=None, description="Echo of the command; null only if the command was too broken to tell."
    )
    user_id: EntityId | None = Field(default=None, description="Echo of the command.")
    contact_id: EntityId | None = Field(default=None, description="Echo of the command.")
    conversation_id: EntityId | None = Field(default=None, description="Echo of the command.")
    kind: SendKind | None = Field(
        default=None, description="Echo of the command; null only if the command was too broken to tell."
    )

    @model_validator(mode="after")
    def _check_consistency(self) -> SendCompleted:
        if self.status == "sent":
            if self.reason is not None:
                raise ValueError("a sent result has no reason")
            if self.route is None:
                raise ValueError("a sent result needs route")
            if self.route == "mailbox":
                needed = (
                    "provider",
                    "connection_id",
                    "mailbox_address",
                    "provider_message_id",
                    "provider_thread_id",
                )
                missing = [name for name in needed if getattr(self, name) is None]
                if missing:
                    raise ValueError(f"a result sent through a mailbox (S1) needs {', '.join(missing)}")
        else:
            if self.reason is None:
                raise ValueError(f"a {self.status} result needs reason")
            if self.provider_message_id is not None:
                raise ValueError(f"a {self.status} result has no provider_message_id: nothing was sent")
        if self.route == "subaccount_provider" and (
            self.provider is not None or self.connection_id is not None
        ):
            raise ValueError("provider and connection_id belong to the mailbox route only")
        is_quota = self.reason == SendFailureReason.QUOTA_EXCEEDED
        if is_quota and self.quota_resets_at is None:
            raise ValueError("a quota_exceeded result needs quota_resets_at (S3)")
        if not is_quota and self.quota_resets_at is not None:
            raise ValueError("quota_resets_at is only set for quota_exceeded")
        return self
