"""Graph JSON for mailbox objects, and parsing of the JSON clients send.

Quirks kept from the real service (Graph ``message`` resource docs):

* ``internetMessageHeaders`` and ``uniqueBody`` are only returned when named in ``$select``.
* Every item carries ``@odata.etag`` (``W/"<changeKey>"``); ``conversationIndex`` is base64 binary.
* A request body naming a property that ``message`` doesn't have is rejected with 400 ``RequestBodyRead``.
* ``internetMessageHeaders`` sent by a client may only carry custom headers whose names start ``x-``/``X-``;
  standard headers such as ``In-Reply-To`` are rejected (``InvalidInternetMessageHeader``).
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from collections.abc import Iterable
from typing import Any

from mailsync.graph_sandbox.clock import to_graph_timestamp
from mailsync.graph_sandbox.errors import GraphError, bad_request
from mailsync.graph_sandbox.mailbox import Attachment, Draft, EmailAddress, Folder, Mailbox, Message

MESSAGE_PROPERTIES: tuple[str, ...] = (
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
)
SELECT_ONLY_PROPERTIES: tuple[str, ...] = ("internetMessageHeaders", "uniqueBody")
ALL_MESSAGE_PROPERTIES = frozenset(MESSAGE_PROPERTIES + SELECT_ONLY_PROPERTIES)

WRITABLE_MESSAGE_PROPERTIES = frozenset(
    {
        "@odata.type",
        "subject",
        "body",
        "toRecipients",
        "ccRecipients",
        "bccRecipients",
        "replyTo",
        "from",
        "sender",
        "importance",
        "internetMessageHeaders",
        "attachments",
        "categories",
        "isRead",
        "isDeliveryReceiptRequested",
        "isReadReceiptRequested",
        "flag",
    }
)

_TAG = re.compile(r"<[^>]+>")


def etag(message: Message) -> str:
    """The weak etag of a message version."""
    return f'W/"{message.change_key}"'


def recipient_json(address: EmailAddress) -> dict[str, Any]:
    """``{"emailAddress": {"name", "address"}}``."""
    return {"emailAddress": {"name": address.name or address.address, "address": address.address}}


def _preview(message: Message) -> str:
    text = message.body
    if message.body_content_type == "html":
        text = html.unescape(_TAG.sub(" ", text))
    return " ".join(text.split())[:255]


def convert_body(body: dict[str, Any], body_type: str) -> dict[str, Any]:
    """An ``itemBody`` in ``body_type``: HTML loses its tags for ``text``; text is escaped into HTML."""
    if body["contentType"] == body_type:
        return body
    if body_type == "text":
        text = html.unescape(_TAG.sub(" ", body["content"]))
        return {
            "contentType": "text",
            "content": "\n".join(" ".join(line.split()) for line in text.splitlines()),
        }
    escaped = html.escape(body["content"]).replace("\n", "<br>")
    return {"contentType": "html", "content": f"<html><body>{escaped}</body></html>"}


def _body_json(message: Message) -> dict[str, Any]:
    return {"contentType": message.body_content_type, "content": message.body}


def message_json(
    message: Message,
    *,
    select: Iterable[str] | None = None,
    web_link_base: str = "https://outlook.office365.com/owa/",
    expand_attachments: bool = False,
    body_type: str | None = None,
) -> dict[str, Any]:
    """The Graph representation of ``message``; ``select`` limits the properties (``id`` always stays).

    ``body_type`` (``text``/``html``, from ``Prefer: outlook.body-content-type``) converts ``body`` and
    ``uniqueBody``; by default they come in the stored type.
    """
    wanted = list(MESSAGE_PROPERTIES) if select is None else ["id", *(p for p in select if p != "id")]
    values: dict[str, Any] = {}
    for name in wanted:
        values[name] = _message_property(message, name, web_link_base)
        if name in {"body", "uniqueBody"} and body_type is not None:
            values[name] = convert_body(values[name], body_type)
    result: dict[str, Any] = {"@odata.etag": etag(message), **values}
    if expand_attachments:
        result["attachments"] = [attachment_json(a) for a in message.attachments]
    return result


def _message_property(message: Message, name: str, web_link_base: str) -> Any:  # noqa: PLR0911, PLR0912
    match name:
        case "id":
            return message.id
        case "createdDateTime":
            return to_graph_timestamp(message.created)
        case "lastModifiedDateTime":
            return to_graph_timestamp(message.last_modified)
        case "changeKey":
            return message.change_key
        case "categories":
            return list(message.categories)
        case "receivedDateTime":
            return to_graph_timestamp(message.received)
        case "sentDateTime":
            return to_graph_timestamp(message.sent) if message.sent else None
        case "hasAttachments":
            return any(not a.is_inline for a in message.attachments)
        case "internetMessageId":
            return message.internet_message_id
        case "subject":
            return message.subject
        case "bodyPreview":
            return _preview(message)
        case "importance":
            return message.importance
        case "parentFolderId":
            return message.folder_id
        case "conversationId":
            return message.conversation_id
        case "conversationIndex":
            return base64.b64encode(message.conversation_index).decode("ascii")
        case "isDeliveryReceiptRequested" | "isReadReceiptRequested":
            return False
        case "isRead":
            return message.is_read
        case "isDraft":
            return message.is_draft
        case "webLink":
            return f"{web_link_base}?ItemID={message.id}&exvsurl=1&viewmodel=ReadMessageItem"
        case "inferenceClassification":
            return "focused"
        case "body" | "uniqueBody":
            return _body_json(message)
        case "sender" | "from":
            return recipient_json(message.sender) if message.sender else None
        case "toRecipients":
            return [recipient_json(r) for r in message.to]
        case "ccRecipients":
            return [recipient_json(r) for r in message.cc]
        case "bccRecipients":
            return [recipient_json(r) for r in message.bcc]
        case "replyTo":
            return [recipient_json(r) for r in message.reply_to]
        case "flag":
            return {"flagStatus": "notFlagged"}
        case "internetMessageHeaders":
            return [{"name": k, "value": v} for k, v in message.headers]
    raise bad_request(
        f"Could not find a property named '{name}' on type 'microsoft.graph.message'.", "BadRequest"
    )


def parse_select(raw: str | None) -> list[str] | None:
    """Parse ``$select`` for messages; an unknown property is Graph's 400."""
    if raw is None or not raw.strip():
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    for name in names:
        if name not in ALL_MESSAGE_PROPERTIES:
            raise bad_request(
                f"Could not find a property named '{name}' on type 'microsoft.graph.message'.",
                "RequestBroker--ParseUri",
            )
    return names


