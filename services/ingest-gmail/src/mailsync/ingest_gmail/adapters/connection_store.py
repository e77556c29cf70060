"""MongoDB store of connections (``gmail_connections``) and pending OAuth flows (``gmail_oauth_states``).

Indexes: a unique (``subaccount_id``, ``user_id``) pair, so there is one connection per pair however many
callbacks race (C1); (``mailbox_id``, ``status``) for the worker's lookups; ``status`` for the connections
gauge. Tokens are stored sealed by
:class:`~mailsync.common.token_cipher.TokenCipher`, never in clear.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, get_args

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from mailsync.common.contracts import ConnectionStatus
from mailsync.ingest_gmail.domain.connections import Connection, ConnectPurpose

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from mailsync.common.mongo import Document


@dataclass(frozen=True)
class ConnectionRecord:
    """A stored connection with its sealed tokens."""

    connection: Connection
    refresh_token: dict[str, Any] | None
    access_token: dict[str, Any] | None
    access_expires_at: datetime | None
    scopes: frozenset[str]


@dataclass(frozen=True)
class PendingAuthorization:
    """An OAuth flow started and not yet completed."""

    subaccount_id: str
    user_id: str
    purpose: ConnectPurpose
    connection_id: str | None
    daily_send_limit: int | None
    code_verifier: dict[str, Any]
    expires_at: datetime


def _state_key(state: str) -> str:
    # Only a hash of `state` is stored: a database reader cannot complete someone else's flow.
    return hashlib.sha256(state.encode()).hexdigest()


class ConnectionStore:
    """Connections and OAuth states; every write is a single-document atomic update."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._connections = database["gmail_connections"]
        self._states = database["gmail_oauth_states"]

    async def ensure_indexes(self) -> None:
        """Create the indexes (idempotent)."""
        await self._connections.create_index(
            [("subaccount_id", ASCENDING), ("user_id", ASCENDING)], unique=True, name="one_per_pair"
        )
        await self._connections.create_index(
            [("mailbox_id", ASCENDING), ("status", ASCENDING)], name="by_mailbox"
        )
        await self._connections.create_index([("status", ASCENDING)], name="by_status")
        # Flows never completed are removed by MongoDB's TTL monitor (expired ones are refused anyway).
        await self._states.create_index([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry")

    # OAuth states

    async def save_authorization(self, state: str, pending: PendingAuthorization) -> None:
        """Remember a started flow under its ``state`` (hashed)."""
        await self._states.insert_one(
            {
                "_id": _state_key(state),
                "subaccount_id": pending.subaccount_id,
                "user_id": pending.user_id,
                "purpose": pending.purpose,
                "connection_id": pending.connection_id,
                "daily_send_limit": pending.daily_send_limit,
                "code_verifier": pending.code_verifier,
                "expires_at": pending.expires_at,
            }
        )

    async def take_authorization(self, state: str) -> PendingAuthorization | None:
        """Consume a flow (single use): None when unknown or already used."""
        doc = await self._states.find_one_and_delete({"_id": _state_key(state)})
        if doc is None:
            return None
        return PendingAuthorization(
            subaccount_id=doc["subaccount_id"],
            user_id=doc["user_id"],
            purpose=doc["purpose"],
            connection_id=doc.get("connection_id"),
            daily_send_limit=doc.get("daily_send_limit"),
            code_verifier=doc["code_verifier"],
            expires_at=doc["expires_at"],
        )

    # connections

    async def get(self, connection_id: str) -> ConnectionRecord | None:
        """One connection by id."""
        doc = await self._connections.find_one({"_id": connection_id})
        return _record(doc) if doc else None

    async def find_for_pair(self, subaccount_id: str, user_id: str) -> ConnectionRecord | None:
        """The connection of a (subaccount, user) pair (C1)."""
        doc = await self._connections.find_one({"subaccount_id": subaccount_id, "user_id": user_id})
        return _record(doc) if doc else None

    async def active_for_mailbox(self, mailbox_id: str) -> list[ConnectionRecord]:
        """Active connections of a mailbox, oldest connection first."""
        cursor = self._connections.find({"mailbox_id": mailbox_id, "status": "active"}).sort(
            [("connected_at", ASCENDING), ("_id", ASCENDING)]
        )
        return [_record(doc) async for doc in cursor]

    async def count_by_status(self) -> dict[str, int]:
        """How many connections are in each status (every status present, zero when none)."""
        return {
            status: await self._connections.count_documents({"status": status})
            for status in get_args(ConnectionStatus)
        }

    async def count_active_for_mailbox(self, mailbox_id: str) -> int:
        """How many active connections read a mailbox."""
        return await self._connections.count_documents({"mailbox_id": mailbox_id, "status": "active"})

    async def save_grant(
        self,
        *,
        subaccount_id: str,
        user_id: str,
        mailbox_id: str,
        email_address: str,
        connected_at: datetime,
        daily_send_limit: int,
        scopes: frozenset[str],
        seal: Any,
        refresh_token: str,
        access_token: str,
        access_expires_at: datetime,
        now: datetime,
    ) -> Connection:
        """Create or replace the pair's connection with an active grant; the connection id never changes.

        ``seal(plaintext, connection_id)`` encrypts a token bound to the connection id.
        """
        existing = await self._connections.find_one(
            {"subaccount_id": subaccount_id, "user_id": user_id}, {"_id": 1}
        )
        connection_id = existing["_id"] if existing else f"gconn_{uuid.uuid4().hex}"
        update = {
            "$set": {
                "mailbox_id": mailbox_id,
                "email_address": email_address,
                "status": "active",
                "reason": None,
                "connected_at": connected_at,
                "daily_send_limit": daily_send_limit,
                "scopes": sorted(scopes),
                "refresh_token": seal(refresh_token, connection_id),
                "access_token": seal(access_token, connection_id),
                "access_expires_at": access_expires_at,
                "updated_at": now,
            },
            "$setOnInsert": {"_id": connection_id, "created_at": now},
        }
        try:
            doc = await self._connections.find_one_and_update(
                {"subaccount_id": subaccount_id, "user_id": user_id},
                update,
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:  # the upsert lost a race: another callback created the pair's connection
            # A concurrent callback created the pair's connection first; replace its grant instead.
            return await self.save_grant(
                subaccount_id=subaccount_id,
                user_id=user_id,
                mailbox_id=mailbox_id,
                email_address=email_address,
                connected_at=connected_at,
                daily_send_limit=daily_send_limit,
                scopes=scopes,
                seal=seal,
                refresh_token=refresh_token,
                access_token=access_token,
                access_expires_at=access_expires_at,
                now=now,
            )
        if doc is None:
            raise RuntimeError("upsert returned no document")
        return _record(doc).connection

    async def save_access_token(
        self,
        connection_id: str,
        access_token: dict[str, Any],
        expires_at: datetime,
        refresh_token: dict[str, Any] | None,
    ) -> None:
        """Store a refreshed access token (and the refresh token re-sealed under the current key)."""
        fields: dict[str, Any] = {"access_token": access_token, "access_expires_at": expires_at}
        if refresh_token is not None:
            fields["refresh_token"] = refresh_token
        await self._connections.update_one({"_id": connection_id, "status": "active"}, {"$set": fields})

    async def transition(
        self,
        connection_id: str,
        *,
        from_status: ConnectionStatus,
        to_status: ConnectionStatus,
        reason: str | None,
        now: datetime,
        drop_tokens: bool = False,
    ) -> Connection | None:
        """Move a connection between statuses atomically; None when it was not in ``from_status``.

        ``drop_tokens`` erases the sealed tokens (a disconnected connection keeps no credentials).
        """
        fields: dict[str, Any] = {"status": to_status, "reason": reason, "updated_at": now}
        if drop_tokens:
            fields |= {"refresh_token": None, "access_token": None, "access_expires_at": None}
        doc = await self._connections.find_one_and_update(
            {"_id": connection_id, "status": from_status},
            {"$set": fields},
            return_document=ReturnDocument.AFTER,
        )
        return _record(doc).connection if doc else None

    async def set_daily_send_limit(self, connection_id: str, limit: int) -> Connection | None:
        """Change a connection's daily send limit (S3)."""
        doc = await self._connections.find_one_and_update(
            {"_id": connection_id},
            {"$set": {"daily_send_limit": limit}},
            return_document=ReturnDocument.AFTER,
        )
        return _record(doc).connection if doc else None


def _record(doc: Document) -> ConnectionRecord:
    return ConnectionRecord(
        connection=Connection(
            connection_id=doc["_id"],
            subaccount_id=doc["subaccount_id"],
            user_id=doc["user_id"],
            mailbox_id=doc["mailbox_id"],
            email_address=doc["email_address"],
            status=doc["status"],
            connected_at=doc["connected_at"],
            daily_send_limit=int(doc["daily_send_limit"]),
            reason=doc.get("reason"),
        ),
        refresh_token=doc.get("refresh_token"),
        access_token=doc.get("access_token"),
        access_expires_at=doc.get("access_expires_at"),
        scopes=frozenset(doc.get("scopes", ())),
    )
