"""The RFC 5322 message of a send, built with the standard `email` package (S6 threading included).

* ``Message-ID`` is minted by mailsync, deterministically from the request id
  (``<uuid5(request_id)@domain>``): the same command always carries the same id, so after a crash the
  sender finds out whether it was already sent by searching the mailbox for it (`rfc822msgid:`), and
  recipients' systems can drop an SMTP resend as a duplicate.
* A reply (S6) carries ``In-Reply-To`` (the parent's Message-ID), ``References`` (the thread's references,
  oldest first, ending with the parent's id, RFC 5322 §3.6.4) and the thread's subject with one ``Re:``
  prefix (§3.6.5). Gmail additionally needs the ``threadId`` on the API call; the adapter sets it.
* Bodies: text and/or HTML as ``multipart/alternative``; attachments make it ``multipart/mixed``. ``Bcc`` is
  written into the message: Gmail reads recipients from the headers and strips it from delivered copies; the
  SMTP adapter sends it as envelope recipients only.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime

from mailsync.common import mime
from mailsync.common.contracts import Address, AttachmentMeta, ReplyContext, SendEmail

_MESSAGE_ID_NAMESPACE = uuid.UUID("6f1d3c2a-8b4e-4f7a-9d21-5c0e7b3a9f44")
_REPLY_PREFIX = re.compile(r"^\s*re\s*:", re.IGNORECASE)


@dataclass(frozen=True)
class MessageContent:
    """A command's body and attachment bytes, fetched from where they are stored."""

    text: str | None
    html: str | None
    attachments: Sequence[tuple[AttachmentMeta, bytes]] = ()


def message_id_for(request_id: str, domain: str) -> str:
    """The Message-ID of the command with `request_id` (with angle brackets)."""
    return f"<{uuid.uuid5(_MESSAGE_ID_NAMESPACE, request_id).hex}@{domain}>"


def reply_subject(subject: str) -> str:
    """`subject` with exactly one leading "Re: " (kept as is when it already has one)."""
    return subject if _REPLY_PREFIX.match(subject) else f"Re: {subject}"


def references_for(context: ReplyContext) -> tuple[str, ...]:
    """The thread's references followed by the parent's id, without duplicates (RFC 5322 §3.6.4)."""
    seen: dict[str, None] = dict.fromkeys(context.references)
    seen.setdefault(context.in_reply_to, None)
    return tuple(seen)


def build_message(
    command: SendEmail,
    content: MessageContent,
    *,
    sender: Address,
    message_id: str,
    date: datetime,
) -> EmailMessage:
    """The message to send for `command` from `sender`."""
    message = EmailMessage(policy=mime.SMTP)
    message["From"] = _header_address(sender)
    for name, addresses in (("To", command.to), ("Cc", command.cc), ("Bcc", command.bcc)):
        if addresses:
            message[name] = [_header_address(a) for a in addresses]
    context = command.reply_context
    message["Subject"] = reply_subject(command.subject) if context is not None else command.subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    if context is not None:
        message["In-Reply-To"] = context.in_reply_to
        message["References"] = " ".join(references_for(context))
    if content.text is not None:
        message.set_content(content.text, subtype="plain", cte=_transfer_encoding(content.text))
        if content.html is not None:
            message.add_alternative(content.html, subtype="html", cte=_transfer_encoding(content.html))
    elif content.html is not None:
        message.set_content(content.html, subtype="html", cte=_transfer_encoding(content.html))
    for meta, data in content.attachments:
        maintype, _, subtype = meta.content_type.partition("/")
        message.add_attachment(
            data,
            maintype=maintype,
            subtype=subtype,
            filename=meta.filename,
            disposition="inline" if meta.is_inline else "attachment",
            cid=f"<{meta.content_id}>" if meta.content_id else None,
        )
    return message


def encode(message: EmailMessage) -> bytes:
    """The message's bytes as sent (CRLF line endings)."""
    return message.as_bytes(policy=mime.SMTP)


def _header_address(address: Address) -> HeaderAddress:
    return HeaderAddress(display_name=address.name or "", addr_spec=address.email)


def _transfer_encoding(text: str) -> str:
    # Quoted-printable keeps mostly-ASCII text readable and lines short; base64 is denser for the rest.
    non_ascii = sum(1 for char in text if ord(char) > 127)
    return "quoted-printable" if non_ascii * 4 < max(len(text), 1) else "base64"
