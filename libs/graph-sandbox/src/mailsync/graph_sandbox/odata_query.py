"""The part of OData ``$filter`` the product needs on messages.

Supported: comparisons ``<property> <op> <literal>`` joined by ``and``, where op is one of
``eq ne gt ge lt le`` and property one of the names in :data:`FILTERABLE`. Literals are quoted strings
(``''`` escapes a quote), ``true``/``false``, or unquoted DateTimeOffset values (``2024-01-01T00:00:00Z``).
Anything else is answered like Graph answers an unsupported clause: 400 ``BadRequest``
"Invalid filter clause". Delta queries accept only ``receivedDateTime ge|gt`` (message-delta docs); the
handler checks that restriction with :func:`only_received_after`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import operator
import re
from collections.abc import Callable
from typing import Any

from mailsync.graph_sandbox.clock import parse_graph_timestamp
from mailsync.graph_sandbox.errors import bad_request
from mailsync.graph_sandbox.mailbox import Message

_DATE_FIELDS: dict[str, Callable[[Message], dt.datetime | None]] = {
    "receivedDateTime": lambda m: m.received,
    "sentDateTime": lambda m: m.sent,
    "createdDateTime": lambda m: m.created,
    "lastModifiedDateTime": lambda m: m.last_modified,
}
_TEXT_FIELDS: dict[str, Callable[[Message], str | None]] = {
    "conversationId": lambda m: m.conversation_id,
    "internetMessageId": lambda m: m.internet_message_id,
    "subject": lambda m: m.subject,
    "from/emailAddress/address": lambda m: m.sender.address if m.sender else None,
}
_BOOL_FIELDS: dict[str, Callable[[Message], bool]] = {
    "isRead": lambda m: m.is_read,
    "isDraft": lambda m: m.is_draft,
    "hasAttachments": lambda m: bool(m.attachments),
}
FILTERABLE = frozenset(_DATE_FIELDS) | frozenset(_TEXT_FIELDS) | frozenset(_BOOL_FIELDS)

_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
_CLAUSE = re.compile(
    r"^\s*(?P<prop>[A-Za-z/]+)\s+(?P<op>eq|ne|gt|ge|lt|le)\s+"
    r"(?P<value>'(?:[^']|'')*'|true|false|\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)\s*$"
)
_AND = re.compile(r"\s+and\s+(?=(?:[^']*'[^']*')*[^']*$)")


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One ``property op literal`` clause."""

    prop: str
    op: str
    value: Any

    def matches(self, message: Message) -> bool:
        """Whether ``message`` satisfies the clause (a missing value never does)."""
        actual: Any
        if self.prop in _DATE_FIELDS:
            actual = _DATE_FIELDS[self.prop](message)
        elif self.prop in _TEXT_FIELDS:
            actual = _TEXT_FIELDS[self.prop](message)
        else:
            actual = _BOOL_FIELDS[self.prop](message)
        return actual is not None and bool(_OPERATORS[self.op](actual, self.value))


def _invalid(raw: str) -> Exception:
    return bad_request(f"Invalid filter clause: {raw}", "BadRequest")


def parse_filter(raw: str | None) -> list[Comparison]:
    """Parse ``$filter`` into clauses that must all hold. None or empty means no filter."""
    if raw is None or not raw.strip():
        return []
    clauses: list[Comparison] = []
    for part in _AND.split(raw.strip()):
        found = _CLAUSE.match(part)
        if found is None or found["prop"] not in FILTERABLE:
            raise _invalid(raw)
        prop, op, text = found["prop"], found["op"], found["value"]
        value: Any
        if prop in _DATE_FIELDS:
            if text.startswith("'"):
                raise _invalid(raw)
            try:
                value = parse_graph_timestamp(text)
            except ValueError as exc:
                raise _invalid(raw) from exc
        elif prop in _BOOL_FIELDS:
            if text not in {"true", "false"} or op not in {"eq", "ne"}:
                raise _invalid(raw)
            value = text == "true"
        else:
            if not text.startswith("'"):
                raise _invalid(raw)
            value = text[1:-1].replace("''", "'")
        clauses.append(Comparison(prop, op, value))
    return clauses


def matches_all(clauses: list[Comparison], message: Message) -> bool:
    """Whether every clause holds for ``message``."""
    return all(c.matches(message) for c in clauses)


def only_received_after(clauses: list[Comparison]) -> bool:
    """Whether the filter is one delta queries accept: ``receivedDateTime ge|gt <value>`` only."""
    return all(c.prop == "receivedDateTime" and c.op in {"ge", "gt"} for c in clauses)
