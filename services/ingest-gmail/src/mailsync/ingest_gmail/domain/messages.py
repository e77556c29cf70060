"""MIME parsing with the standard ``email`` package, and the rules deciding what a fetched message is.

Gmail quirks handled here:

- ``format=raw`` gives the RFC 5322 bytes exactly as stored; headers are decoded here (RFC 2047 words),
  ``Message-ID`` lookup is case-insensitive by construction of ``email.message``.
- ``internalDate`` (epoch ms, a string) is when Gmail accepted the message: it is the ordering time and the
  C7 cutoff compares against it; the ``Date`` header is the sender's claim, used for ``sent_at`` only when
  it parses.
- Mail the user sends from Gmail carries the ``SENT`` label (G2): it is ``outbound`` and ``sent_by_owner``.
  Drafts (``DRAFT`` without ``SENT``) are neither sent nor received and never become events.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from mailsync.common import mime
from mailsync.common.contracts import SNIPPET_MAX_CHARS, Direction
from mailsync.common.contracts.mail import HEADERS_MAX_ENTRIES, REFERENCES_MAX_ENTRIES

_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_EXTRA_HEADERS = (
    "auto-submitted",
    "precedence",
    "list-id",
    "list-unsubscribe",
    "x-auto-response-suppress",
    "return-path",
    "delivered-to",
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


@dataclass(frozen=True)
class ParsedAddress:
    """An address as parsed from a header."""

    email: str
    name: str | None


@dataclass(frozen=True)
class ParsedAttachment:
    """One attachment part with its decoded content."""

    filename: str
    content_type: str
    content: bytes
    content_id: str | None
    is_inline: bool


@dataclass(frozen=True)
class ParsedMessage:
    """What the event needs from the RFC 5322 bytes of one message."""

    subject: str
    from_: ParsedAddress | None
    to: tuple[ParsedAddress, ...]
    cc: tuple[ParsedAddress, ...]
    bcc: tuple[ParsedAddress, ...]
    reply_to: tuple[ParsedAddress, ...]
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    date: datetime | None
    text: str | None
    html: str | None
    attachments: tuple[ParsedAttachment, ...]
    headers: dict[str, str] = field(default_factory=dict)


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse RFC 5322 bytes. Never raises on malformed input: what cannot be read is left empty."""
    message = BytesParser(policy=mime.DEFAULT).parsebytes(raw)
    assert isinstance(message, EmailMessage)  # noqa: S101 - policy.default always builds EmailMessage
    text, html, attachments = _walk(message)
    return ParsedMessage(
        subject=_header(message, "subject")[:998],
        from_=next(iter(_addresses(message, "from")), None),
        to=_addresses(message, "to"),
        cc=_addresses(message, "cc"),
        bcc=_addresses(message, "bcc"),
        reply_to=_addresses(message, "reply-to"),
        message_id=_first_id(_header(message, "message-id")),
        in_reply_to=_first_id(_header(message, "in-reply-to")),
        references=_trim_references(tuple(_MESSAGE_ID.findall(_header(message, "references")))),
        date=_date(_header(message, "date")),
        text=text,
        html=html,
        attachments=tuple(attachments),
        headers={
            name: value[:998]
            for name in _EXTRA_HEADERS[:HEADERS_MAX_ENTRIES]
            if (value := _header(message, name))
        },
    )


def direction_of(
    labels: tuple[str, ...], from_: ParsedAddress | None, mailbox_address: str
) -> tuple[Direction, bool]:
    """``(direction, sent_by_owner)``: outbound when Gmail labels it ``SENT`` or the mailbox wrote it (G2)."""
    sent_by_owner = "SENT" in labels or (from_ is not None and from_.email.lower() == mailbox_address.lower())
    return ("outbound" if sent_by_owner else "inbound"), sent_by_owner


def is_draft(labels: tuple[str, ...]) -> bool:
    """A draft is neither sent nor received: it never syncs."""
    return "DRAFT" in labels and "SENT" not in labels


def is_before_cutoff(internal_date_ms: int, cutoff: datetime) -> bool:
    """C7: mail Gmail accepted before the connection was made is never imported."""
    return internal_date_ms < int(cutoff.timestamp() * 1000)


def snippet_text(snippet: str) -> str:
    """Gmail's snippet is HTML-escaped; unescape and cap it."""
    import html  # noqa: PLC0415 - stdlib, only needed here

    return html.unescape(snippet)[:SNIPPET_MAX_CHARS]


def from_epoch_ms(value: str | int) -> datetime:
    """Gmail's ``internalDate`` (epoch ms, a string) as a UTC datetime."""
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def _header(message: EmailMessage, name: str) -> str:
    try:
        value = message.get(name)
    except (ValueError, IndexError, TypeError):  # malformed header the parser could not decode
        return ""
    return " ".join(str(value).split()) if value is not None else ""


def _addresses(message: EmailMessage, name: str) -> tuple[ParsedAddress, ...]:
    try:
        values = [str(v) for v in message.get_all(name, [])]
    except (ValueError, IndexError, TypeError):
        return ()
    result: list[ParsedAddress] = []
    for display, email in getaddresses(values):
        if _EMAIL.match(email) and len(email) <= 320:
            result.append(ParsedAddress(email=email, name=display[:998] or None))
    return tuple(result)


def _first_id(value: str) -> str | None:
    match = _MESSAGE_ID.search(value)
    return match.group(0) if match else None


def _trim_references(references: tuple[str, ...]) -> tuple[str, ...]:
    if len(references) <= REFERENCES_MAX_ENTRIES:
        return references
    return (references[0], *references[-(REFERENCES_MAX_ENTRIES - 1) :])


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _walk(message: EmailMessage) -> tuple[str | None, str | None, list[ParsedAttachment]]:
    text: str | None = None
    html: str | None = None
    attachments: list[ParsedAttachment] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        filename = part.get_filename()
        content_type = part.get_content_type()
        if disposition is None and filename is None and content_type in {"text/plain", "text/html"}:
            body = _text_content(part)
            if content_type == "text/plain" and text is None:
                text = body
                continue
            if content_type == "text/html" and html is None:
                html = body
                continue
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        content_id = part.get("content-id")
        attachments.append(
            ParsedAttachment(
                filename=(filename or "")[:1024],
                content_type=content_type[:255],
                content=content,
                content_id=str(content_id).strip().strip("<>")[:998] if content_id else None,
                is_inline=disposition == "inline",
            )
        )
    return text, html, attachments


def _text_content(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # unknown charset or broken transfer encoding
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""
