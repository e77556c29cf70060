"""MIME submissions: ``sendMail`` with ``Content-Type: text/plain`` and a base64 RFC 5322 message.

From ``api/user-sendmail.md``: in MIME format the body is the whole message, base64-encoded; a body that isn't
valid base64 is 400 ``ErrorMimeContentInvalidBase64String``. Unlike JSON ``sendMail`` (where only ``x-``
headers
may be set), the MIME header block is the client's own, so ``In-Reply-To``/``References`` chosen by the client
survive, which is how a client threads a reply to mail from another system. The sandbox also keeps a supplied
``Message-ID`` (Exchange's behaviour here is not documented; see docs/sandboxes.md).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import email
import email.policy
from email.message import EmailMessage
from email.utils import getaddresses

from mailsync.graph_sandbox.errors import GraphError
from mailsync.graph_sandbox.mailbox import Draft, EmailAddress

_STRUCTURAL = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "sender",
    }
)


@dataclasses.dataclass(frozen=True)
class MimeSubmission:
    """A parsed MIME message: the draft, the client's Message-ID (if any) and its other headers."""

    draft: Draft
    message_id: str | None


def _addresses(message: EmailMessage, name: str) -> tuple[EmailAddress, ...]:
    return tuple(
        EmailAddress(address, display)
        for display, address in getaddresses(message.get_all(name, []))
        if address
    )


def parse_submission(encoded: bytes, *, max_attachment_bytes: int) -> MimeSubmission:
    """Decode and parse a MIME ``sendMail`` body. Raises Graph's 400s for bad base64 or no recipients."""
    try:
        raw = base64.b64decode(b"".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise GraphError(
            400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content."
        ) from exc
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    if not isinstance(parsed, EmailMessage):
        raise GraphError(400, "ErrorMimeContentConversionFailed", "The MIME content could not be parsed.")
    part = parsed.get_body(preferencelist=("html", "plain"))
    content = part.get_content() if isinstance(part, EmailMessage) else ""
    body_type = "html" if isinstance(part, EmailMessage) and part.get_content_subtype() == "html" else "text"
    attachments: list[tuple[str, str, bytes]] = []
    for attachment in parsed.iter_attachments():
        payload = attachment.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if len(data) > max_attachment_bytes:
            raise GraphError(413, "RequestEntityTooLarge", "A MIME attachment is over the inline limit.")
        attachments.append((attachment.get_filename() or "attachment", attachment.get_content_type(), data))
    headers = tuple((name, str(value)) for name, value in parsed.items() if name.lower() not in _STRUCTURAL)
    draft = Draft(
        subject=str(parsed.get("Subject", "")),
        body=str(content),
        body_content_type=body_type,
        to=_addresses(parsed, "To"),
        cc=_addresses(parsed, "Cc"),
        bcc=_addresses(parsed, "Bcc"),
        custom_headers=headers,
        attachments=tuple(attachments),
    )
    message_id = parsed.get("Message-ID")
    return MimeSubmission(draft, str(message_id).strip() if message_id else None)
