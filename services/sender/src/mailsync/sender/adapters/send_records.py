"""MongoDB: one record per send request id, the S7 idempotency key and the crash-recovery journal.

Collection `send_requests`, `_id` = `request_id`. A record moves through three states:

* `received`: the command was claimed; nothing was attempted.
* `attempting`: leased to one sender instance (`attempt_owner`, until `attempt_until`); the provider call may
  have happened (`route`, `connection_id`, `mailbox_id` and, for Outlook, the draft's `internet_message_id`
  say where; `quota_key` is the ledger day a mailbox send reserved on, so a redelivery reserves and releases
  on that same day). A redelivery in this state first looks for the email's
  Message-ID in the mailbox.
* `completed`: `result` holds the `SendCompleted` (as JSON); every later delivery republishes it unchanged.

Every write is conditional, so two deliveries racing on one request id converge on the first result stored.
The collection has no index beyond `_id`, by which every read and write goes: a record's `state` changes
twice, so an index on it would be rewritten by every journal and result write, for a query no handler makes.
A request left unanswered shows as consumer lag on the command topic (its offset stays uncommitted); its
record is found by a scan for a `state` other than `completed`.
A batch's request ids are claimed at once, and results decided at the same time are stored together (one
round trip each in the common case).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from mailsync.common.contracts import SendCompleted
from mailsync.common.mongo import Document
from mailsync.sender.adapters.coalescing import Coalescer

RecordState = Literal["received", "attempting", "completed"]

_DUPLICATE_KEY = 11000


class AttemptLeasedError(Exception):
    """Another sender instance holds the request's attempt lease (or the request was completed meanwhile)."""


@dataclass(frozen=True)
class SendRecord:
    """What is known about one request id."""

    request_id: str
    state: RecordState
    result: SendCompleted | None
    quota_key: str | None
    attempted_connection_id: str | None
    attempted_mailbox_id: str | None
    attempted_route: str | None
    attempted_internet_message_id: str | None


@dataclass(frozen=True)
class _Journal:
    request_id: str
    owner: str
    at: datetime
    fields: dict[str, Any]


