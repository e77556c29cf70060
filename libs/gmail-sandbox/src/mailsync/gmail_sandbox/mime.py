"""RFC 5322 / MIME handling with the standard ``email`` package: parsing, Gmail's payload tree, building mail.

Gmail quirks reproduced here:

* ``payload`` is a tree of ``MessagePart``: the top part has ``partId`` ``""``, its children ``"0"``, ``"1"``,
  grandchildren ``"1.0"``; container parts have ``body.size`` 0 and no data.
* ``body.data`` is the part's content after the Content-Transfer-Encoding is undone, as **base64url**
  (``-`` and ``_``, padded) - not standard base64.
* Parts with a filename (attachments), and any part larger than the inline limit, carry ``body.attachmentId``
  instead of ``data``; the bytes come from ``messages.attachments.get``.
* Header values are returned decoded (RFC 2047 encoded-words become text) and unfolded.
* ``snippet`` is the start of the text with whitespace collapsed and HTML-escaped (``'`` as ``&#39;``).
* When a message is sent, Gmail sets ``From`` to the mailbox and adds ``Message-ID`` and ``Date`` if absent;
  the body bytes are left untouched, so the header block is edited textually here rather than re-serialised.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr
from typing import Any

from mailsync.gmail_sandbox.errors import bad_request

_SNIPPET_LENGTH = 200


def b64url_encode(data: bytes) -> str:
    """Encode ``data`` as padded base64url, as Gmail does for ``raw`` and ``body.data``."""
    return base64.urlsafe_b64encode(data).decode("ascii")


def b64_decode_lenient(text: str) -> bytes:
    """Decode base64 or base64url, padded or not (Gmail accepts both alphabets for ``raw``).

    Raises:
        GoogleApiError: 400 when ``text`` is not base64.
    """
    cleaned = re.sub(r"\s+", "", text).replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_request("Invalid value for ByteString: " + text[:32]) from exc


def parse(raw: bytes) -> EmailMessage:
    """Parse RFC 822 bytes with the modern policy (decoded, unfolded header values)."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)  # noqa: S101 - policy.default always builds EmailMessage
    return message


def header_text(message: Message, name: str) -> str:
    """Return the decoded value of header ``name`` (case-insensitive), or ``""``; malformed values are kept
    raw."""
    value = message.get(name)
    if value is None:
        return ""
    try:
        return " ".join(str(value).split())
    except (ValueError, TypeError, IndexError):
        return " ".join(str(message.get_all(name, [""])[0]).split())


def message_ids(value: str) -> list[str]:
    """Extract every ``<id-left@id-right>`` from an In-Reply-To / References / Message-ID value."""
    return re.findall(r"<[^<>\s]+>", value)


def addresses(message: Message, *names: str) -> list[str]:
    """Return the lower-cased addresses found in the named address headers."""
    values: list[str] = []
    for name in names:
        values.extend(str(v) for v in message.get_all(name, []))
    return [addr.lower() for _, addr in getaddresses(values) if addr]


@dataclass
class PartBody:
    """One leaf part's decoded bytes, kept so ``attachments.get`` can serve it."""

    part_id: str
    data: bytes


@dataclass
class PayloadTree:
    """The rendered ``payload`` plus the leaf bodies that were moved behind an ``attachmentId``."""

    payload: dict[str, Any]
    attachments: dict[str, PartBody] = field(default_factory=dict)


def _headers(part: Message) -> list[dict[str, str]]:
    result = []
    for name, value in part.items():
        try:
            text = str(value)
        except (ValueError, TypeError, IndexError):
            text = str(part.get_all(name, [""])[0])
        result.append({"name": name, "value": " ".join(text.split())})
    return result


def _leaf_bytes(part: Message) -> bytes:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            return bytes(inner[0].as_bytes())
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def build_payload(message: Message, attachment_key: str, inline_limit: int) -> PayloadTree:
    """Render ``message`` as Gmail's ``MessagePart`` tree.

    ``attachment_key`` namespaces the generated attachment ids (the message id). Leaf parts with a filename or
    more than ``inline_limit`` bytes get ``body.attachmentId`` instead of ``body.data``.
    """
    tree = PayloadTree(payload={})

    def render(part: Message, part_id: str) -> dict[str, Any]:
        node: dict[str, Any] = {
            "partId": part_id,
            "mimeType": part.get_content_type(),
            "filename": part.get_filename() or "",
            "headers": _headers(part),
        }
        if part.is_multipart() and part.get_content_type() != "message/rfc822":
            node["body"] = {"size": 0}
            children = part.get_payload()
            assert isinstance(children, list)  # noqa: S101 - multipart payloads are lists
            prefix = f"{part_id}." if part_id else ""
            node["parts"] = [render(child, f"{prefix}{index}") for index, child in enumerate(children)]
            return node
        data = _leaf_bytes(part)
        if node["filename"] or len(data) > inline_limit:
            attachment_id = b64url_encode(f"{attachment_key}:{part_id}".encode()).rstrip("=")
            attachment_id = "ANGjdJ" + attachment_id
            tree.attachments[attachment_id] = PartBody(part_id=part_id, data=data)
            node["body"] = {"attachmentId": attachment_id, "size": len(data)}
        elif data:
            node["body"] = {"size": len(data), "data": b64url_encode(data)}
        else:
            node["body"] = {"size": 0}
        return node

    tree.payload = render(message, "")
    return tree


