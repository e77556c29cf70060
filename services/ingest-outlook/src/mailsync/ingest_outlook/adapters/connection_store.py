"""Connections and started sign-ins in MongoDB (collections `outlook_connections`, `outlook_auth_flows`).

`outlook_connections` has a unique index on (`subaccount_id`, `user_id`) (C1) and one on `mailbox_id` for
the worker. The MSAL token cache is stored only encrypted (`token_cache`: `{kid, nonce, ct}`, bound to the
connection id), and erased on disconnect. A started sign-in is stored under the SHA-256 of its `state`, with
the MSAL flow (it holds the PKCE verifier and nonce) encrypted, and is consumed once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, get_args

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from mailsync.common.contracts import ConnectionStatus
from mailsync.common.mongo import Document
from mailsync.ingest_outlook.domain.connections import Connection


class ConnectionStore:
    """Reads and writes connections and sign-in flows."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._connections = database["outlook_connections"]
        self._flows = database["outlook_auth_flows"]

    async def ensure_indexes(self) -> None:
        await self._connections.create_index(
            [("subaccount_id", ASCENDING), ("user_id", ASCENDING)], unique=True
        )
        await self._connections.create_index([("mailbox_id", ASCENDING), ("status", ASCENDING)])
        await self._connections.create_index([("status", ASCENDING)])
        await self._flows.create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)

    async def save_flow(self, state_hash: str, document: Document) -> None:
        await self._flows.insert_one({"_id": state_hash, **document})

    async def take_flow(self, state_hash: str) -> Document | None:
        """The flow stored under `state_hash`, removed so it can complete once."""
        return await self._flows.find_one_and_delete({"_id": state_hash})

    async def get(self, connection_id: str) -> Connection | None:
        doc = await self._connections.find_one({"_id": connection_id})
        return None if doc is None else _connection(doc)

    async def raw(self, connection_id: str) -> Document | None:
        """The stored document, sealed token cache included (tests check it is not plaintext)."""
        return await self._connections.find_one({"_id": connection_id})

    async def for_pair(self, subaccount_id: str, user_id: str) -> Connection | None:
        doc = await self._connections.find_one({"subaccount_id": subaccount_id, "user_id": user_id})
        return None if doc is None else _connection(doc)

    async def count_by_status(self) -> dict[str, int]:
        """How many connections are in each status (every status present, zero when none)."""
        return {
            status: await self._connections.count_documents({"status": status})
            for status in get_args(ConnectionStatus)
        }

    async def active_for_mailbox(self, mailbox_id: str) -> list[Connection]:
        cursor = self._connections.find({"mailbox_id": mailbox_id, "status": "active"}).sort("_id")
        return [_connection(doc) async for doc in cursor]

    async def sealed_cache(self, connection_id: str) -> tuple[dict[str, Any], str] | None:
        """The sealed MSAL token cache and the MSAL account id of an active connection."""
        doc = await self._connections.find_one(
            {"_id": connection_id, "status": "active"}, {"token_cache": 1, "home_account_id": 1}
        )
        if doc is None or not doc.get("token_cache"):
            return None
        return dict(doc["token_cache"]), str(doc["home_account_id"])

    async def upsert(
        self, connection: Connection, *, sealed_cache: dict[str, Any], home_account_id: str, at: datetime
    ) -> None:
        """Write the connection's full state and its fresh token cache."""
        await self._connections.update_one(
            {"_id": connection.connection_id},
            {
                "$set": {
                    **_fields(connection),
                    "token_cache": sealed_cache,
                    "home_account_id": home_account_id,
                    "updated_at": at,
                },
                "$setOnInsert": {"created_at": at},
            },
            upsert=True,
        )

    async def store_cache(self, connection_id: str, sealed_cache: dict[str, Any]) -> None:
        """Replace the token cache after MSAL refreshed it (only while the connection is active)."""
        await self._connections.update_one(
            {"_id": connection_id, "status": "active"}, {"$set": {"token_cache": sealed_cache}}
        )

    async def transition(
        self,
        connection_id: str,
        *,
        from_status: str,
        to_status: str,
        reason: str | None,
        at: datetime,
        erase_tokens: bool = False,
    ) -> Connection | None:
        """Move a connection from `from_status` to `to_status`; None when it was not in `from_status`
        (another instance did it first: exactly one caller publishes the change)."""
        update: Document = {"$set": {"status": to_status, "reason": reason, "updated_at": at}}
        if erase_tokens:
            update["$unset"] = {"token_cache": "", "home_account_id": ""}
        doc = await self._connections.find_one_and_update(
            {"_id": connection_id, "status": from_status}, update, return_document=ReturnDocument.AFTER
        )
        return None if doc is None else _connection(doc)

    async def mark_synced(self, mailbox_id: str, at: datetime) -> None:
        await self._connections.update_many(
            {"mailbox_id": mailbox_id, "status": "active"}, {"$max": {"last_synced_at": at}}
        )

    async def last_synced_at(self, connection_id: str) -> datetime | None:
        doc = await self._connections.find_one({"_id": connection_id}, {"last_synced_at": 1})
        value = None if doc is None else doc.get("last_synced_at")
        return value if isinstance(value, datetime) else None


def _fields(connection: Connection) -> Document:
    return {
        "subaccount_id": connection.subaccount_id,
        "user_id": connection.user_id,
        "mailbox_id": connection.mailbox_id,
        "graph_user_id": connection.graph_user_id,
        "email_address": connection.email_address,
        "status": connection.status,
        "connected_at": connection.connected_at,
        "reason": connection.reason,
    }


def _connection(doc: Document) -> Connection:
    return Connection(
        connection_id=str(doc["_id"]),
        subaccount_id=doc["subaccount_id"],
        user_id=doc["user_id"],
        mailbox_id=doc["mailbox_id"],
        graph_user_id=doc["graph_user_id"],
        email_address=doc["email_address"],
        status=doc["status"],
        connected_at=doc["connected_at"],
        reason=doc.get("reason"),
    )
