"""Connections (C1-C7): one user's Outlook sync inside one subaccount, and what a completed sign-in changes.

A connection is unique per (`subaccount_id`, `user_id`) (C1) and keeps its id across re-authentication and
mailbox switches. A mailbox is a Microsoft Graph user, id `outlook:<Graph user id>`; several connections (one
per subaccount, M1) may share it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from mailsync.common.contracts import ConnectionChange, ConnectionStatus

REQUIRED_SCOPES: tuple[str, ...] = ("Mail.ReadWrite", "Mail.Send", "User.Read")
"""Requested from the user (MSAL adds `openid`, `profile` and `offline_access` itself)."""

FlowPurpose = Literal["connect", "update_email"]


def mailbox_id_for(graph_user_id: str) -> str:
    """mailsync's id of the mailbox of Graph user `graph_user_id`."""
    return f"outlook:{graph_user_id}"


def missing_scopes(granted: Iterable[str]) -> list[str]:
    """Required scopes absent from a grant (C2); Graph scopes compare case-insensitively."""
    have = {scope.rsplit("/", 1)[-1].lower() for scope in granted}
    return [scope for scope in REQUIRED_SCOPES if scope.lower() not in have]


@dataclass(frozen=True)
class Connection:
    """A connection's state as stored."""

    connection_id: str
    subaccount_id: str
    user_id: str
    mailbox_id: str
    graph_user_id: str
    email_address: str
    status: ConnectionStatus
    connected_at: datetime
    reason: str | None = None


@dataclass(frozen=True)
class SignIn:
    """Who completed a sign-in: the Graph user and the mailbox address."""

    graph_user_id: str
    email_address: str

    @property
    def mailbox_id(self) -> str:
        return mailbox_id_for(self.graph_user_id)


def change_after_sign_in(
    existing: Connection | None, sign_in: SignIn, purpose: FlowPurpose
) -> ConnectionChange:
    """What a completed sign-in does to the pair's connection.

    - no connection yet, or a disconnected one: `connected` (a new C7 cutoff: mail from the disconnected
      period never syncs);
    - another mailbox than the current one: `mailbox_replaced` (C4), whatever the purpose;
    - the same mailbox: `reauthenticated` (C6: sync resumes from the stored cursors and catches up).
    """
    del purpose  # both purposes converge on the same decision once the signed-in mailbox is known
    if existing is None or existing.status == "disconnected":
        return "connected"
    if existing.mailbox_id != sign_in.mailbox_id:
        return "mailbox_replaced"
    return "reauthenticated"


def status_after(change: ConnectionChange) -> ConnectionStatus:
    """The status a change leaves (the contract's rule)."""
    if change == "reauth_required":
        return "needs_reauth"
    if change == "disconnected":
        return "disconnected"
    return "active"


def is_invalid_grant(error: dict[str, object]) -> bool:
    """Whether an MSAL error means the grant is gone (revoked, password changed, expired) and only the user
    can fix it (C6), as opposed to an outage worth retrying."""
    return error.get("error") in {"invalid_grant", "interaction_required", "consent_required"}
