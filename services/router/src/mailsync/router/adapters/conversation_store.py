"""Conversation messages as the router filed them: stored once per conversation (D2), never deleted (D1).

The document id is the deterministic CRM message id (`identity.message_id_for`), so a redelivered, re-notified
or re-fetched message, and the Sent-folder copy of a CRM-sent email, all land on the same document.
`published` records that the `ConversationMessageRecorded` event went out, so a crash between storing and
publishing is repaired by the redelivery instead of losing the event.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from mailsync.common.mongo import Document, insert_once


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
        return await insert_once(self._messages, {**document, "published": False})

    async def is_published(self, message_id: str) -> bool:
        doc = await self._messages.find_one({"_id": message_id}, {"published": 1})
        return bool(doc and doc.get("published"))

    async def mark_published(self, message_id: str) -> None:
        await self._messages.update_one({"_id": message_id}, {"$set": {"published": True}})

    async def list_for_contact(
        self, subaccount_id: str, contact_id: str, *, limit: int, newest_first: bool = False
    ) -> list[dict[str, Any]]:
        """A contact's messages in the subaccount, oldest first (or newest first), without internal fields."""
        cursor = (
            self._messages.find(
                {"subaccount_id": subaccount_id, "contact_id": contact_id},
                {"published": 0, "event": 0},
            )
            .sort("sent_at", DESCENDING if newest_first else ASCENDING)
            .limit(limit)
        )
        return [doc async for doc in cursor]
