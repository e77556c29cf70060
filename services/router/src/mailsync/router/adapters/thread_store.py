"""The thread registry: which conversation of each subaccount holds a mailbox's thread, and who owns it.

- A *link* (mailbox, provider thread, subaccount) -> (contact, conversation) is written when a message of the
  thread is first filed in that subaccount, or when the CRM starts the thread (G1a, O1). The first link wins.
- A *claim* (mailbox, provider thread) -> subaccount says the thread syncs for that subaccount only: written
  when the CRM of one subaccount starts the thread (M3) or replies in it (M2). The first claim wins.

Links are also found through RFC 5322 ids: a message whose In-Reply-To or References names a message already
filed from the same mailbox belongs to that message's conversation, even when the provider's thread id
differs (Outlook can split a conversation when a reply comes from another client).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from mailsync.common.mongo import Document, insert_once
from mailsync.router.domain import ThreadLink
from mailsync.router.domain.identity import normalize_message_id


class ThreadStore:
    """Collections `thread_links` and `thread_claims`; RFC-id lookups go through `conversation_messages`."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._links = database["thread_links"]
        self._claims = database["thread_claims"]
        self._messages = database["conversation_messages"]

    async def ensure_indexes(self) -> None:
        await self._links.create_index([("mailbox_id", ASCENDING), ("provider_thread_id", ASCENDING)])

    async def link(
        self,
        *,
        mailbox_id: str,
        provider_thread_id: str,
        subaccount_id: str,
        contact_id: str,
        conversation_id: str,
        started_by: str,
        at: datetime,
    ) -> bool:
        """Record that `conversation_id` holds the thread in `subaccount_id`; False if a link existed."""
        return await insert_once(
            self._links,
            {
                "_id": f"{mailbox_id}|{provider_thread_id}|{subaccount_id}",
                "mailbox_id": mailbox_id,
                "provider_thread_id": provider_thread_id,
                "subaccount_id": subaccount_id,
                "contact_id": contact_id,
                "conversation_id": conversation_id,
                "started_by": started_by,
                "created_at": at,
            },
        )

    async def claim(
        self, *, mailbox_id: str, provider_thread_id: str, subaccount_id: str, rule: str, at: datetime
    ) -> bool:
        """Give the thread to `subaccount_id` unless another claim exists; True if this call claimed it."""
        return await insert_once(
            self._claims,
            {
                "_id": f"{mailbox_id}|{provider_thread_id}",
                "subaccount_id": subaccount_id,
                "rule": rule,
                "claimed_at": at,
            },
        )

    async def owner(self, mailbox_id: str, provider_thread_id: str) -> str | None:
        """The subaccount that claimed the thread, if any."""
        doc = await self._claims.find_one({"_id": f"{mailbox_id}|{provider_thread_id}"})
        return None if doc is None else str(doc["subaccount_id"])

    async def links(
        self, mailbox_id: str, provider_thread_id: str, referenced_ids: Iterable[str]
    ) -> dict[str, ThreadLink]:
        """The conversation holding the thread in each subaccount, by thread id first, then by RFC ids."""
        found: dict[str, ThreadLink] = {}
        async for doc in self._links.find(
            {"mailbox_id": mailbox_id, "provider_thread_id": provider_thread_id}
        ):
            found[doc["subaccount_id"]] = ThreadLink(doc["contact_id"], doc["conversation_id"])
        references = sorted({normalize_message_id(r) for r in referenced_ids if r})
        if references:
            query = {"mailbox_id": mailbox_id, "internet_message_id": {"$in": references}}
            async for doc in self._messages.find(query).sort("recorded_at", ASCENDING):
                found.setdefault(doc["subaccount_id"], ThreadLink(doc["contact_id"], doc["conversation_id"]))
        return found
