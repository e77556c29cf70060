"""Identifier formats that look and behave like Exchange Online's.

Graph message ids are long opaque base64 strings (``AAMkAGI2...AAA=``), conversation ids start ``AAQk``,
``internetMessageId`` is an RFC 5322 msg-id in angle brackets minted by Exchange
(``<...@....prod.outlook.com>``), and ``conversationIndex`` is the binary Thread-Index
(MSDN "Tracking Conversations": one reserved byte 0x01, five bytes of FILETIME, a 16-byte GUID; each reply
appends a five-byte child block). Clients must treat every id as opaque; the sandbox keeps them URL-safe.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import uuid

_FILETIME_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)


def _opaque(prefix: bytes, size: int) -> str:
    return base64.urlsafe_b64encode(prefix + secrets.token_bytes(size)).decode("ascii")


def new_message_id() -> str:
    """A new message (item) id."""
    return _opaque(b"\x00\x03\x24\x00", 68)


def new_folder_id() -> str:
    """A new mail folder id."""
    return _opaque(b"\x00\x02\x2e\x00", 41)


def new_attachment_id() -> str:
    """A new attachment id."""
    return _opaque(b"\x00\x03\x24\x00\x12\x00\x10", 38)


def new_conversation_id() -> str:
    """A new conversation id (Graph's start with ``AAQk``)."""
    return _opaque(b"\x00\x04\x24\x00", 32)


def new_internet_message_id(host: str) -> str:
    """A new RFC 5322 Message-ID in Exchange Online's style, e.g. ``<AB12...@host>``."""
    return f"<{secrets.token_hex(16).upper()}@{host}>"


def new_change_key() -> str:
    """A new item version (changeKey, also the body of the ``W/"..."`` etag)."""
    return base64.b64encode(b"\x09\x00\x00\x00" + secrets.token_bytes(16)).decode("ascii")


def _filetime_bytes(moment: dt.datetime) -> bytes:
    ticks = int((moment - _FILETIME_EPOCH).total_seconds() * 10_000_000)
    return ticks.to_bytes(8, "big")[:5]


def new_conversation_index(moment: dt.datetime) -> bytes:
    """A 22-byte Thread-Index header block for a message that starts a conversation."""
    return b"\x01" + _filetime_bytes(moment) + uuid.uuid4().bytes


def child_conversation_index(parent: bytes, moment: dt.datetime) -> bytes:
    """The parent's Thread-Index with a five-byte child block appended (time delta, random nibble)."""
    delta = max(0, int((moment - conversation_index_time(parent)).total_seconds() * 10_000_000))
    block = ((delta >> 18) & 0x7FFFFFFF).to_bytes(4, "big") + bytes([secrets.randbelow(256)])
    return parent + block


def conversation_index_time(index: bytes) -> dt.datetime:
    """The FILETIME carried in a Thread-Index header block."""
    ticks = int.from_bytes(index[1:6] + b"\x00\x00\x00", "big")
    return _FILETIME_EPOCH + dt.timedelta(microseconds=ticks // 10)


def conversation_index_guid(index: bytes) -> bytes | None:
    """The 16-byte GUID of a Thread-Index, or None when the value is too short to be one."""
    if len(index) < 22:
        return None
    return index[6:22]


def new_guid() -> str:
    """A lowercase GUID string (user, tenant, subscription and request ids)."""
    return str(uuid.uuid4())
