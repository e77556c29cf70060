"""From a Graph `message` (as a delta round with `MESSAGE_FIELDS` returns it) to the canonical fields.

Graph quirks handled here:

- `conversationId` is the thread id (S6/O2); `internetMessageId` is the RFC 5322 Message-ID; In-Reply-To and
  References are only in `internetMessageHeaders`, which Graph returns only when selected, and mail created
  inside the tenant may carry none at all.
- Delta rounds report deletions as `{"id", "@removed"}` and updates as partial items; both are skipped (an
  update of a message already published is recognised by the handler's published-id record).
- Sent Items holds what the owner sent (`direction` outbound, `sent_by_owner`); drafts never sync.
- C7: nothing received before the cutoff syncs, even when a resync's delta filter is older.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from mailsync.common.contracts import SNIPPET_MAX_CHARS, Address
from mailsync.common.contracts.mail import HEADERS_MAX_ENTRIES, REFERENCES_MAX_ENTRIES

MESSAGE_FIELDS: tuple[str, ...] = (
    "internetMessageId",
    "conversationId",
    "internetMessageHeaders",
    "subject",
    "from",
    "sender",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "sentDateTime",
    "receivedDateTime",
    "hasAttachments",
    "body",
    "bodyPreview",
    "isDraft",
)
"""`$select` of delta rounds: what the canonical event needs."""

KEPT_HEADERS = frozenset({"thread-index", "thread-topic", "auto-submitted", "x-auto-response-suppress"})
_MSG_ID = re.compile(r"<[^<>\s]+>")


@dataclass(frozen=True)
class AttachmentPolicy:
    """O3: which attachments' content is fetched and stored (the router applies the sync decision)."""

    max_bytes: int
    allowed_extensions: frozenset[str]

    def allows(self, filename: str, size: int) -> bool:
        """Whether the content of an attachment of this name and size is within the policy."""
        if size > self.max_bytes:
            return False
        if not self.allowed_extensions:
            return True
        return PurePosixPath(filename.lower()).suffix.lstrip(".") in self.allowed_extensions


def is_removal(item: Mapping[str, Any]) -> bool:
    """A delta item that reports a deletion or a move out of the folder."""
    return "@removed" in item


def parse_graph_time(value: object) -> datetime | None:
    """A Graph `DateTimeOffset` (`2026-11-28T12:00:00Z`, possibly with fractional seconds)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def graph_time(value: datetime) -> str:
    """A datetime as Graph writes it in `$filter` (UTC, `Z`)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def should_ingest(item: Mapping[str, Any], cutoff: datetime) -> bool:
    """Whether a delta item is a complete, non-draft message received at or after the C7 cutoff.

    Graph's times have whole seconds, so the cutoff is compared at that precision (a message of the very
    second the connection was made syncs).
    """
    if is_removal(item) or item.get("isDraft") is True:
        return False
    received = parse_graph_time(item.get("receivedDateTime"))
    return (
        received is not None
        and received >= cutoff.replace(microsecond=0)
        and ("from" in item or "sender" in item)
    )


def address(value: object) -> Address | None:
    """A Graph `recipient` (`{"emailAddress": {"address", "name"}}`) as an `Address`; None when unusable."""
    if not isinstance(value, Mapping):
        return None
    email = value.get("emailAddress")
    if not isinstance(email, Mapping):
        return None
    raw = email.get("address")
    if not isinstance(raw, str) or "@" not in raw or any(c.isspace() for c in raw):
        return None
    name = email.get("name")
    return Address(email=raw, name=name if isinstance(name, str) and name and name != raw else None)


def addresses(values: object) -> tuple[Address, ...]:
    """A recipient list, dropping entries without a usable address."""
    if not isinstance(values, list):
        return ()
    return tuple(a for a in (address(v) for v in values) if a is not None)


def message_ids(value: str) -> tuple[str, ...]:
    """The `<...>` message ids of a header value, in order."""
    return tuple(_MSG_ID.findall(value))


def threading_headers(
    headers: Iterable[Mapping[str, Any]],
) -> tuple[str | None, tuple[str, ...], dict[str, str]]:
    """(In-Reply-To, References, kept extra headers) from `internetMessageHeaders`."""
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    kept: dict[str, str] = {}
    for header in headers:
        name, value = header.get("name"), header.get("value")
        if not isinstance(name, str) or not isinstance(value, str):
            continue
        lowered = name.lower()
        if lowered == "in-reply-to":
            ids = message_ids(value)
            in_reply_to = ids[0] if ids else None
        elif lowered == "references":
            references = message_ids(value)
        elif lowered in KEPT_HEADERS and len(kept) < HEADERS_MAX_ENTRIES:
            kept[lowered] = value[:998]
    if len(references) > REFERENCES_MAX_ENTRIES:
        references = (references[0], *references[-(REFERENCES_MAX_ENTRIES - 1) :])
    return in_reply_to, references, kept


def snippet(item: Mapping[str, Any]) -> str:
    """The body preview, trimmed to the contract's limit."""
    preview = item.get("bodyPreview")
    return preview[:SNIPPET_MAX_CHARS] if isinstance(preview, str) else ""


def body_parts(item: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(text, html) of a Graph `itemBody`."""
    body = item.get("body")
    if not isinstance(body, Mapping) or not isinstance(body.get("content"), str):
        return None, None
    content: str = body["content"]
    if str(body.get("contentType", "")).lower() == "html":
        return None, content
    return content, None
