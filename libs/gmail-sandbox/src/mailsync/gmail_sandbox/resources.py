"""Gmail REST resources rendered from the mailbox model, with the field names and formats of
``gmail.v1.json``.

Conventions of the real API kept here: 64-bit numbers (``historyId``, ``internalDate``) are JSON strings;
empty lists are omitted (an empty history answers without a ``history`` key, an empty list without
``messages``); ``format=minimal`` has no payload, ``metadata`` has only the top-level headers (optionally
filtered by ``metadataHeaders``, case-insensitively), ``full`` the parsed MIME tree, and ``raw`` the whole
message as base64url without a payload.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from mailsync.gmail_sandbox import mime
from mailsync.gmail_sandbox.errors import invalid_argument
from mailsync.gmail_sandbox.mailbox import (
    HistoryRecord,
    HistoryType,
    Label,
    Mailbox,
    MessageRef,
    StoredMessage,
)


class MessageFormat(StrEnum):
    """``format`` of ``messages.get`` / ``threads.get``."""

    MINIMAL = "minimal"
    METADATA = "metadata"
    FULL = "full"
    RAW = "raw"

    @classmethod
    def parse(cls, value: str | None, default: MessageFormat) -> MessageFormat:
        """Parse case-insensitively (the discovery enum is lowercase, clients send either).

        Raises:
            GoogleApiError: 400 for an unknown format.
        """
        if value is None:
            return default
        try:
            return cls(value.lower())
        except ValueError:
            raise invalid_argument(f"Invalid value at 'format' ({value})") from None


def message_resource(
    message: StoredMessage, fmt: MessageFormat, metadata_headers: list[str], inline_limit: int
) -> dict[str, Any]:
    """Render a ``Message`` in the requested format."""
    body: dict[str, Any] = {"id": message.id, "threadId": message.thread_id}
    if message.label_ids:
        body["labelIds"] = sorted(message.label_ids)
    body["snippet"] = mime.snippet(message.parsed)
    body["sizeEstimate"] = len(message.raw)
    body["historyId"] = str(message.history_id)
    body["internalDate"] = str(message.internal_date_ms)
    if fmt is MessageFormat.METADATA:
        wanted = {h.lower() for h in metadata_headers}
        headers = [
            {"name": name, "value": mime.header_text(message.parsed, name)}
            for name in message.parsed
            if not wanted or name.lower() in wanted
        ]
        body["payload"] = {
            "partId": "",
            "mimeType": message.parsed.get_content_type(),
            "filename": "",
            "headers": headers,
        }
    elif fmt is MessageFormat.FULL:
        body["payload"] = mime.build_payload(message.parsed, message.id, inline_limit).payload
    elif fmt is MessageFormat.RAW:
        body["raw"] = mime.b64url_encode(message.raw)
    return body


def attachment_resource(
    message: StoredMessage, attachment_id: str, inline_limit: int
) -> dict[str, Any] | None:
    """Render ``MessagePartBody`` for ``attachments.get``, or ``None`` for an unknown id."""
    tree = mime.build_payload(message.parsed, message.id, inline_limit)
    part = tree.attachments.get(attachment_id)
    if part is None:
        return None
    return {"attachmentId": attachment_id, "size": len(part.data), "data": mime.b64url_encode(part.data)}


def _ref(ref: MessageRef, with_labels: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"id": ref.id, "threadId": ref.thread_id}
    if with_labels and ref.label_ids:
        body["labelIds"] = list(ref.label_ids)
    return body


def history_resource(record: HistoryRecord, types: set[HistoryType]) -> dict[str, Any]:
    """Render one ``History`` record, keeping only the arrays of the requested types (all when empty)."""
    body: dict[str, Any] = {"id": str(record.id), "messages": [_ref(record.message, with_labels=False)]}
    if types and record.type not in types:
        return body
    entry: dict[str, Any] = {"message": _ref(record.message)}
    if record.type is HistoryType.MESSAGE_ADDED:
        body["messagesAdded"] = [entry]
    elif record.type is HistoryType.MESSAGE_DELETED:
        body["messagesDeleted"] = [entry]
    elif record.type is HistoryType.LABEL_ADDED:
        body["labelsAdded"] = [{**entry, "labelIds": list(record.labels)}]
    else:
        body["labelsRemoved"] = [{**entry, "labelIds": list(record.labels)}]
    return body


def label_resource(label: Label, mailbox: Mailbox | None = None) -> dict[str, Any]:
    """Render a ``Label``; with ``mailbox`` the message and thread counts are included (``labels.get``)."""
    body: dict[str, Any] = {"id": label.id, "name": label.name, "type": label.type}
    if label.type == "user":
        body["messageListVisibility"] = "show"
        body["labelListVisibility"] = "labelShow"
    if mailbox is not None:
        messages = [m for m in mailbox.messages.values() if label.id in m.label_ids]
        unread = [m for m in messages if "UNREAD" in m.label_ids]
        body["messagesTotal"] = len(messages)
        body["messagesUnread"] = len(unread)
        body["threadsTotal"] = len({m.thread_id for m in messages})
        body["threadsUnread"] = len({m.thread_id for m in unread})
    return body


def profile_resource(mailbox: Mailbox) -> dict[str, Any]:
    """Render ``Profile``."""
    return {
        "emailAddress": mailbox.address,
        "messagesTotal": len(mailbox.messages),
        "threadsTotal": len(mailbox.threads),
        "historyId": str(mailbox.history_id),
    }


def thread_resource(
    mailbox: Mailbox, thread_id: str, fmt: MessageFormat, metadata_headers: list[str], inline_limit: int
) -> dict[str, Any]:
    """Render a ``Thread`` with its messages in chronological order."""
    messages = [mailbox.messages[i] for i in mailbox.threads[thread_id]]
    return {
        "id": thread_id,
        "historyId": str(max(m.history_id for m in messages)),
        "messages": [message_resource(m, fmt, metadata_headers, inline_limit) for m in messages],
    }
