"""The outcome of routing one message: where it is filed, and why it is not filed elsewhere."""

from __future__ import annotations

from dataclasses import dataclass

from mailsync.common.contracts import NotSyncedReason


@dataclass(frozen=True)
class NewContact:
    """A contact the router creates (P6 only), assigned to the connection's user."""

    contact_id: str
    address: str
    name: str | None


@dataclass(frozen=True)
class Filing:
    """File the message in `conversation_id` of `subaccount_id`, under `contact_id`, via `connection_id`."""

    connection_id: str
    subaccount_id: str
    user_id: str
    contact_id: str
    conversation_id: str
    rule: str
    """The rule that decided the filing (e.g. "G3", "P6"), for logs and tests."""
    new_contact: NewContact | None = None


@dataclass(frozen=True)
class Skip:
    """Do not sync the message for one connection (or at all when `connection_id` is None), and why."""

    reason: NotSyncedReason
    detail: str
    connection_id: str | None = None
    subaccount_id: str | None = None


@dataclass(frozen=True)
class RoutingDecision:
    """Every filing and every skip for one message; each binding of the mailbox yields exactly one."""

    filings: tuple[Filing, ...] = ()
    skips: tuple[Skip, ...] = ()
