"""Which way a command goes out (S1, S2, C4, C5): the user's mailbox or the subaccount provider.

* ``individual`` mail goes through the user's connected mailbox when that connection is active (S1). The
  connection's *current* mailbox is used, so after an update (C4) new mail leaves through the new mailbox.
* ``bulk`` and ``workflow`` mail always goes through the subaccount provider (S2), whatever the user's
  connection, and never touches a mailbox quota.
* ``individual`` mail of a user with no active connection (never connected, disconnected (C5)) goes through
  the subaccount provider. A connection that needs re-authentication (C6) is still the user's mailbox:
  sending it elsewhere would silently change the sender address, so such mail is refused
  (``connection_needs_reauth``) until the user re-authenticates.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailsync.common.contracts import SendEmail, SendFailureReason
from mailsync.sender.domain.connections import MailboxConnection
from mailsync.sender.domain.outcomes import Refusal


@dataclass(frozen=True)
class ThroughMailbox:
    """Send through `connection`'s mailbox (S1; C4 when the mailbox was replaced)."""

    connection: MailboxConnection


@dataclass(frozen=True)
class ThroughSubaccountProvider:
    """Send through the subaccount-level SMTP provider; `rule` is S2 (bulk/workflow) or C5 (no mailbox)."""

    rule: str


Route = ThroughMailbox | ThroughSubaccountProvider


def choose_route(command: SendEmail, connection: MailboxConnection | None) -> Route | Refusal:
    """The route of `command`, given the sending user's latest connection in its subaccount (or None)."""
    if command.kind != "individual":
        return ThroughSubaccountProvider(rule="S2")
    if connection is None or connection.status == "disconnected":
        return ThroughSubaccountProvider(rule="C5")
    if connection.status == "needs_reauth":
        return Refusal(
            SendFailureReason.CONNECTION_NEEDS_REAUTH,
            f"The mailbox {connection.email_address} needs re-authentication; nothing was sent (C6).",
        )
    return ThroughMailbox(connection)
