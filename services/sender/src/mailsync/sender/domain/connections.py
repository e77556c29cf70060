"""The sender's view of a user's mailbox connection (built from `ConnectionChanged`, owned by ingest)."""

from __future__ import annotations

from dataclasses import dataclass

from mailsync.common.contracts import ConnectionStatus, Provider


@dataclass(frozen=True)
class MailboxConnection:
    """The current state of one connection: which mailbox it sends through, and whether it may (C3)."""

    connection_id: str
    subaccount_id: str
    user_id: str
    provider: Provider
    mailbox_id: str
    email_address: str
    status: ConnectionStatus
