"""Which thread a new message joins: Gmail's documented rule for sends, a header rule for received mail.

Sends and inserts (``Message.threadId`` description and the threads guide): a message joins the requested
``threadId`` only when

1. the ``threadId`` is given,
2. ``In-Reply-To`` / ``References`` name a message of that thread (RFC 2822 compliant), and
3. the ``Subject`` matches, ignoring ``Re:`` / ``Fwd:`` prefixes.

If any condition fails Gmail silently starts a new thread; no error is returned.

Received mail (deliveries from outside, ``messages.import``/``insert`` without ``threadId``) is grouped by
Gmail server-side with an unpublished algorithm that uses the same headers and the subject; the sandbox joins
the thread of a referenced message in the mailbox when the normalised subjects match, and otherwise starts a
new thread. These functions are pure: they decide, the mailbox applies.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_PREFIX = re.compile(r"^\s*((re|fwd?|aw|wg|sv|vs|tr|rif|antw)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)


def normalize_subject(subject: str) -> str:
    """Strip any run of reply/forward prefixes (``Re:``, ``Fwd:``, ``FW:``, ``AW:``...), collapse whitespace,
    fold case."""
    return " ".join(_PREFIX.sub("", subject).split()).casefold()


@dataclass(frozen=True)
class ThreadCandidate:
    """What the rule needs to know about an existing message: its thread, RFC Message-ID and subject."""

    thread_id: str
    rfc_message_id: str
    subject: str


def referenced_ids(in_reply_to: Iterable[str], references: Iterable[str]) -> list[str]:
    """Return the Message-IDs a message refers to, In-Reply-To first, without duplicates."""
    seen: dict[str, None] = {}
    for value in [*in_reply_to, *references]:
        seen.setdefault(value, None)
    return list(seen)


def thread_for_send(
    requested_thread_id: str | None,
    subject: str,
    referenced: list[str],
    thread_members: Mapping[str, list[ThreadCandidate]],
) -> str | None:
    """Return the thread a sent/inserted message joins, or ``None`` for a new thread.

    ``thread_members`` maps thread ids to their messages. All three documented conditions must hold.
    """
    if not requested_thread_id or not referenced:
        return None
    members = thread_members.get(requested_thread_id, [])
    wanted = normalize_subject(subject)
    referenced_set = set(referenced)
    if not any(m.rfc_message_id in referenced_set for m in members):
        return None
    if not any(normalize_subject(m.subject) == wanted for m in members):
        return None
    return requested_thread_id


def thread_for_received(
    subject: str, referenced: list[str], by_message_id: Mapping[str, ThreadCandidate]
) -> str | None:
    """Return the thread a received message joins (a referenced message with the same subject), else ``None``.

    ``In-Reply-To`` is tried first, then ``References`` from the oldest ancestor to the parent.
    """
    wanted = normalize_subject(subject)
    for rfc_id in referenced:
        candidate = by_message_id.get(rfc_id)
        if candidate is not None and normalize_subject(candidate.subject) == wanted:
            return candidate.thread_id
    return None
