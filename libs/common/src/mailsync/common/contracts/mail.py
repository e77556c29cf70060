"""Mail as the providers report it: addresses, stored bodies and attachments, and the two ingest events.

``MailboxChanged`` is only a hint ("something changed in this mailbox"); the ingest worker then reads the
mailbox's stored cursor (Gmail ``historyId``, Graph delta link), fetches what changed and publishes one
``MessageIngested`` per message. Both are keyed by ``mailbox_id`` so one partition serialises all work for
a mailbox.

Large content never rides on Kafka: a body part above ``INLINE_BODY_MAX_BYTES`` and every attachment's
content are stored once (GridFS) and referenced by a ``BlobRef``, so no record approaches the broker's
size limit.

Provider quirks captured here: Gmail's ``threadId`` and Graph's ``conversationId`` both land in
``provider_thread_id``; Gmail label ids and Outlook folder names both land in ``folders``; a Gmail push
carries a ``historyId``, a Graph notification a subscription id, change type and resource instead.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, NonNegativeInt, StringConstraints, model_validator

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

__all__ = [
    "HEADERS_MAX_ENTRIES",
    "INLINE_BODY_MAX_BYTES",
    "REFERENCES_MAX_ENTRIES",
    "SNIPPET_MAX_CHARS",
    "Address",
    "AttachmentMeta",
    "BlobRef",
    "Direction",
    "MailboxChangeSource",
    "MailboxChanged",
    "MessageBody",
    "MessageIngested",
    "Snippet",
    "Subject",
]

INLINE_BODY_MAX_BYTES = 64 * 1024
"""Largest body part (UTF-8 bytes) carried inline; a larger part must be stored and referenced."""

SNIPPET_MAX_CHARS = 500
"""Longest snippet; producers truncate (Gmail's own snippets are about 200 characters)."""

REFERENCES_MAX_ENTRIES = 200
"""Most ``References`` entries kept; producers keep the first one and the most recent ones."""

HEADERS_MAX_ENTRIES = 32
"""Most extra headers carried on a message event."""

Direction = Literal["inbound", "outbound"]
"""``inbound``: received by the mailbox; ``outbound``: sent from it (Sent folder / SENT label)."""

MailboxChangeSource = Literal["push", "pull", "watchdog", "reauthenticated", "lifecycle"]
"""What produced a ``MailboxChanged`` hint (see ``MailboxChanged.source``)."""

Subject = Annotated[str, StringConstraints(max_length=998)]
"""A subject line as decoded text (RFC 2047 words decoded); may be empty."""

Snippet = Annotated[str, StringConstraints(max_length=SNIPPET_MAX_CHARS)]
"""A short plain-text preview of a body."""

_SHA256_PATTERN = r"^[0-9a-f]{64}$"


class Address(ContractModel):
    """One mailbox address with its optional display name, as in ``"Ada Lovelace" <ada@example.com>``.

    ``email`` is kept as written; match addresses through ``normalized``.
    """

    email: EmailAddress = Field(
        description=(
            "The addr-spec (`local@domain`), as written in the message. Validation is deliberately light: "
            "one `@` outside a quoted local part, no whitespace."
        ),
    )
    name: str | None = Field(
        default=None,
        max_length=998,
        description="Display name, decoded; null when the header had none.",
    )

    @property
    def normalized(self) -> str:
        """The address lower-cased, the key for matching users and contacts.

        Lower-casing the local part is not RFC-exact, but every provider mailsync serves treats it as
        case-insensitive, and CRMs store addresses the same way.
        """
        return self.email.lower()


class BlobRef(ContractModel):
    """Where a large body part or an attachment's content is stored, once, outside Kafka."""

    store: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z][a-z0-9_-]*$",
        description=(
            "The blob store holding the content, e.g. `gridfs`. New stores may appear; a reader that cannot "
            "reach a store treats the content as unavailable."
        ),
    )
    id: str = Field(min_length=1, max_length=256, description="Id of the blob within its store.")
    size_bytes: NonNegativeInt = Field(description="Exact size of the stored content in bytes.")
    sha256: str = Field(
        pattern=_SHA256_PATTERN,
        description="SHA-256 of the stored content, lower-case hex; readers may verify it.",
    )


