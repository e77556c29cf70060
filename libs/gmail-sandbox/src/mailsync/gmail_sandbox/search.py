"""The subset of Gmail's search syntax (``q``) the product needs, evaluated against stored messages.

Supported: ``after:`` / ``before:`` (a date ``YYYY/MM/DD`` or epoch seconds), ``newer_than:`` /
``older_than:`` (``Nd``, ``Nm``, ``Ny``, ``Nh``), ``in:`` (``inbox``, ``sent``, ``trash``, ``spam``,
``anywhere``, ...), ``label:``, ``is:unread|read|starred``, ``from:``, ``to:``, ``cc:``, ``bcc:``,
``subject:``, ``rfc822msgid:``, ``has:attachment``, a leading ``-`` to negate a term, and bare words (matched
case-insensitively in headers and text). Terms are ANDed.

Gmail quirks kept: a date like ``after:2024/01/31`` means midnight **Pacific time** (the search operators page
recommends epoch seconds for exact times); ``before:`` is exclusive; ``rfc822msgid:`` accepts the id with or
without angle brackets. ``OR``, braces and parentheses are not supported and answer 400 rather than being
silently misread.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailsync.gmail_sandbox import mime
from mailsync.gmail_sandbox.errors import invalid_argument
from mailsync.gmail_sandbox.mailbox import StoredMessage

Predicate = Callable[[StoredMessage], bool]

try:
    _PACIFIC: timezone | ZoneInfo = ZoneInfo("America/Los_Angeles")
except ZoneInfoNotFoundError:  # minimal images without tzdata: standard time is close enough
    _PACIFIC = timezone(timedelta(hours=-8))

_UNITS = {"h": 3600, "d": 86400, "m": 30 * 86400, "y": 365 * 86400}
_IN_LABELS = {
    "inbox": "INBOX",
    "sent": "SENT",
    "trash": "TRASH",
    "spam": "SPAM",
    "draft": "DRAFT",
    "drafts": "DRAFT",
    "starred": "STARRED",
    "important": "IMPORTANT",
    "chat": "CHAT",
    "chats": "CHAT",
}


def _epoch_ms(value: str) -> int:
    if value.isdigit():
        return int(value) * 1000
    match = re.fullmatch(r"(\d{4})[/-](\d{1,2})[/-](\d{1,2})", value)
    if not match:
        raise invalid_argument(f"Invalid date in query: {value}")
    year, month, day = (int(g) for g in match.groups())
    return int(datetime(year, month, day, tzinfo=_PACIFIC).timestamp() * 1000)


def _age_seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)([hdmy])", value)
    if not match:
        raise invalid_argument(f"Invalid relative date in query: {value}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _text_of(message: StoredMessage) -> str:
    parts = [f"{k} {v}" for k, v in message.parsed.items()]
    for part in message.parsed.walk():
        if part.get_content_maintype() == "text" and not part.get_filename():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                parts.append(payload.decode(part.get_content_charset() or "utf-8", errors="replace"))
    return "\n".join(parts).casefold()


def _header_contains(names: tuple[str, ...], needle: str) -> Predicate:
    lowered = needle.casefold()

    def check(message: StoredMessage) -> bool:
        return any(lowered in mime.header_text(message.parsed, n).casefold() for n in names)

    return check


def _term(key: str, value: str, now: float) -> Predicate:  # noqa: PLR0911 - one branch per operator
    if key == "after":
        after = _epoch_ms(value)
        return lambda m: m.internal_date_ms >= after
    if key == "before":
        before = _epoch_ms(value)
        return lambda m: m.internal_date_ms < before
    if key == "newer_than":
        newer = int((now - _age_seconds(value)) * 1000)
        return lambda m: m.internal_date_ms >= newer
    if key == "older_than":
        older = int((now - _age_seconds(value)) * 1000)
        return lambda m: m.internal_date_ms < older
    if key == "in":
        if value.lower() == "anywhere":
            return lambda _m: True
        label = _IN_LABELS.get(value.lower(), value)
        return lambda m: label in m.label_ids
    if key == "label":
        return lambda m: value in m.label_ids or value.upper() in m.label_ids
    if key == "is":
        flag = value.lower()
        if flag == "read":
            return lambda m: "UNREAD" not in m.label_ids
        label = {"unread": "UNREAD", "starred": "STARRED", "important": "IMPORTANT"}.get(flag, flag.upper())
        return lambda m: label in m.label_ids
    if key == "has" and value.lower() == "attachment":
        return lambda m: any(p.get_filename() for p in m.parsed.walk())
    if key == "rfc822msgid":
        wanted = value.strip("<>").casefold()
        return lambda m: m.rfc_message_id.strip("<>").casefold() == wanted
    if key in {"from", "to", "cc", "bcc", "subject"}:
        return _header_contains((key,), value)
    raise invalid_argument(f"Unsupported search operator in the sandbox: {key}:")


def compile_query(query: str, now: float) -> Predicate:
    """Compile ``q`` into a predicate over stored messages.

    Raises:
        GoogleApiError: 400 for malformed values or syntax the sandbox does not implement.
    """
    try:
        tokens = shlex.split(query)
    except ValueError as exc:
        raise invalid_argument("Invalid query") from exc
    predicates: list[Predicate] = []
    for raw_token in tokens:
        if raw_token in {"OR", "AND"} or raw_token[:1] in {"{", "("}:
            raise invalid_argument(f"Unsupported search syntax in the sandbox: {raw_token}")
        negate = raw_token.startswith("-")
        token = raw_token[1:] if negate else raw_token
        key, sep, value = token.partition(":")
        if sep and re.fullmatch(r"[a-z_0-9]+", key.lower()) and value:
            predicate = _term(key.lower(), value, now)
        else:
            needle = token.casefold()
            predicate = _word(needle)
        predicates.append(_negated(predicate) if negate else predicate)
    return lambda m: all(p(m) for p in predicates)


def _word(needle: str) -> Predicate:
    return lambda m: needle in _text_of(m)


def _negated(predicate: Predicate) -> Predicate:
    return lambda m: not predicate(m)