def attachment_json(attachment: Attachment, *, include_content: bool = True) -> dict[str, Any]:
    """A ``#microsoft.graph.fileAttachment``."""
    result: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.fileAttachment",
        "@odata.mediaContentType": attachment.content_type,
        "id": attachment.id,
        "lastModifiedDateTime": to_graph_timestamp(attachment.last_modified),
        "name": attachment.name,
        "contentType": attachment.content_type,
        "size": attachment.size,
        "isInline": attachment.is_inline,
        "contentId": attachment.content_id,
        "contentLocation": None,
    }
    if include_content:
        result["contentBytes"] = base64.b64encode(attachment.content).decode("ascii")
    return result


def folder_json(mailbox: Mailbox, folder: Folder) -> dict[str, Any]:
    """A ``mailFolder`` with its counts."""
    messages = mailbox.in_folder(folder.id)
    return {
        "id": folder.id,
        "displayName": folder.display_name,
        "parentFolderId": None,
        "childFolderCount": 0,
        "unreadItemCount": sum(1 for m in messages if not m.is_read),
        "totalItemCount": len(messages),
        "isHidden": False,
    }


# --- parsing of client payloads ------------------------------------------------------------------------


def _recipients(payload: dict[str, Any], key: str) -> tuple[EmailAddress, ...]:
    raw = payload.get(key) or []
    if not isinstance(raw, list):
        raise bad_request(f"Invalid value for '{key}'.", "RequestBodyRead")
    result: list[EmailAddress] = []
    for item in raw:
        email = item.get("emailAddress") if isinstance(item, dict) else None
        address = email.get("address") if isinstance(email, dict) else None
        if not isinstance(address, str) or "@" not in address:
            raise GraphError(
                400,
                "ErrorInvalidRecipients",
                "At least one recipient isn't valid., A message can't be sent "
                "because it contains no recipients.",
            )
        name = email.get("name") if isinstance(email, dict) else None
        result.append(EmailAddress(address, name if isinstance(name, str) else ""))
    return tuple(result)