class SendRecordStore:
    """The `send_requests` collection."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._records = database["send_requests"]
        self._journal = Coalescer(self._write_journal)
        self._completions = Coalescer(self._complete_all)

    async def claim_all(self, request_ids: Sequence[str], at: datetime) -> dict[str, SendRecord]:
        """The record of each of `request_ids`, created in state `received` where this is its first delivery.

        One read for the batch, then one unordered insert of the new records; a record another instance
        inserted meanwhile (duplicate key) is read back.
        """
        wanted = list(dict.fromkeys(request_ids))
        records = {r.request_id: r for r in await self._find(wanted)}
        new = [request_id for request_id in wanted if request_id not in records]
        if not new:
            return records
        try:
            await self._records.insert_many(
                [{"_id": request_id, "state": "received", "received_at": at} for request_id in new],
                ordered=False,
            )
        except BulkWriteError as error:
            if any(e.get("code") != _DUPLICATE_KEY for e in error.details.get("writeErrors", ())):
                raise
            records |= {r.request_id: r for r in await self._find(new)}
        for request_id in new:
            records.setdefault(request_id, _record({"_id": request_id, "state": "received"}))
        return records

    async def mark_attempting(
        self,
        request_id: str,
        *,
        route: str,
        connection_id: str | None,
        mailbox_id: str | None,
        owner: str,
        at: datetime,
        lease_until: datetime,
        internet_message_id: str | None = None,
        quota_key: str | None = None,
    ) -> None:
        """Journal that the provider is about to be called (before the call), leased to `owner` until
        `lease_until`.

        `internet_message_id` is the provider-assigned Message-ID of an Outlook draft, by which a redelivery
        finds the send; `quota_key` the ledger day holding the send's reservation, on which a redelivery
        reserves and releases. Raises `AttemptLeasedError` while another owner's lease is running: a second
        consumer (e.g. after a rebalance) must not call the provider for the same request meanwhile.
        Concurrent calls go to MongoDB together (one bulk write, see `Coalescer`).
        """
        journal: dict[str, Any] = {
            "state": "attempting",
            "route": route,
            "connection_id": connection_id,
            "mailbox_id": mailbox_id,
            "attempted_at": at,
            "attempt_owner": owner,
            "attempt_until": lease_until,
        }
        if internet_message_id is not None:
            journal["internet_message_id"] = internet_message_id
        if quota_key is not None:
            journal["quota_key"] = quota_key
        if not await self._journal.submit(_Journal(request_id, owner, at, journal)):
            raise AttemptLeasedError(request_id)

    async def _write_journal(self, entries: list[_Journal]) -> list[bool]:
        """Whether each entry was journalled. One bulk journals every request that holds no live lease (the
        common case); each of the others is journalled alone if this owner holds its lease (a redelivery to
        the same instance), which is idempotent."""
        updates = [
            UpdateOne(
                {
                    "_id": e.request_id,
                    "state": {"$ne": "completed"},
                    "attempt_until": {"$not": {"$gt": e.at}},
                },
                {"$set": e.fields},
            )
            for e in entries
        ]
        written = await self._records.bulk_write(updates, ordered=False)
        if written.matched_count == len(updates):
            return [True] * len(entries)
        return [await self._journal_as_owner(e) for e in entries]

    async def _journal_as_owner(self, entry: _Journal) -> bool:
        free = {
            "_id": entry.request_id,
            "state": {"$ne": "completed"},
            "attempt_until": {"$not": {"$gt": entry.at}},
        }
        owned = {"_id": entry.request_id, "state": {"$ne": "completed"}, "attempt_owner": entry.owner}
        for condition in (free, owned):
            if (await self._records.update_one(condition, {"$set": entry.fields})).matched_count == 1:
                return True
        return False

    async def complete(self, result: SendCompleted) -> SendCompleted:
        """Store `result` unless its request has a result already; the stored result (first wins).

        Concurrent calls go to MongoDB together (one bulk write, see `Coalescer`)."""
        return await self._completions.submit(result)

    async def _complete_all(self, results: list[SendCompleted]) -> list[SendCompleted]:
        """Store each of `results` unless its request has a result already; the stored result of each, in
        order (first wins).

        One unordered bulk of conditional updates; only when some did not match (another delivery stored a
        result first) are the stored results read back. A result this bulk stored is answered as the object
        given, so callers can tell it from one stored before (`is`).
        """
        if not results:
            return []
        updates = [
            UpdateOne(
                {"_id": result.request_id, "state": {"$ne": "completed"}},
                {
                    "$set": {
                        "state": "completed",
                        "result": result.model_dump(mode="json", by_alias=True),
                        "status": result.status,
                        "completed_at": result.occurred_at,
                    }
                },
            )
            for result in results
        ]
        written = await self._records.bulk_write(updates, ordered=False)
        if written.matched_count == len(updates):
            return results
        stored: dict[str, SendCompleted] = {}
        for record in await self._find(list({result.request_id for result in results})):
            if record.result is None:  # pragma: no cover - only if the record was deleted meanwhile
                raise RuntimeError(f"the result of {record.request_id} was not stored")
            stored[record.request_id] = record.result
        return [
            result if stored[result.request_id].event_id == result.event_id else stored[result.request_id]
            for result in results
        ]

    async def get(self, request_id: str) -> SendRecord | None:
        """The record of `request_id`, if there is one."""
        found = await self._find([request_id])
        return found[0] if found else None

    async def _find(self, request_ids: list[str]) -> list[SendRecord]:
        return [_record(d) async for d in self._records.find({"_id": {"$in": request_ids}})]


def _record(document: dict[str, Any]) -> SendRecord:
    result = document.get("result")
    return SendRecord(
        request_id=str(document["_id"]),
        state=document.get("state", "received"),
        result=SendCompleted.model_validate(result) if result is not None else None,
        quota_key=document.get("quota_key"),
        attempted_connection_id=document.get("connection_id"),
        attempted_mailbox_id=document.get("mailbox_id"),
        attempted_route=document.get("route"),
        attempted_internet_message_id=document.get("internet_message_id"),
    )
