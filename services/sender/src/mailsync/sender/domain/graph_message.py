"""The Microsoft Graph `message` JSON of a command (for Outlook mailboxes; attachments are added separately).

Graph builds the MIME itself and sets its own Message-ID; threading on Outlook is by conversation (S6: reply
to the thread's last message), so no RFC threading headers are set here. The request id rides along as the
custom header `x-mailsync-request-id` (Graph only accepts `x-` headers in `internetMessageHeaders`).
"""

from __future__ import annotations

from typing import Any

from mailsync.common.contracts import Address, SendEmail
from mailsync.sender.domain.mime import MessageContent

REQUEST_ID_HEADER = "x-mailsync-request-id"


def graph_message(command: SendEmail, content: MessageContent, *, reply: bool) -> dict[str, Any]:
    """The `message` for `POST /me/messages` (a new thread) or `createReply` (`reply`: Graph sets the
    subject)."""
    if content.html is not None:
        body = {"contentType": "HTML", "content": content.html}
    else:
        body = {"contentType": "Text", "content": content.text or ""}
    message: dict[str, Any] = {
        "body": body,
        "toRecipients": _recipients(command.to),
        "ccRecipients": _recipients(command.cc),
        "bccRecipients": _recipients(command.bcc),
        "internetMessageHeaders": [{"name": REQUEST_ID_HEADER, "value": command.request_id}],
    }
    if not reply:
        message["subject"] = command.subject
    return message


def _recipients(addresses: tuple[Address, ...]) -> list[dict[str, Any]]:
    return [{"emailAddress": {"address": a.email, **({"name": a.name} if a.name else {})}} for a in addresses]
