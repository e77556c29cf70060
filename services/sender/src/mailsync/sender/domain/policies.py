"""Size and type rules a send must meet before it is attempted (S4; message size caps of the routes).

* Gmail (S4): at most 25 MB of attachments in total (Gmail's product limit; the API answers 400 above it), and
  at most 35 MB (36,700,160 bytes) for the whole encoded message, the `messages.send` upload cap.
* The subaccount provider: an optional cap on the encoded message (SMTP servers announce theirs with
  ``SIZE``; the setting keeps the sender from trying what the relay will refuse).

Attachment sizes are the decoded bytes the command declares (`AttachmentMeta.size_bytes`, equal to the
stored blob's size, which the contract checks); the encoded size is measured on the built MIME message.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailsync.common.contracts import AttachmentMeta, SendFailureReason
from mailsync.sender.domain.outcomes import Refusal

MB = 1024 * 1024
GMAIL_MAX_ATTACHMENT_BYTES = 25 * MB
GMAIL_MAX_MESSAGE_BYTES = 36_700_160


@dataclass(frozen=True)
class SizePolicy:
    """Caps on attachments (decoded, summed) and on the encoded message; `None` disables a cap."""

    name: str
    max_attachment_bytes: int | None = None
    max_message_bytes: int | None = None

    def check_attachments(self, attachments: tuple[AttachmentMeta, ...]) -> Refusal | None:
        """A refusal when the attachments together exceed the cap."""
        total = sum(a.size_bytes for a in attachments)
        if self.max_attachment_bytes is not None and total > self.max_attachment_bytes:
            return Refusal(
                SendFailureReason.ATTACHMENT_TOO_LARGE,
                f"Attachments total {total} bytes; {self.name} allows at most "
                f"{self.max_attachment_bytes} bytes ({self.max_attachment_bytes / MB:g} MB).",
            )
        return None

    def check_message(self, encoded_size: int) -> Refusal | None:
        """A refusal when the encoded message exceeds the cap."""
        if self.max_message_bytes is not None and encoded_size > self.max_message_bytes:
            return Refusal(
                SendFailureReason.MESSAGE_TOO_LARGE,
                f"The encoded message is {encoded_size} bytes; {self.name} accepts at most "
                f"{self.max_message_bytes} bytes.",
            )
        return None


GMAIL_POLICY = SizePolicy(
    "Gmail", max_attachment_bytes=GMAIL_MAX_ATTACHMENT_BYTES, max_message_bytes=GMAIL_MAX_MESSAGE_BYTES
)
"""S4."""


OUTLOOK_REFERENCE_TYPES = ("jpg", "jpeg", "png", "mp4", "mpeg", "zip", "rar", "pdf", "doc", "docx", "txt")
"""O3's reference list of attachment types."""


@dataclass(frozen=True)
class AttachmentPolicy:
    """O3/S5: a cap on each attachment and a list of allowed file extensions (empty: any type)."""

    name: str
    max_bytes_each: int | None = 3 * MB
    allowed_extensions: frozenset[str] = frozenset(OUTLOOK_REFERENCE_TYPES)

    def check(self, attachments: tuple[AttachmentMeta, ...]) -> Refusal | None:
        """A refusal naming the first attachment that breaks the policy."""
        for attachment in attachments:
            if self.max_bytes_each is not None and attachment.size_bytes > self.max_bytes_each:
                return Refusal(
                    SendFailureReason.ATTACHMENT_TOO_LARGE,
                    f"{attachment.filename} is {attachment.size_bytes} bytes; {self.name} allows at most "
                    f"{self.max_bytes_each} bytes ({self.max_bytes_each / MB:g} MB) per attachment (O3, S5).",
                )
            extension = attachment.filename.rpartition(".")[2].lower() if "." in attachment.filename else ""
            if self.allowed_extensions and extension not in self.allowed_extensions:
                allowed = ", ".join(sorted(self.allowed_extensions))
                return Refusal(
                    SendFailureReason.ATTACHMENT_TYPE_NOT_ALLOWED,
                    f"{attachment.filename}: {self.name} does not send .{extension or '(no extension)'} "
                    f"attachments (allowed: {allowed}; O3, S5).",
                )
        return None
