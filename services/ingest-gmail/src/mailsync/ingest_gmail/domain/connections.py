"""Connections (C1-C7), mailbox ids, OAuth scopes and the schedule of watch renewals.

A connection is one user's link, inside one subaccount, to one Gmail mailbox (C1). Several connections (one
per subaccount) may share a mailbox (M1): the mailbox, its history cursor and its watch are shared; the
grant (tokens), status and connection time are per connection.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from mailsync.common.contracts import ConnectionChange, ConnectionStatus

GMAIL_SCOPE_PREFIX = "https://www.googleapis.com/auth/"
SCOPE_READONLY = GMAIL_SCOPE_PREFIX + "gmail.readonly"
SCOPE_SEND = GMAIL_SCOPE_PREFIX + "gmail.send"
SCOPE_MODIFY = GMAIL_SCOPE_PREFIX + "gmail.modify"
SCOPE_COMPOSE = GMAIL_SCOPE_PREFIX + "gmail.compose"
SCOPE_FULL = "https://mail.google.com/"

REQUESTED_SCOPES: tuple[str, ...] = (SCOPE_READONLY, SCOPE_SEND)
"""What the consent screen asks for: reading (history, messages, watch, profile) and sending (S1).

Least privilege: mailsync never changes labels or deletes mail, so ``gmail.modify`` is not requested."""

_SATISFIED_BY: dict[str, frozenset[str]] = {
    SCOPE_READONLY: frozenset({SCOPE_READONLY, SCOPE_MODIFY, SCOPE_FULL}),
    SCOPE_SEND: frozenset({SCOPE_SEND, SCOPE_COMPOSE, SCOPE_MODIFY, SCOPE_FULL}),
}

CONSUMER_DAILY_SEND_LIMIT = 500
WORKSPACE_DAILY_SEND_LIMIT = 2000
DAILY_SEND_LIMITS = frozenset({CONSUMER_DAILY_SEND_LIMIT, WORKSPACE_DAILY_SEND_LIMIT})
"""S3: the per-connection limits the sender enforces (consumer Gmail, Google Workspace)."""

ConnectPurpose = Literal["connect", "update_email"]


def mailbox_id_for(email_address: str) -> str:
    """mailsync's id of a Gmail mailbox: ``gmail:<lower-cased address>``, shared by every connection to it."""
    return f"gmail:{email_address.strip().lower()}"


def missing_scopes(granted: set[str] | frozenset[str]) -> tuple[str, ...]:
    """The required scopes a grant lacks (a broader scope, e.g. ``gmail.modify``, satisfies narrower ones)."""
    return tuple(scope for scope, accepted in _SATISFIED_BY.items() if not accepted & granted)


def can_send(granted: set[str] | frozenset[str]) -> bool:
    """Whether a grant lets the sender send through the mailbox."""
    return bool(_SATISFIED_BY[SCOPE_SEND] & granted)


@dataclass(frozen=True)
class Connection:
    """The state of one connection, as stored (tokens excluded)."""

    connection_id: str
    subaccount_id: str
    user_id: str
    mailbox_id: str
    email_address: str
    status: ConnectionStatus
    connected_at: datetime
    daily_send_limit: int
    last_synced_at: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True)
class GrantOutcome:
    """What a completed OAuth grant does to the connection of a (subaccount, user) pair."""

    change: ConnectionChange
    reset_connected_at: bool
    """True when the C7 cutoff moves to now (a new mailbox, or one connected again after a disconnect)."""
    previous_mailbox_id: str | None = None
    previous_email_address: str | None = None


def grant_outcome(existing: Connection | None, mailbox_id: str) -> GrantOutcome:
    """Decide the change a new grant for ``mailbox_id`` makes (C1, C4, C6).

    - No connection yet, or a disconnected one: ``connected`` (C7 cutoff = now).
    - Another mailbox on a live connection: ``mailbox_replaced`` (C4, cutoff = now).
    - The same mailbox: ``reauthenticated`` (C6); sync resumes from the stored cursor, the cutoff is kept.
    """
    if existing is None or existing.status == "disconnected":
        return GrantOutcome(change="connected", reset_connected_at=True)
    if existing.mailbox_id != mailbox_id:
        return GrantOutcome(
            change="mailbox_replaced",
            reset_connected_at=True,
            previous_mailbox_id=existing.mailbox_id,
            previous_email_address=existing.email_address,
        )
    return GrantOutcome(change="reauthenticated", reset_connected_at=False)


def needs_refresh(expires_at: datetime | None, now: datetime, margin: timedelta) -> bool:
    """An access token is refreshed when it is missing or expires within ``margin``."""
    return expires_at is None or expires_at - margin <= now


def next_watch_renewal(
    mailbox_id: str, watched_at: datetime, interval: timedelta, spread: timedelta
) -> datetime:
    """When to renew a mailbox's watch: ``interval`` after the last watch, minus a per-mailbox offset.

    The offset is a stable hash of the mailbox id spread uniformly over ``spread``, so a million mailboxes
    connected in the same minute renew over ``spread`` rather than all at once, and each keeps its slot.
    """
    digest = hashlib.sha256(mailbox_id.encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return watched_at + interval - spread * fraction


def is_stale(last_activity: datetime | None, now: datetime, stale_after: timedelta) -> bool:
    """Watchdog rule: a mailbox with no notification or sync for ``stale_after`` is synced anyway."""
    return last_activity is None or now - last_activity >= stale_after
