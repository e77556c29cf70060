"""MongoDB: one record per send request id, the S7 idempotency key and the crash-recovery journal.

Collection `send_requests`, `_id` = `request_id`. A record moves through three states:

* `received`: the command was claimed; nothing was attempted. `quota_key` is fixed here once a mailbox send
  reserves quota, so a redelivery reserves (and releases) against the same ledger day.
* `attempting`: leased to one sender instance (`attempt_owner`, until `attempt_until`); the provider call may
  have happened (`route`, `connection_id`, `mailbox_id` and, for Outlook,
  the draft's `internet_message_id` say where). A redelivery in this state first looks for the email's
  Message-ID in the mailbox.
* `completed`: `result` holds the `SendCompleted` (as JSON); every later delivery republishes it unchanged.

Every write is conditional, so two deliveries racing on one request id converge on the first result stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from mailsync.common.contracts import SendCompleted
from mailsync.common.mongo import Document

RecordState = Literal["received", "attempting", "completed"]


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


class SendRecordStore:
    """The `send_requests` collection."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._records = database["send_requests"]

    async def ensure_indexes(self) -> None:
        """`_id` is the natural key; the state index serves operators looking for stuck sends."""
        await self._records.create_index([("state", 1), ("received_at", 1)])

    async def claim(self, request_id: str, at: datetime) -> SendRecord:
        """The record of `request_id`, created in state `received` if this is its first delivery."""
        document = await self._records.find_one_and_update(
            {"_id": request_id},
            {"$setOnInsert": {"state": "received", "received_at": at}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        if document is None:  # pragma: no cover - upsert with AFTER always returns the document
            raise RuntimeError(f"no send record for {request_id}")
        return _record(document)

    async def fix_quota_key(self, request_id: str, quota_key: str) -> str:
        """The ledger key this request counts against: `quota_key` unless one was fixed before."""
        document = await self._records.find_one_and_update(
            {"_id": request_id, "quota_key": None},
            {"$set": {"quota_key": quota_key}},
            return_document=ReturnDocument.AFTER,
        )
        if document is None:
            document = await self._records.find_one({"_id": request_id}, {"quota_key": 1})
        stored = (document or {}).get("quota_key")
        return stored if isinstance(stored, str) else quota_key

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
    ) -> None:
        """Journal that the provider is about to be called (before the call), leased to `owner` until
        `lease_until`.

        `internet_message_id` is the provider-assigned Message-ID of an Outlook draft, by which a redelivery
        finds the send. Raises `AttemptLeasedError` while another owner's lease is running: a second
        consumer (e.g. after a rebalance) must not call the provider for the same request meanwhile.
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
        result = await self._records.update_one(
            {
                "_id": request_id,
                "state": {"$ne": "completed"},
                "$or": [
                    {"attempt_owner": owner},
                    {"attempt_until": None},
                    {"attempt_until": {"$lte": at}},
                ],
            },
            {"$set": journal},
        )
        if result.matched_count == 0:
            raise AttemptLeasedError(request_id)

    async def complete(self, request_id: str, result: SendCompleted) -> SendCompleted:
        """Store `result` unless a result is already stored; return the stored one (first wins)."""
        stored = await self._records.find_one_and_update(
            {"_id": request_id, "state": {"$ne": "completed"}},
            {
                "$set": {
                    "state": "completed",
                    "result": result.model_dump(mode="json", by_alias=True),
                    "status": result.status,
                    "completed_at": result.occurred_at,
                }
            },
            return_document=ReturnDocument.AFTER,
        )
        if stored is None:
            stored = await self._records.find_one({"_id": request_id})
        record = _record(stored or {"_id": request_id, "state": "received"})
        if record.result is None:  # pragma: no cover - only if the record was deleted meanwhile
            raise RuntimeError(f"the result of {request_id} was not stored")
        return record.result


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