class AttachmentMeta(ContractModel):
    """Metadata of one attachment; the content itself is in ``blob`` (or still at the provider)."""

    filename: str = Field(
        default="",
        max_length=1024,
        description="File name as given by the sender; empty when the provider reports none.",
    )
    content_type: str = Field(
        default="application/octet-stream",
        min_length=1,
        max_length=255,
        description="MIME type as declared by the sender (e.g. `application/pdf`).",
    )
    size_bytes: NonNegativeInt = Field(description="Size of the decoded content in bytes.")
    content_id: str | None = Field(
        default=None,
        max_length=998,
        description="`Content-ID` of an inline part (referenced from the HTML as `cid:`), without brackets.",
    )
    is_inline: bool = Field(default=False, description="True for parts shown inline (e.g. embedded images).")
    provider_attachment_id: ProviderId | None = Field(
        default=None,
        description="The provider's attachment id (Gmail `attachmentId`, Graph attachment id); null for "
        "attachments that did not come from a provider.",
    )
    blob: BlobRef | None = Field(
        default=None,
        description="Where the content is stored; null when it was not fetched (e.g. refused by policy).",
    )


def _without_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class MessageBody(ContractModel):
    """A message body: plain text and/or HTML, each inline when small, else stored and referenced.

    For each part at most one of the inline value and the blob is set. Both parts may be absent
    (an empty body).
    """

    text: str | None = Field(
        default=None,
        description=f"Plain-text part, inline; at most {INLINE_BODY_MAX_BYTES} bytes of UTF-8.",
    )
    html: str | None = Field(
        default=None,
        description=f"HTML part, inline; at most {INLINE_BODY_MAX_BYTES} bytes of UTF-8.",
    )
    text_blob: BlobRef | None = Field(
        default=None, description="Stored plain-text part (UTF-8), when too large to carry inline."
    )
    html_blob: BlobRef | None = Field(
        default=None, description="Stored HTML part (UTF-8), when too large to carry inline."
    )
    size_bytes: NonNegativeInt = Field(
        default=0,  # placeholder: replaced by the computed sum when omitted
        json_schema_extra=_without_default,
        description=(
            "Total size in bytes of both parts: UTF-8 length of each inline part plus `size_bytes` of each "
            "stored part. Always present on the wire from mailsync; a producer may omit it to have it "
            "computed, and a given value must equal that sum."
        ),
    )

    @model_validator(mode="after")
    def _check_parts(self) -> MessageBody:
        for part, inline, blob in (("text", self.text, self.text_blob), ("html", self.html, self.html_blob)):
            if inline is not None and blob is not None:
                raise ValueError(f"the {part} part is either inline or stored ({part}_blob), not both")
            if inline is not None and len(inline.encode()) > INLINE_BODY_MAX_BYTES:
                raise ValueError(
                    f"the inline {part} part exceeds {INLINE_BODY_MAX_BYTES} bytes; "
                    f"store it and set {part}_blob"
                )
        total = sum(len(inline.encode()) for inline in (self.text, self.html) if inline is not None)
        total += sum(blob.size_bytes for blob in (self.text_blob, self.html_blob) if blob is not None)
        if "size_bytes" not in self.model_fields_set:
            # Frozen model: the computed default is stored once, during validation.
            self.__dict__["size_bytes"] = total
        elif self.size_bytes != total:
            raise ValueError(
                f"size_bytes is {self.size_bytes} but the parts add up to {total} "
                "(UTF-8 bytes of inline parts plus stored sizes); omit it to have it computed"
            )
        return self

    @property
    def is_empty(self) -> bool:
        """True when neither part is present, inline or stored."""
        return all(part is None for part in (self.text, self.html, self.text_blob, self.html_blob))


class MailboxChanged(Event):
    """Hint that a mailbox may have changed; the worker fetches what changed from the stored cursor.

    Carries no message data: redelivered, duplicated or out-of-order hints are harmless, because the
    cursor, not the hint, decides what is fetched. Keyed by ``mailbox_id``.
    """

    event_type: Literal["mail.mailbox_changed"] = "mail.mailbox_changed"
    provider: Provider = Field(description="Mailbox provider.")
    mailbox_id: EntityId = Field(
        description=(
            "mailsync's id of the mailbox (one per provider account, shared by every connection to it)."
        )
    )
    email_address: EmailAddress = Field(description="The mailbox's address.")
    source: MailboxChangeSource = Field(
        description=(
            "What produced the hint: `push` (Pub/Sub push or Graph webhook), "
            "`pull` (Pub/Sub streaming pull), "
            "`watchdog` (periodic catch-up for missed notifications), `reauthenticated` (C6 catch-up after "
            "re-authentication), `lifecycle` (Graph lifecycle event such as `missed` or "
            "`reauthorizationRequired`)."
        )
    )
    history_id: NonNegativeInt | None = Field(
        default=None,
        description="Gmail only: the `historyId` in the Pub/Sub notification; null for Outlook.",
    )
    subscription_id: str | None = Field(
        default=None,
        max_length=256,
        description="Outlook only: the Graph subscription that notified; null for Gmail.",
    )
    change_type: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "Outlook only: Graph `changeType` (`created`, `updated`, `deleted`) or lifecycle event name."
        ),
    )
    resource: str | None = Field(
        default=None,
        max_length=2048,
        description="Outlook only: the Graph resource path that changed, when notified.",
    )
    received_at: UtcDatetime = Field(description="When mailsync received the notification (UTC).")

    @model_validator(mode="after")
    def _check_provider_fields(self) -> MailboxChanged:
        if self.provider == "gmail":
            graph_fields = {"subscription_id", "change_type", "resource"}
            if any(getattr(self, name) is not None for name in graph_fields):
                raise ValueError("subscription_id, change_type and resource are Outlook-only fields")
        elif self.history_id is not None:
            raise ValueError("history_id is a Gmail-only field")
        return self


