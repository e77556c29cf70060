"""Checks a command must pass beyond its contract model before anything is looked up or sent.

The contract already enforces required fields, recipient counts, body presence and attachment references.
What is checked here protects the MIME message: every address must be a valid RFC 5322 addr-spec, no header
value (subject, display names, file names) may carry a line break (header injection), content types must be
`type/subtype`, and reply ids must be `<id>` message ids.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.errors import HeaderParseError
from email.headerregistry import Address as HeaderAddress

from mailsync.common.contracts import SendEmail, SendFailureReason
from mailsync.sender.domain.outcomes import Refusal

_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][\w!#$&^.+-]*/[A-Za-z0-9][\w!#$&^.+-]*$")
_MESSAGE_ID = re.compile(r"^<[^<>\s]+@[^<>\s]+>$")
_LINE_BREAK = re.compile(r"[\r\n\x00]")


def validate_command(command: SendEmail) -> Refusal | None:
    """The first rule `command` breaks, as an `invalid_command` refusal; None when it is sendable."""
    problem = _first_problem(command)
    return None if problem is None else Refusal(SendFailureReason.INVALID_COMMAND, problem)


def _first_problem(command: SendEmail) -> str | None:
    return next(_problems(command), None)


def _problems(command: SendEmail) -> Iterator[str]:
    for field, addresses in (("to", command.to), ("cc", command.cc), ("bcc", command.bcc)):
        for index, address in enumerate(addresses):
            if not is_valid_addr_spec(address.email):
                yield f"{field}[{index}].email {address.email!r} is not a valid email address"
            if address.name is not None and _LINE_BREAK.search(address.name):
                yield f"{field}[{index}].name contains a line break"
    if _LINE_BREAK.search(command.subject):
        yield "subject contains a line break"
    for index, attachment in enumerate(command.attachments):
        if _LINE_BREAK.search(attachment.filename):
            yield f"attachments[{index}].filename contains a line break"
        if not _CONTENT_TYPE.match(attachment.content_type):
            yield f"attachments[{index}].content_type {attachment.content_type!r} is not type/subtype"
        if attachment.content_id is not None and _LINE_BREAK.search(attachment.content_id):
            yield f"attachments[{index}].content_id contains a line break"
    context = command.reply_context
    if context is not None:
        ids = (("in_reply_to", context.in_reply_to), *(("references", r) for r in context.references))
        for name, value in ids:
            if not _MESSAGE_ID.match(value):
                yield f"reply_context.{name} {value!r} is not a message id like <id@host>"


def is_valid_addr_spec(value: str) -> bool:
    """True when `value` parses as exactly one RFC 5322 addr-spec with a domain."""
    try:
        parsed = HeaderAddress(addr_spec=value)
    except (HeaderParseError, ValueError, IndexError):
        return False
    return bool(parsed.username) and bool(parsed.domain) and "." not in (parsed.domain[0], parsed.domain[-1])
