"""MongoDB: the sender's read model of connections, rebuilt from `ConnectionChanged` (owned by ingest).

Collection `connections`, `_id` = `connection_id`, holding the connection's latest state. Every event carries
the full state, so applying one replaces the document; an event older (`occurred_at`) than the stored one is
ignored, so a redelivered or replayed event never rolls a connection back. A mailbox switch (C4) keeps the
connection id and changes its mailbox, so new mail goes out through the new mailbox.
"""

from __future__ import annotations

from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mailsync.common.contracts import ConnectionChanged
from mailsync.common.mongo import Document
from mailsync.sender.domain import MailboxConnection


class ConnectionStore:
    """The `connections` collection."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._connections = database["connections"]

    async def ensure_indexes(self) -> None:
        """Serves `current_for`."""
        await self._connections.create_index(
            [("subaccount_id", 1), ("user_id", 1), ("active", DESCENDING), ("connected_at", DESCENDING)]
        )

    async def apply(self, event: ConnectionChanged) -> None:
        """Store the connection's state after `event` unless a newer event was applied already."""
        state = {
            "subaccount_id": event.subaccount_id,
            "user_id": event.user_id,
            "provider": event.provider,
            "mailbox_id": event.mailbox_id,
            "email_address": event.email_address,
            "status": event.status,
            "active": event.status == "active",
            "connected_at": event.connected_at,
            "occurred_at": event.occurred_at,
        }
        try:
            await self._connections.update_one(
                {"_id": event.connection_id, "occurred_at": {"$lte": event.occurred_at}},
                {"$set": state},
                upsert=True,
            )
        except DuplicateKeyError:
            return  # a newer state is stored

    async def current_for(self, subaccount_id: str, user_id: str) -> MailboxConnection | None:
        """The user's connection in the subaccount: the active one, else the most recent (C1)."""
        cursor = (
            self._connections.find({"subaccount_id": subaccount_id, "user_id": user_id})
            .sort([("active", DESCENDING), ("connected_at", DESCENDING)])
            .limit(1)
        )
        async for document in cursor:
            return _connection(document)
        return None


def _connection(document: dict[str, Any]) -> MailboxConnection:
    return MailboxConnection(
        connection_id=str(document["_id"]),
        subaccount_id=document["subaccount_id"],
        user_id=document["user_id"],
        provider=document["provider"],
        mailbox_id=document["mailbox_id"],
        email_address=document["email_address"],
        status=document["status"],
    )
