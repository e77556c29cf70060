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

import asyncio
from collections.abc import Iterable, Mapping
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from mailsync.common.mongo import Document, find_in, insert_many_once, insert_once
from mailsync.router.domain import ThreadLink
from mailsync.router.domain.batch import FiledReference


class ThreadStore:
    """Collections `thread_links` and `thread_claims`; RFC-id lookups go through `conversation_messages`."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._links = database["thread_links"]
        self._claims = database["thread_claims"]
        self._messages = database["conversation_messages"]

    async def ensure_indexes(self) -> None:
        """Links and claims are read by id only; RFC-id lookups use `ConversationStore`'s index."""

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
        document = link_document(
            mailbox_id=mailbox_id,
            provider_thread_id=provider_thread_id,
            subaccount_id=subaccount_id,
            contact_id=contact_id,
            conversation_id=conversation_id,
            started_by=started_by,
            at=at,
        )
        return await insert_once(self._links, document)

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

    async def link_many(self, links: list[Document]) -> int:
        """Write many links (documents as `link` builds them) in one round trip; the first link still wins."""
        return await insert_many_once(self._links, links)

    async def owners_of(self, threads: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The subaccount that claimed each (mailbox, provider thread) of `threads`, where one did."""
        ids = sorted({f"{mailbox_id}|{thread_id}" for mailbox_id, thread_id in threads})
        found: dict[tuple[str, str], str] = {}
        for doc in await find_in(self._claims, "_id", ids):
            mailbox_id, _, thread_id = str(doc["_id"]).rpartition("|")
            found[(mailbox_id, thread_id)] = str(doc["subaccount_id"])
        return found

    async def links_of(
        self, threads: Iterable[tuple[str, str, str]]
    ) -> dict[tuple[str, str], dict[str, ThreadLink]]:
        """For each (mailbox, provider thread, subaccount) in `threads`, the conversation holding it."""
        ids = sorted({link_id(*thread) for thread in threads})
        found: dict[tuple[str, str], dict[str, ThreadLink]] = {}
        for doc in await find_in(self._links, "_id", ids):
            thread = found.setdefault((doc["mailbox_id"], doc["provider_thread_id"]), {})
            thread[doc["subaccount_id"]] = ThreadLink(doc["contact_id"], doc["conversation_id"])
        return found

    async def filed_with(
        self, references: Mapping[str, Iterable[str]]
    ) -> dict[tuple[str, str], list[FiledReference]]:
        """Filed messages by (mailbox, RFC 5322 id), for the normalised ids `references` lists per mailbox."""

        async def one(mailbox_id: str, ids: list[str]) -> list[Document]:
            return await find_in(self._messages, "internet_message_id", ids, {"mailbox_id": mailbox_id})

        wanted = {m: sorted(set(ids)) for m, ids in references.items() if ids}
        found: dict[tuple[str, str], list[FiledReference]] = {}
        for docs in await asyncio.gather(*(one(m, ids) for m, ids in wanted.items())):
            for doc in docs:
                found.setdefault((doc["mailbox_id"], doc["internet_message_id"]), []).append(
                    FiledReference(
                        doc["subaccount_id"],
                        ThreadLink(doc["contact_id"], doc["conversation_id"]),
                        doc["recorded_at"],
                    )
                )
        return found


def link_id(mailbox_id: str, provider_thread_id: str, subaccount_id: str) -> str:
    """The id of the link of a mailbox's thread in a subaccount."""
    return f"{mailbox_id}|{provider_thread_id}|{subaccount_id}"


def link_document(
    *,
    mailbox_id: str,
    provider_thread_id: str,
    subaccount_id: str,
    contact_id: str,
    conversation_id: str,
    started_by: str,
    at: datetime,
) -> Document:
    """A link as stored in `thread_links`."""
    return {
        "_id": link_id(mailbox_id, provider_thread_id, subaccount_id),
        "mailbox_id": mailbox_id,
        "provider_thread_id": provider_thread_id,
        "subaccount_id": subaccount_id,
        "contact_id": contact_id,
        "conversation_id": conversation_id,
        "started_by": started_by,
        "created_at": at,
    }
