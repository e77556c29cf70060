"""Which connections are, or were, bound to which mailbox, and when (C4, C5, C7).

A binding is (connection, mailbox) with the interval during which mail of that mailbox syncs through that
connection. `ConnectionChanged` events (keyed by connection, so in order per connection) open and close
bindings; applying the same event twice leaves the same state.

Every batch needs the bindings of its mailboxes, which rarely change: each store keeps those it read in
memory with the bindings version (`versions.ReadModelVersions`, moved on by every connection event) and
forgets them all once the version moved.
"""

from __future__ import annotations

from collections.abc import Iterable

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from mailsync.common.contracts import ConnectionChanged
from mailsync.common.mongo import Document, find_in
from mailsync.router.adapters.versions import ReadModelVersions
from mailsync.router.domain import MailboxBinding


class ConnectionStore:
    """Collections `connections` (current state per connection) and `mailbox_bindings`."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._connections = database["connections"]
        self._bindings = database["mailbox_bindings"]
        self._versions = ReadModelVersions(database)
        self._known_version = -1
        self._known: dict[str, list[MailboxBinding]] = {}

    async def ensure_indexes(self) -> None:
        await self._bindings.create_index([("mailbox_id", ASCENDING)])

    async def apply(self, event: ConnectionChanged) -> None:
        """Update the connection's state and its bindings."""
        at = event.occurred_at
        await self._connections.update_one(
            {"_id": event.connection_id},
            {
                "$set": {
                    "subaccount_id": event.subaccount_id,
                    "user_id": event.user_id,
                    "provider": event.provider,
                    "mailbox_id": event.mailbox_id,
                    "email_address": event.email_address,
                    "status": event.status,
                    "connected_at": event.connected_at,
                    "updated_at": at,
                }
            },
            upsert=True,
        )
        if event.change == "mailbox_replaced" and event.previous_mailbox_id:
            await self._close(event, event.previous_mailbox_id, at, "replaced")
            await self._open(event, event.connected_at)
        elif event.change == "disconnected":
            await self._close(event, event.mailbox_id, at, "disconnected")
        elif event.change == "connected":
            await self._open(event, event.connected_at)
        else:
            # reauth_required / reauthenticated: the binding stays; the ingest catches up after re-auth (C6).
            await self._open(event, event.connected_at, reopen=False)
        await self._versions.move_on(_BINDINGS)

    async def bindings_of(self, mailbox_ids: Iterable[str]) -> dict[str, list[MailboxBinding]]:
        """Every binding, open or closed, of each of `mailbox_ids` (by connection id), as of the bindings
        version read first (see the module)."""
        wanted = set(mailbox_ids)
        version = (await self._versions.of([_BINDINGS]))[_BINDINGS]
        if version != self._known_version:
            self._known_version, self._known = version, {}
        known = self._known  # the bindings of `version`, even if a concurrent call moves on meanwhile
        missing = wanted - known.keys()
        if missing:
            loaded = await self._load(missing)
            known.update({m: loaded.get(m, []) for m in missing})
        return {m: known[m] for m in wanted if known[m]}

    async def _load(self, mailbox_ids: Iterable[str]) -> dict[str, list[MailboxBinding]]:
        found: dict[str, list[MailboxBinding]] = {}
        for doc in await find_in(self._bindings, "mailbox_id", mailbox_ids):
            found.setdefault(doc["mailbox_id"], []).append(
                MailboxBinding(
                    connection_id=doc["connection_id"],
                    subaccount_id=doc["subaccount_id"],
                    user_id=doc["user_id"],
                    bound_from=doc["bound_from"],
                    bound_until=doc.get("bound_until"),
                    ended_by=doc.get("ended_by"),
                )
            )
        for bindings in found.values():
            bindings.sort(key=lambda b: b.connection_id)
        return found

    async def current_mailbox(self, connection_id: str) -> str | None:
        """The mailbox a connection is bound to now, if the router knows the connection."""
        doc = await self._connections.find_one({"_id": connection_id}, {"mailbox_id": 1})
        return None if doc is None else str(doc["mailbox_id"])

    async def _open(self, event: ConnectionChanged, bound_from: object, *, reopen: bool = True) -> None:
        fields = {
            "connection_id": event.connection_id,
            "mailbox_id": event.mailbox_id,
            "subaccount_id": event.subaccount_id,
            "user_id": event.user_id,
        }
        if reopen:
            update: Document = {
                "$set": {**fields, "bound_from": bound_from, "bound_until": None, "ended_by": None}
            }
        else:
            update = {"$set": fields, "$setOnInsert": {"bound_from": bound_from, "bound_until": None}}
        await self._bindings.update_one(
            {"_id": f"{event.connection_id}|{event.mailbox_id}"}, update, upsert=True
        )

    async def _close(self, event: ConnectionChanged, mailbox_id: str, at: object, ended_by: str) -> None:
        await self._bindings.update_one(
            {"_id": f"{event.connection_id}|{mailbox_id}"},
            {
                "$set": {"bound_until": at, "ended_by": ended_by},
                "$setOnInsert": {
                    "connection_id": event.connection_id,
                    "mailbox_id": mailbox_id,
                    "subaccount_id": event.subaccount_id,
                    "user_id": event.user_id,
                    "bound_from": event.connected_at,
                },
            },
            upsert=True,
        )


_BINDINGS = "mailbox_bindings"
