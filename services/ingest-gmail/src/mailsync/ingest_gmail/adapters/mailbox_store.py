"""MongoDB store of mailboxes (``gmail_mailboxes``: cursor, watch, health) and of published message ids.

A mailbox document is shared by every connection to the mailbox (M1). Its ``history_id`` only moves forward
(``$max``), so a late, slower worker can never rewind it. ``gmail_published_messages`` holds one document per
(mailbox, Gmail message id) whose event was published, ``_id`` being that pair: the dedupe set that keeps
redelivered hints, overlapping history pages and gap recovery from publishing a message twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pymongo import ASCENDING, ReturnDocument

from mailsync.common.mongo import insert_once

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from mailsync.common.mongo import Document


@dataclass(frozen=True)
class Mailbox:
    """The shared state of one Gmail mailbox."""

    mailbox_id: str
    email_address: str
    history_id: int
    last_synced_at: datetime | None
    last_message_at: datetime | None
    last_notification_at: datetime | None
    watch_expires_at: datetime | None
    watch_renew_at: datetime | None


class MailboxStore:
    """Mailboxes and the published-message set."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._mailboxes = database["gmail_mailboxes"]
        self._published = database["gmail_published_messages"]

    async def ensure_indexes(self) -> None:
        """Create the indexes (idempotent)."""
        await self._mailboxes.create_index([("watch_renew_at", ASCENDING)], name="renewal_due")
        await self._mailboxes.create_index([("last_activity_at", ASCENDING)], name="watchdog")

    async def get(self, mailbox_id: str) -> Mailbox | None:
        """One mailbox."""
        doc = await self._mailboxes.find_one({"_id": mailbox_id})
        return _mailbox(doc) if doc else None

    async def start(self, mailbox_id: str, email_address: str, history_id: int, now: datetime) -> None:
        """A connection starts reading the mailbox from ``history_id`` (its profile's current id).

        Called when no other connection reads it: the cursor restarts there, so nothing older is fetched (C7).
        """
        await self._mailboxes.update_one(
            {"_id": mailbox_id},
            {
                "$set": {
                    "email_address": email_address,
                    "history_id": history_id,
                    "last_activity_at": now,
                    "last_message_at": None,
                },
                "$setOnInsert": {"created_at": now},
            },
            upsert=True,
        )

    async def advance(
        self, mailbox_id: str, history_id: int, *, synced_at: datetime, last_message_at: datetime | None
    ) -> None:
        """Move the cursor forward (never back) and record the sync (C3)."""
        update: dict[str, Document] = {
            "$max": {"history_id": history_id},
            "$set": {"last_synced_at": synced_at, "last_activity_at": synced_at},
        }
        if last_message_at is not None:
            update["$max"]["last_message_at"] = last_message_at
        await self._mailboxes.update_one({"_id": mailbox_id}, update)

    async def record_notification(self, mailbox_id: str, now: datetime) -> None:
        """A notification arrived (the watchdog's evidence that the watch works)."""
        await self._mailboxes.update_one(
            {"_id": mailbox_id}, {"$set": {"last_notification_at": now, "last_activity_at": now}}
        )

    async def set_watch(
        self, mailbox_id: str, expires_at: datetime | None, renew_at: datetime | None
    ) -> None:
        """Record a watch (or its absence after ``users.stop``: both None)."""
        await self._mailboxes.update_one(
            {"_id": mailbox_id}, {"$set": {"watch_expires_at": expires_at, "watch_renew_at": renew_at}}
        )

    async def claim_due_renewal(self, now: datetime, lease_until: datetime) -> Mailbox | None:
        """Take one mailbox whose watch renewal is due, leasing it so other instances skip it meanwhile."""
        doc = await self._mailboxes.find_one_and_update(
            {"watch_renew_at": {"$ne": None, "$lte": now}},
            {"$set": {"watch_renew_at": lease_until}},
            return_document=ReturnDocument.AFTER,
        )
        return _mailbox(doc) if doc else None

    async def claim_stale(self, stale_before: datetime, now: datetime) -> Mailbox | None:
        """Take one watched mailbox with no notification or sync since ``stale_before`` (the watchdog)."""
        doc = await self._mailboxes.find_one_and_update(
            {"watch_expires_at": {"$ne": None}, "last_activity_at": {"$lte": stale_before}},
            {"$set": {"last_activity_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        return _mailbox(doc) if doc else None

    async def published_among(self, mailbox_id: str, message_ids: list[str]) -> set[str]:
        """Which of ``message_ids`` already had their event published for this mailbox."""
        if not message_ids:
            return set()
        keys = [f"{mailbox_id}:{m}" for m in message_ids]
        found = self._published.find({"_id": {"$in": keys}}, {"_id": 1})
        return {doc["_id"].removeprefix(f"{mailbox_id}:") async for doc in found}

    async def mark_published(self, mailbox_id: str, message_id: str, now: datetime) -> None:
        """Remember a published message (idempotent)."""
        await insert_once(
            self._published,
            {"_id": f"{mailbox_id}:{message_id}", "mailbox_id": mailbox_id, "published_at": now},
        )


def _mailbox(doc: Document) -> Mailbox:
    return Mailbox(
        mailbox_id=doc["_id"],
        email_address=doc["email_address"],
        history_id=int(doc["history_id"]),
        last_synced_at=doc.get("last_synced_at"),
        last_message_at=doc.get("last_message_at"),
        last_notification_at=doc.get("last_notification_at"),
        watch_expires_at=doc.get("watch_expires_at"),
        watch_renew_at=doc.get("watch_renew_at"),
    )