class MessageIngested(Event):
    """The canonical message event: one provider message, as fetched from one mailbox.

    Published once per fetched message, possibly again on re-fetch (at-least-once); consumers
    deduplicate on (``mailbox_id``, ``provider_message_id``) (D2). Keyed by ``mailbox_id``.
    ``connection_ids`` is a snapshot taken at fetch time; the router re-checks each connection's
    state before filing (C4, C5).
    """

    event_type: Literal["mail.message_ingested"] = "mail.message_ingested"
    provider: Provider = Field(description="Mailbox provider.")
    mailbox_id: EntityId = Field(description="mailsync's id of the mailbox the message was fetched from.")
    mailbox_address: EmailAddress = Field(description="Address of that mailbox.")
    connection_ids: tuple[EntityId, ...] = Field(
        description=(
            "Connections active for the mailbox when the message was fetched (one per subaccount that "
            "connected it, M1). A snapshot: the router re-checks each connection."
        )
    )
    provider_message_id: ProviderId = Field(description="Gmail message id or Graph message id.")
    provider_thread_id: ProviderId = Field(description="Gmail `threadId` or Graph `conversationId`.")
    internet_message_id: InternetMessageId | None = Field(
        default=None, description="The RFC 5322 `Message-ID` header, with angle brackets; null if absent."
    )
    in_reply_to: InternetMessageId | None = Field(
        default=None, description="The `In-Reply-To` header (a Message-ID); null if absent."
    )
    references: tuple[InternetMessageId, ...] = Field(
        default=(),
        max_length=REFERENCES_MAX_ENTRIES,
        description="The `References` header's Message-IDs, oldest first.",
    )
    subject: Subject = Field(default="", description="Subject line, decoded.")
    from_: Address = Field(alias="from", description="The `From` address (JSON name `from`).")
    to: tuple[Address, ...] = Field(default=(), description="`To` recipients in header order.")
    cc: tuple[Address, ...] = Field(default=(), description="`Cc` recipients in header order.")
    bcc: tuple[Address, ...] = Field(
        default=(), description="`Bcc` recipients; only known for messages sent from the mailbox."
    )
    reply_to: tuple[Address, ...] = Field(default=(), description="`Reply-To` addresses, if any.")
    direction: Direction = Field(
        description="`outbound` when the message is in the mailbox's sent mail, else `inbound`."
    )
    sent_by_owner: bool = Field(
        description=(
            "True when the mailbox owner sent the message (From is the mailbox or one of its aliases)."
        )
    )
    sent_at: UtcDatetime = Field(
        description="When the message was sent (`Date` header / Graph `sentDateTime`)."
    )
    received_at: UtcDatetime = Field(
        description="When the message reached the mailbox (Gmail `internalDate` / Graph `receivedDateTime`)."
    )
    folders: tuple[str, ...] = Field(
        default=(),
        description="Gmail label ids (e.g. `INBOX`, `SENT`) or Outlook well-known folder names / folder ids.",
    )
    snippet: Snippet = Field(
        default="", description=f"Plain-text preview, at most {SNIPPET_MAX_CHARS} chars."
    )
    body: MessageBody = Field(description="The message body.")
    attachments: tuple[AttachmentMeta, ...] = Field(default=(), description="Attachments, in message order.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        max_length=HEADERS_MAX_ENTRIES,
        description=(
            "A few extra headers relevant to threading and loop detection (e.g. `auto-submitted`, "
            "`thread-index`), names lower-cased. Not the full header set."
        ),
    )

    @property
    def participants(self) -> tuple[Address, ...]:
        """From, then To, Cc and Bcc, in header order (duplicates kept)."""
        return (self.from_, *self.to, *self.cc, *self.bcc)