def _custom_headers(payload: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    raw = payload.get("internetMessageHeaders") or []
    headers: list[tuple[str, str]] = []
    for item in raw:
        name, value = item.get("name"), item.get("value")
        if not isinstance(name, str) or not isinstance(value, str):
            raise bad_request("Invalid internetMessageHeaders entry.", "RequestBodyRead")
        if not name.lower().startswith("x-"):
            raise bad_request(
                f"The internet message header name '{name}' should start with 'x-' or 'X-'.",
                "InvalidInternetMessageHeader",
            )
        headers.append((name, value))
    return tuple(headers)


def parse_file_attachment(item: Any, *, max_bytes: int) -> tuple[str, str, bytes]:
    """Decode a ``fileAttachment`` payload into (name, contentType, bytes).

    Content over ``max_bytes`` (3 MB: larger files need an upload session) is rejected with 413.
    """
    if not isinstance(item, dict) or item.get("@odata.type") not in {
        "#microsoft.graph.fileAttachment",
        "microsoft.graph.fileAttachment",
    }:
        raise bad_request("Only '#microsoft.graph.fileAttachment' is supported by the sandbox.")
    name, content_bytes = item.get("name"), item.get("contentBytes")
    if not isinstance(name, str) or not isinstance(content_bytes, str):
        raise bad_request("A file attachment needs 'name' and 'contentBytes'.", "ErrorInvalidProperty")
    try:
        content = base64.b64decode(content_bytes, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_request("Invalid base64 in 'contentBytes'.", "ErrorInvalidProperty") from exc
    if len(content) > max_bytes:
        raise GraphError(
            413,
            "RequestEntityTooLarge",
            f"The attachment is {len(content)} bytes; attach files over {max_bytes} bytes with an upload "
            "session.",
        )
    content_type = item.get("contentType")
    return name, content_type if isinstance(content_type, str) else "application/octet-stream", content


def parse_draft(payload: Any, *, max_attachment_bytes: int) -> Draft:
    """Turn a client's ``message`` JSON into a :class:`Draft`; unknown properties are Graph's 400."""
    if not isinstance(payload, dict):
        raise bad_request("The message must be a JSON object.", "RequestBodyRead")
    for key in payload:
        if key not in WRITABLE_MESSAGE_PROPERTIES:
            raise bad_request(
                f"The property '{key}' does not exist on type 'microsoft.graph.message'. Make sure to only "
                "use "
                "property names that are defined by the type or mark the type as open type.",
                "RequestBodyRead",
            )
    body = payload.get("body") or {}
    content_type = str(body.get("contentType", "text")).lower()
    if content_type not in {"text", "html"}:
        raise bad_request(f"Invalid body contentType '{content_type}'.", "RequestBodyRead")
    return Draft(
        subject=str(payload.get("subject") or ""),
        body=str(body.get("content") or ""),
        body_content_type=content_type,
        to=_recipients(payload, "toRecipients"),
        cc=_recipients(payload, "ccRecipients"),
        bcc=_recipients(payload, "bccRecipients"),
        reply_to=_recipients(payload, "replyTo"),
        custom_headers=_custom_headers(payload),
        attachments=tuple(
            parse_file_attachment(a, max_bytes=max_attachment_bytes) for a in payload.get("attachments") or []
        ),
        importance=str(payload.get("importance") or "normal").lower(),
    )
