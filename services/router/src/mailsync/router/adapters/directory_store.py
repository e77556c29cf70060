"""The CRM directory read model: users and contacts per subaccount, as the CRM publishes them.

Updates carry a per-entity `revision`; a write applies only if its revision is higher than the stored one, so
redelivered or out-of-order events never roll an entity back. A removal is kept as a tombstone with its
revision, so a late upsert cannot resurrect it. Contacts the router creates itself (P6) get revision -1, so
the CRM's first event about them (revision 0 or more) takes over.

Every batch needs the users of its subaccounts, which rarely change: each store keeps them in memory with
the subaccount's users version (`versions.ReadModelVersions`, moved on by every user event), and a batch
reloads only the subaccounts whose version moved since.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mailsync.common.contracts import (
    ContactRemoved,
    ContactUpserted,
    DirectoryEvent,
    SubaccountUserRemoved,
    SubaccountUserUpserted,
)
from mailsync.common.mongo import Document, find_in
from mailsync.router.adapters.versions import ReadModelVersions
from mailsync.router.domain import ContactFacts, UserFacts
from mailsync.router.domain.identity import normalize_address

ROUTER_CREATED_REVISION = -1


class DirectoryStore:
    """Collections `directory_users` and `directory_contacts`."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._users = database["directory_users"]
        self._contacts = database["directory_contacts"]
        self._versions = ReadModelVersions(database)
        self._known_users: dict[str, tuple[int, list[UserFacts]]] = {}

    async def ensure_indexes(self) -> None:
        await self._users.create_index([("subaccount_id", ASCENDING)])
        await self._contacts.create_index([("subaccount_id", ASCENDING), ("addresses", ASCENDING)])

    async def apply(self, event: DirectoryEvent) -> bool:
        """Apply one directory event; False when it was stale (an equal or newer revision is stored)."""
        match event:
            case SubaccountUserUpserted():
                document: Document = {
                    "subaccount_id": event.subaccount_id,
                    "user_id": event.user_id,
                    "addresses": sorted({normalize_address(a) for a in event.email_addresses}),
                    "bcc_address": normalize_address(event.bcc_address) if event.bcc_address else None,
                    "removed": False,
                }
                return await self._write_user(event.subaccount_id, event.user_id, event.revision, document)
            case SubaccountUserRemoved():
                document = {"subaccount_id": event.subaccount_id, "user_id": event.user_id, "removed": True}
                return await self._write_user(event.subaccount_id, event.user_id, event.revision, document)
            case ContactUpserted():
                document = {
                    "subaccount_id": event.subaccount_id,
                    "contact_id": event.contact_id,
                    "addresses": sorted({normalize_address(a) for a in event.email_addresses}),
                    "assigned_user_id": event.assigned_user_id,
                    "created_at": event.created_at,
                    "removed": False,
                }
                key = f"{event.subaccount_id}|{event.contact_id}"
                return await _write(self._contacts, key, event.revision, document)
            case ContactRemoved():
                document = {
                    "subaccount_id": event.subaccount_id,
                    "contact_id": event.contact_id,
                    "removed": True,
                }
                key = f"{event.subaccount_id}|{event.contact_id}"
                return await _write(self._contacts, key, event.revision, document)

    async def create_contact(
        self, subaccount_id: str, contact_id: str, address: str, assigned_user_id: str, created_at: datetime
    ) -> None:
        """Record a contact the router created (P6), unless the CRM already told us about it."""
        document = {
            "subaccount_id": subaccount_id,
            "contact_id": contact_id,
            "addresses": [normalize_address(address)],
            "assigned_user_id": assigned_user_id,
            "created_at": created_at,
            "removed": False,
            "created_by_router": True,
        }
        await _write(self._contacts, f"{subaccount_id}|{contact_id}", ROUTER_CREATED_REVISION, document)

    async def users_in(self, subaccount_ids: Iterable[str]) -> dict[str, list[UserFacts]]:
        """The live users of each subaccount, as of their versions read first (see the module)."""
        wanted = sorted(set(subaccount_ids))
        by_name = await self._versions.of(_users_part(s) for s in wanted)
        versions = {s: by_name[_users_part(s)] for s in wanted}
        found: dict[str, list[UserFacts]] = {}
        stale = []
        for subaccount_id in wanted:
            known = self._known_users.get(subaccount_id)
            if known is not None and known[0] == versions[subaccount_id]:
                found[subaccount_id] = known[1]
            else:
                stale.append(subaccount_id)
        for subaccount_id, docs in await self._per_subaccount(self._users, stale, {}):
            users = [UserFacts(d["user_id"], frozenset(d["addresses"]), d.get("bcc_address")) for d in docs]
            self._known_users[subaccount_id] = (versions[subaccount_id], users)
            found[subaccount_id] = users
        return found

    async def _write_user(self, subaccount_id: str, user_id: str, revision: int, document: Document) -> bool:
        """Write a user (see `_write`), then move its subaccount's users version on."""
        written = await _write(self._users, f"{subaccount_id}|{user_id}", revision, document)
        await self._versions.move_on(_users_part(subaccount_id))
        return written

    async def contacts_with(
        self, subaccount_ids: Iterable[str], addresses: Iterable[str]
    ) -> dict[str, list[ContactFacts]]:
        """The live contacts of each subaccount that carry one of `addresses` (normalised)."""
        wanted = sorted(set(addresses))

        async def one(subaccount_id: str) -> tuple[str, list[ContactFacts]]:
            docs = await find_in(self._contacts, "addresses", wanted, {"subaccount_id": subaccount_id})
            return subaccount_id, [
                ContactFacts(
                    d["contact_id"], frozenset(d["addresses"]), d.get("assigned_user_id"), d["created_at"]
                )
                for d in docs
                if not d.get("removed")
            ]

        return dict(await asyncio.gather(*(one(s) for s in subaccount_ids)))

    @staticmethod
    async def _per_subaccount(
        collection: Any, subaccount_ids: Iterable[str], query: dict[str, Any]
    ) -> list[tuple[str, list[Document]]]:
        """Live documents per subaccount: one indexed equality query each, run concurrently.

        Tombstones are filtered here rather than in the query, so the query matches the index exactly.
        """

        async def one(subaccount_id: str) -> tuple[str, list[Document]]:
            docs = await collection.find({"subaccount_id": subaccount_id, **query}).to_list()
            return subaccount_id, [d for d in docs if not d.get("removed")]

        return list(await asyncio.gather(*(one(s) for s in subaccount_ids)))


async def _write(collection: Any, key: str, revision: int, document: Document) -> bool:
    """Upsert `document` under `key` if `revision` is newer than the stored one."""
    try:
        result = await collection.update_one(
            {"_id": key, "revision": {"$lt": revision}},
            {"$set": {**document, "revision": revision}},
            upsert=True,
        )
    except DuplicateKeyError:
        return False  # a document with an equal or newer revision exists
    return bool(result.upserted_id is not None or result.modified_count or result.matched_count)


def _users_part(subaccount_id: str) -> str:
    return f"users|{subaccount_id}"
