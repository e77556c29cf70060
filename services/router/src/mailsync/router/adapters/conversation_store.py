"""Conversation messages as the router filed them: stored once per conversation (D2), never deleted (D1).

The document id is the deterministic CRM message id (`identity.message_id_for`), so a redelivered, re-notified
or re-fetched message, and the Sent-folder copy of a CRM-sent email, all land on the same document.
A filing is announced before it is stored, so a stored message was always announced (see the handlers).
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from mailsync.common.mongo import Document, find_in, insert_many_once, insert_once


class ConversationStore:
    """Collection `conversation_messages`."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._messages = database["conversation_messages"]

    async def ensure_indexes(self) -> None:
        await self._messages.create_index([("mailbox_id", ASCENDING), ("internet_message_id", ASCENDING)])
        await self._messages.create_index(
            [("subaccount_id", ASCENDING), ("contact_id", ASCENDING), ("sent_at", ASCENDING)]
        )

    async def store(self, document: Document) -> bool:
        """Store a filed message (its `_id` is the message id); False when it was already stored."""
        return await insert_once(self._messages, document)

    async def store_many(self, documents: list[Document]) -> int:
        """Store filed messages in one round trip; returns how many were not stored before."""
        return await insert_many_once(self._messages, documents)

    async def existing(self, message_ids: list[str]) -> set[str]:
        """Which of `message_ids` are stored."""
        if not message_ids:
            return set()
        return {
            str(doc["_id"])
            for doc in await find_in(self._messages, "_id", message_ids, projection={"_id": 1})
        }

    async def list_for_contact(
        self, subaccount_id: str, contact_id: str, *, limit: int, newest_first: bool = False
    ) -> list[dict[str, Any]]:
        """A contact's messages in the subaccount, oldest first (or newest first), without internal fields."""
        cursor = (
            self._messages.find(
                {"subaccount_id": subaccount_id, "contact_id": contact_id},
                {"event": 0},
            )
            .sort("sent_at", DESCENDING if newest_first else ASCENDING)
            .limit(limit)
        )
        return [doc async for doc in cursor]
