"""Connection lifecycle events: a user's mailbox connection within one subaccount (C1-C7).

A connection belongs to one user in one subaccount (C1); several connections (one per subaccount) may
share a mailbox (M1). Every state change is published as a ``ConnectionChanged`` carrying the full
current state, keyed by ``connection_id``, so a consumer can rebuild a connection from its latest event
alone. Consumers order by partition offset, not by ``occurred_at``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mailsync.common.contracts.base import EmailAddress, EntityId, Event, Provider, UtcDatetime

__all__ = ["ConnectionChange", "ConnectionChanged", "ConnectionStatus"]

ConnectionStatus = Literal["active", "needs_reauth", "disconnected"]
"""C3: ``active`` syncs both ways; ``needs_reauth`` stopped calling the provider until the user
re-authenticates (C6); ``disconnected`` stopped for good (C5)."""

ConnectionChange = Literal[
    "connected", "mailbox_replaced", "reauth_required", "reauthenticated", "disconnected"
]
"""What happened to the connection (see ``ConnectionChanged.change``)."""

_STATUS_AFTER: dict[str, str] = {
    "connected": "active",
    "mailbox_replaced": "active",
    "reauthenticated": "active",
    "reauth_required": "needs_reauth",
    "disconnected": "disconnected",
}


class ConnectionChanged(Event):
    """A connection was made, switched to another mailbox, lost or regained its grant, or disconnected.

    Carries the connection's full state after the change. ``status`` always follows from ``change``:
    ``connected``, ``mailbox_replaced`` and ``reauthenticated`` leave it ``active``; ``reauth_required``
    leaves it ``needs_reauth``; ``disconnected`` leaves it ``disconnected``.
    """

    event_type: Literal["connections.connection_changed"] = "connections.connection_changed"
    connection_id: EntityId = Field(
        description="mailsync's id of the connection; stable across mailbox switches."
    )
    subaccount_id: EntityId = Field(description="The CRM subaccount the connection belongs to (C1).")
    user_id: EntityId = Field(description="The CRM user who owns the connection (C1).")
    provider: Provider = Field(description="Mailbox provider of the current mailbox.")
    mailbox_id: EntityId = Field(description="mailsync's id of the currently connected mailbox.")
    email_address: EmailAddress = Field(description="Address of the currently connected mailbox (C3).")
    status: ConnectionStatus = Field(
        description="Status after the change (C3): `active`, `needs_reauth` (C6) or `disconnected` (C5)."
    )
    change: ConnectionChange = Field(
        description=(
            "`connected`: first connected; `mailbox_replaced`: switched to another mailbox without "
            "disconnecting (C4); `reauth_required`: the grant failed (C6); `reauthenticated`: the user "
            "granted access again and sync catches up (C6); `disconnected`: sync stopped both ways (C5)."
        )
    )
    previous_mailbox_id: EntityId | None = Field(
        default=None,
        description="For `mailbox_replaced` (C4): the mailbox that no longer syncs for this connection.",
    )
    previous_email_address: EmailAddress | None = Field(
        default=None, description="For `mailbox_replaced` (C4): the previous mailbox's address."
    )
    connected_at: UtcDatetime = Field(
        description=(
            "When the current mailbox was connected (for `mailbox_replaced`, when it replaced the previous "
            "one): the C7 cutoff; mail sent or received earlier never syncs."
        )
    )
    last_synced_at: UtcDatetime | None = Field(
        default=None,
        description="When the mailbox last synced successfully (C3); null before the first sync.",
    )
    reason: str | None = Field(
        default=None,
        max_length=1000,
        description="Why the change happened, e.g. `invalid_grant` for `reauth_required`, or `user_request`.",
    )

    @model_validator(mode="after")
    def _check_change(self) -> ConnectionChanged:
        expected = _STATUS_AFTER[self.change]
        if self.status != expected:
            raise ValueError(f"a {self.change} change leaves the connection {expected}, not {self.status}")
        has_previous = self.previous_mailbox_id is not None or self.previous_email_address is not None
        if self.change == "mailbox_replaced":
            if self.previous_mailbox_id is None or self.previous_email_address is None:
                raise ValueError("mailbox_replaced (C4) needs previous_mailbox_id and previous_email_address")
            if self.previous_mailbox_id == self.mailbox_id:
                raise ValueError("mailbox_replaced (C4) needs a mailbox different from the previous one")
        elif has_previous:
            raise ValueError("previous_mailbox_id and previous_email_address belong to mailbox_replaced only")
        return self
