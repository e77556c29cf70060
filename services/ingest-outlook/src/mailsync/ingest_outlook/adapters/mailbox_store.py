"""Per-mailbox sync state in MongoDB: delta cursors per folder, published messages, subscriptions.

- `outlook_cursors` (`_id` `<mailbox_id>|<folder>`): the stored delta link, or the nextLink of a round in
  progress (Graph lets a round resume from it), and the C7 cutoff the first round was filtered with.
- `outlook_published_messages` (`_id` `<mailbox_id>|<Graph message id>`): messages already published, so a
  replayed delta round, a duplicate notification or a full resync never publishes one twice (D2).
- `outlook_mailbox_syncs` (`_id` mailbox id): when the last complete sync started, to coalesce push hints,
  `watchdog_at`, when the mailbox is due for a watchdog sync if nothing syncs it before, and `subscribe_at`,
  set while the mailbox may lack a subscription (a create pending or failed, a record removed); both indexed,
  so the maintenance loop reads only what is due instead of scanning every mailbox.
- `outlook_subscriptions` (`_id` Graph subscription id): mailbox, folder, the SHA-256 of the clientState
  secret (never the secret), expiry and when to renew; indexed by mailbox and by `renew_at`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from mailsync.common.mongo import Document

_DUPLICATE_KEY = 11000


@dataclass(frozen=True)
class SubscriptionRecord:
    """A Graph subscription mailsync created."""

    subscription_id: str
    mailbox_id: str
    email_address: str
    folder: str
    client_state_sha256: str
    expires_at: datetime
    renew_at: datetime


class MailboxStore:
    """Cursors, published-message records and subscriptions."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._cursors = database["outlook_cursors"]
        self._published = database["outlook_published_messages"]
        self._subscriptions = database["outlook_subscriptions"]
        self._syncs = database["outlook_mailbox_syncs"]

    async def ensure_indexes(self) -> None:
        await self._subscriptions.create_index([("mailbox_id", ASCENDING)])
        await self._subscriptions.create_index([("renew_at", ASCENDING)])
        await self._syncs.create_index([("watchdog_at", ASCENDING)], sparse=True)
        await self._syncs.create_index([("subscribe_at", ASCENDING)], sparse=True)

    async def cursor(self, mailbox_id: str, folder: str) -> str | None:
        doc = await self._cursors.find_one({"_id": f"{mailbox_id}|{folder}"})
        return None if doc is None else doc.get("link")

    async def save_cursor(self, mailbox_id: str, folder: str, link: str, *, complete: bool) -> None:
        """Store a nextLink (`complete=False`) or the round's deltaLink."""
        await self._cursors.update_one(
            {"_id": f"{mailbox_id}|{folder}"},
            {"$set": {"mailbox_id": mailbox_id, "folder": folder, "link": link, "complete": complete}},
            upsert=True,
        )

    async def drop_cursor(self, mailbox_id: str, folder: str) -> None:
        await self._cursors.delete_one({"_id": f"{mailbox_id}|{folder}"})

    async def last_sync_started(self, mailbox_id: str) -> datetime | None:
        """When the last complete sync of the mailbox started."""
        doc = await self._syncs.find_one({"_id": mailbox_id})
        value = None if doc is None else doc.get("started_at")
        return value if isinstance(value, datetime) else None

    async def sync_completed(
        self, mailbox_id: str, started_at: datetime, watchdog_at: datetime | None = None
    ) -> None:
        """Record a complete sync; `watchdog_at`: when the watchdog syncs the mailbox if nothing else does."""
        update: Document = {"$max": {"started_at": started_at}}
        if watchdog_at is not None:
            update["$set"] = {"watchdog_at": watchdog_at}
        await self._syncs.update_one({"_id": mailbox_id}, update, upsert=True)

    async def due_watchdog(self, now: datetime, limit: int) -> list[str]:
        """Mailboxes whose watchdog time has come, earliest first (an indexed query)."""
        cursor = self._syncs.find({"watchdog_at": {"$lte": now}}, {"_id": 1}).sort("watchdog_at").limit(limit)
        return [str(doc["_id"]) async for doc in cursor]

    async def set_watchdog(self, mailbox_id: str, at: datetime | None) -> None:
        """Move the mailbox's watchdog time (None: not watched until its next complete sync)."""
        update: Document = {"$set": {"watchdog_at": at}} if at else {"$unset": {"watchdog_at": ""}}
        await self._syncs.update_one({"_id": mailbox_id}, update)

    async def published(self, mailbox_id: str, message_ids: Iterable[str]) -> set[str]:
        """Which of `message_ids` were already published for the mailbox."""
        keys = [f"{mailbox_id}|{m}" for m in message_ids]
        if not keys:
            return set()
        cursor = self._published.find({"_id": {"$in": keys}}, {"_id": 1})
        return {str(doc["_id"]).split("|", 1)[1] async for doc in cursor}

    async def mark_published(self, mailbox_id: str, message_ids: list[str], at: datetime) -> None:
        """Record messages as published in one round trip (idempotent: recorded ones are left alone)."""
        if not message_ids:
            return
        documents = [{"_id": f"{mailbox_id}|{m}", "mailbox_id": mailbox_id, "at": at} for m in message_ids]
        try:
            await self._published.insert_many(documents, ordered=False)
        except BulkWriteError as error:
            if any(e.get("code") != _DUPLICATE_KEY for e in error.details.get("writeErrors", [])):
                raise

    async def add_subscription(self, record: SubscriptionRecord) -> None:
        await self._subscriptions.replace_one(
            {"_id": record.subscription_id},
            {
                "mailbox_id": record.mailbox_id,
                "email_address": record.email_address,
                "folder": record.folder,
                "client_state_sha256": record.client_state_sha256,
                "expires_at": record.expires_at,
                "renew_at": record.renew_at,
            },
            upsert=True,
        )

    async def subscription(self, subscription_id: str) -> SubscriptionRecord | None:
        doc = await self._subscriptions.find_one({"_id": subscription_id})
        return None if doc is None else _record(doc)

    async def subscriptions_by_id(self, subscription_ids: Iterable[str]) -> dict[str, SubscriptionRecord]:
        cursor = self._subscriptions.find({"_id": {"$in": list(set(subscription_ids))}})
        return {str(doc["_id"]): _record(doc) async for doc in cursor}

    async def subscriptions_of(self, mailbox_id: str) -> list[SubscriptionRecord]:
        cursor = self._subscriptions.find({"mailbox_id": mailbox_id}).sort("folder")
        return [_record(doc) async for doc in cursor]

    async def due_renewals(self, now: datetime, limit: int = 100) -> list[SubscriptionRecord]:
        cursor = self._subscriptions.find({"renew_at": {"$lte": now}}).sort("renew_at").limit(limit)
        return [_record(doc) async for doc in cursor]

    async def renewed(self, subscription_id: str, expires_at: datetime, renew_at: datetime) -> None:
        await self._subscriptions.update_one(
            {"_id": subscription_id}, {"$set": {"expires_at": expires_at, "renew_at": renew_at}}
        )

    async def remove_subscription(self, subscription_id: str, at: datetime) -> None:
        """Drop a record; its mailbox is due for a subscription check from `at` (it may need a new one)."""
        doc = await self._subscriptions.find_one_and_delete({"_id": subscription_id}, {"mailbox_id": 1})
        if doc is not None:
            await self.set_subscribe(str(doc["mailbox_id"]), at)

    async def set_subscribe(self, mailbox_id: str, at: datetime | None) -> None:
        """Mark the mailbox due for a subscription check from `at` (None: its subscriptions are complete)."""
        if at is None:
            await self._syncs.update_one({"_id": mailbox_id}, {"$unset": {"subscribe_at": ""}})
        else:
            await self._syncs.update_one({"_id": mailbox_id}, {"$set": {"subscribe_at": at}}, upsert=True)

    async def due_subscribe(self, now: datetime, limit: int = 100) -> list[str]:
        """Mailboxes that may lack a subscription, earliest first (an indexed query)."""
        cursor = (
            self._syncs.find({"subscribe_at": {"$lte": now}}, {"_id": 1}).sort("subscribe_at").limit(limit)
        )
        return [str(doc["_id"]) async for doc in cursor]


def _record(doc: Document) -> SubscriptionRecord:
    return SubscriptionRecord(
        subscription_id=str(doc["_id"]),
        mailbox_id=doc["mailbox_id"],
        email_address=doc["email_address"],
        folder=doc["folder"],
        client_state_sha256=doc["client_state_sha256"],
        expires_at=doc["expires_at"],
        renew_at=doc["renew_at"],
    )