def attachment_total(message: Message) -> int:
    """Sum the decoded sizes of parts with a filename (what Gmail counts against its 25 MB attachment cap)."""
    total = 0
    for part in message.walk():
        if part.is_multipart():
            continue
        if part.get_filename():
            total += len(_leaf_bytes(part))
    return total


def snippet(message: Message) -> str:
    """Return Gmail's ``snippet``: about 200 characters of text, whitespace collapsed, HTML-escaped."""
    text = ""
    html_text = ""
    for part in message.walk():
        if part.is_multipart() or part.get_filename():
            continue
        content_type = part.get_content_type()
        if content_type not in {"text/plain", "text/html"}:
            continue
        data = _leaf_bytes(part)
        decoded = data.decode(part.get_content_charset() or "utf-8", errors="replace")
        if content_type == "text/plain" and not text:
            text = decoded
        elif content_type == "text/html" and not html_text:
            html_text = html.unescape(re.sub(r"<[^>]+>", " ", decoded))
    chosen = " ".join((text or html_text).split())[:_SNIPPET_LENGTH]
    return html.escape(chosen, quote=True).replace("&#x27;", "&#39;")


_HEADER_SPLIT = re.compile(rb"\r?\n\r?\n")


def _split_header_block(raw: bytes) -> tuple[list[bytes], bytes, bytes]:
    match = _HEADER_SPLIT.search(raw)
    if match is None:
        head, separator, body = raw, b"\r\n\r\n", b""
    else:
        head, separator, body = raw[: match.start()], raw[match.start() : match.end()], raw[match.end() :]
    lines = re.split(rb"\r?\n", head) if head else []
    fields: list[bytes] = []
    for line in lines:
        if line[:1] in {b" ", b"\t"} and fields:
            fields[-1] += b"\r\n" + line
        elif line:
            fields.append(line)
    return fields, separator, body


def _field_name(field_bytes: bytes) -> str:
    return field_bytes.split(b":", 1)[0].strip().decode("ascii", errors="replace").lower()


def prepare_outgoing(raw: bytes, mailbox_address: str, display_name: str, now: float) -> bytes:
    """Apply what Gmail does to a message sent from ``mailbox_address``; the body bytes are kept as they are.

    * ``From`` becomes the mailbox (keeping the given display name when the address already matches);
    * ``Message-ID`` is added when absent (``<...@mail.gmail.com>``), and ``Date`` when absent.
    """
    fields, separator, body = _split_header_block(raw)
    names = [_field_name(f) for f in fields]
    from_value = b""
    if "from" in names:
        from_value = fields[names.index("from")].split(b":", 1)[1]
    _, current = parseaddr(from_value.decode("utf-8", errors="replace").strip())
    if current.lower() != mailbox_address.lower():
        new_from = f"From: {display_name} <{mailbox_address}>" if display_name else f"From: {mailbox_address}"
        fields = [f for f, n in zip(fields, names, strict=True) if n != "from"]
        fields.insert(0, new_from.encode("utf-8"))
        names = [_field_name(f) for f in fields]
    if "message-id" not in names:
        fields.append(f"Message-ID: <{gmail_style_local_id()}@mail.gmail.com>".encode("ascii"))
    if "date" not in names:
        fields.append(b"Date: " + format_datetime(_utc(now)).encode("ascii"))
    return b"\r\n".join(fields) + (separator if separator else b"\r\n\r\n") + body


def strip_bcc(raw: bytes) -> bytes:
    """Remove ``Bcc`` from the header block (what recipients receive); the body bytes are kept as they are."""
    fields, separator, body = _split_header_block(raw)
    kept = [f for f in fields if _field_name(f) != "bcc"]
    return b"\r\n".join(kept) + separator + body


def gmail_style_local_id() -> str:
    """Return a random local part shaped like Gmail's ``CA...`` Message-ID left side."""
    return "CA" + secrets.token_urlsafe(33).replace("-", "+").replace("_", "=")


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


@dataclass(frozen=True)
class Attachment:
    """A file to attach when the sandbox composes a message itself (admin API)."""

    filename: str
    mime_type: str
    data: bytes


def compose(
    *,
    sender: str,
    to: list[str],
    subject: str,
    text: str,
    now: float,
    cc: list[str] | None = None,
    bcc: list[str] | None = None,
    html_body: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    message_id: str | None = None,
    attachments: list[Attachment] | None = None,
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    """Build an RFC 5322 message (CRLF line endings) the way a mail client would; returns the raw bytes."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = sender
    if to:
        message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    if bcc:
        message["Bcc"] = ", ".join(bcc)
    message["Subject"] = subject
    message["Date"] = format_datetime(_utc(now))
    domain = parseaddr(sender)[1].rpartition("@")[2] or "sandbox.invalid"
    message["Message-ID"] = message_id or make_msgid(domain=domain)
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = references
    for name, value in (extra_headers or {}).items():
        message[name] = value
    message.set_content(text)
    if html_body is not None:
        message.add_alternative(html_body, subtype="html")
    for attachment in attachments or []:
        maintype, _, subtype = attachment.mime_type.partition("/")
        message.add_attachment(
            attachment.data,
            maintype=maintype,
            subtype=subtype or "octet-stream",
            filename=attachment.filename,
        )
    return bytes(message.as_bytes())
