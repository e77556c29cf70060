"""MongoDB: the per-connection daily send counter (S3), exact under concurrency and across restarts.

Collection `quota_reservations`: one document per send counted on a connection's quota day (the ledger key
`<connection_id>|<day>`), in one of the day's numbered slots: `_id` = `<key>|<slot>` with `0 <= slot < limit`,
and `day` (the key) and `request_id` unique together. A reservation is one insert, so it is

* exact: a day has `limit` slots and a slot is one `_id`, so any number of concurrent senders, in any number
  of processes, can never count more;
* idempotent: a request holds at most one slot of a day; a redelivered command finds the one it holds;
* crash-safe: the document was written or it was not; there is nothing to reconcile.

Release deletes the request's slot (idempotent), which frees it for a later send.

Which slots an instance tries comes from a counter per day in `quota_allocations` (`_id` = the key,
`next` = the first slot no instance was given): an instance takes a block of slots from it at once (one
`$inc`) and tries them in order, so instances sending for the same connection at the same time try different
slots instead of racing for the same ones. The counter is only where to look, never what counts: once it has
passed the limit, an instance looks for the slots below the limit that nobody holds (released, or left in a
block of an instance that stopped) before refusing. Reservations asked for at the same time go to MongoDB as
one unordered insert. Documents of both collections expire (TTL) a few days after their day.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from mailsync.common.delivery import TransientError
from mailsync.common.mongo import Document
from mailsync.sender.adapters.coalescing import Coalescer

_DUPLICATE_KEY = 11000
_PLACEMENT_ROUNDS = 20
_BLOCK = 32  # slots an instance takes from a day's counter at once


class Reservation(Enum):
    """The outcome of `QuotaLedger.reserve`."""

    RESERVED = "reserved"
    EXHAUSTED = "exhausted"


@dataclass(frozen=True)
class _Ask:
    key: str
    request_id: str
    limit: int
    expires_at: datetime


class QuotaLedger:
    """The `quota_reservations` collection."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._slots = database["quota_reservations"]
        self._allocations = database["quota_allocations"]
        self._blocks: dict[str, range] = {}  # the rest of the block of slots of a day this instance was given
        self._limits: dict[str, int] = {}
        self._reservations = Coalescer(self._reserve_all)

    async def ensure_indexes(self) -> None:
        """One slot per request and day; expire slots and counters once `expires_at` has passed."""
        await self._slots.create_index([("day", ASCENDING), ("request_id", ASCENDING)], unique=True)
        await self._slots.create_index("expires_at", expireAfterSeconds=0)
        await self._allocations.create_index("expires_at", expireAfterSeconds=0)

    @staticmethod
    def key(connection_id: str, day: str) -> str:
        """The ledger key of `connection_id` on quota day `day`."""
        return f"{connection_id}|{day}"

    async def reserve(self, key: str, request_id: str, *, limit: int, expires_at: datetime) -> Reservation:
        """Count `request_id` against `key` unless `limit` sends are already counted (idempotent).

        Concurrent calls go to MongoDB together (see `Coalescer`)."""
        return await self._reservations.submit(_Ask(key, request_id, limit, expires_at))

    async def release(self, key: str, request_id: str) -> None:
        """Give back `request_id`'s reservation on `key` (no-op when it holds none)."""
        await self._slots.delete_one({"day": key, "request_id": request_id})

    async def used(self, key: str) -> int:
        """How many sends are counted on `key`."""
        return await self._slots.count_documents({"day": key})

    async def _reserve_all(self, asks: list[_Ask]) -> list[Reservation]:
        """Place every distinct (day, request) of `asks` in a free slot of its day, a round at a time."""
        wanted = {(ask.key, ask.request_id): ask for ask in asks}
        outcomes: dict[tuple[str, str], Reservation] = {}
        todo = list(wanted.values())
        for _ in range(_PLACEMENT_ROUNDS):
            if not todo:
                return [outcomes[(ask.key, ask.request_id)] for ask in asks]
            todo = await self._place(todo, outcomes)
        # Other instances took every slot tried, round after round: try again later.
        raise TransientError(f"could not place {len(todo)} quota reservations in {_PLACEMENT_ROUNDS} rounds")

    async def _place(self, asks: list[_Ask], outcomes: dict[tuple[str, str], Reservation]) -> list[_Ask]:
        """Try one slot for each of `asks` (one insert), record what is decided; return the asks to retry."""
        documents, placed, unplaced = [], [], []
        for key, day_asks in _by_day(asks).items():
            slots = await self._free_slots(key, day_asks[0].limit, len(day_asks), day_asks[0].expires_at)
            for ask, slot in zip(day_asks, slots, strict=False):
                documents.append(
                    {
                        "_id": f"{key}|{slot:06d}",
                        "day": key,
                        "request_id": ask.request_id,
                        "expires_at": ask.expires_at,
                    }
                )
                placed.append(ask)
            unplaced.extend(day_asks[len(slots) :])
        taken = await self._insert(documents)
        for position, ask in enumerate(placed):
            if position not in taken:
                outcomes[(ask.key, ask.request_id)] = Reservation.RESERVED
        # A slot already taken: by this request (a redelivery), or by another one (try the next slot).
        collided = [placed[position] for position in sorted(taken)]
        held = await self._held(collided + unplaced)
        retry = []
        crowded = set()  # days where a slot tried in this round may still be free
        for ask in collided:
            crowded.add(ask.key)
            if (ask.key, ask.request_id) in held:  # its own slot: the one it tried is still free
                outcomes[(ask.key, ask.request_id)] = Reservation.RESERVED
            else:  # another instance took the slot, found free past the limit: this block is stale
                self._blocks.pop(ask.key, None)
                retry.append(ask)
        for ask in unplaced:  # no free slot was found for it on its day
            if (ask.key, ask.request_id) in held:
                outcomes[(ask.key, ask.request_id)] = Reservation.RESERVED
            elif ask.key in crowded:
                retry.append(ask)
            else:
                outcomes[(ask.key, ask.request_id)] = Reservation.EXHAUSTED
        return retry

    async def _free_slots(self, key: str, limit: int, wanted: int, expires_at: datetime) -> list[int]:
        """Up to `wanted` slots of `key` that look free: the next ones of this instance's blocks, then, once
        the day's counter has passed the limit, those nobody holds, as many as the day has room for."""
        if self._limits.get(key) != limit:  # a new day here, or its limit changed
            self._limits[key] = limit
            self._blocks.pop(key, None)
        slots: list[int] = []
        while len(slots) < wanted:
            block = self._blocks.get(key)
            if block is None or (not block and block.stop < limit):  # none yet, or used up: ask the counter
                size = max(_BLOCK, wanted - len(slots))
                start = await self._allocate(key, size, expires_at)
                block = range(start, min(limit, start + size))
            if not block:  # the counter has passed the limit: an empty block that ends at it says so
                self._blocks[key] = block
                break
            wanting = wanted - len(slots)
            slots.extend(block[:wanting])
            self._blocks[key] = block[wanting:]  # a slice keeps the block's end
        if len(slots) == wanted:
            return slots
        held = {_slot_of(d) async for d in self._slots.find({"day": key}, {"_id": 1})}
        room = limit - len(held) - sum(1 for slot in slots if slot not in held)
        freed = [slot for slot in range(limit) if slot not in held and slot not in slots]
        return slots + freed[: max(0, min(wanted - len(slots), room))]

    async def _allocate(self, key: str, size: int, expires_at: datetime) -> int:
        """The first of `size` slots of `key` that no other instance was given (one `$inc` on the counter)."""
        move = functools.partial(
            self._allocations.find_one_and_update,
            {"_id": key},
            {"$inc": {"next": size}, "$setOnInsert": {"expires_at": expires_at}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        try:
            counter = await move()
        except DuplicateKeyError:  # two first upserts of the day at once: the counter exists now
            counter = await move()
        if counter is None:  # pragma: no cover - an upsert returning the document after it always has one
            raise RuntimeError(f"the allocation counter of {key} was not written")
        return int(counter["next"]) - size

    async def _insert(self, documents: list[Document]) -> set[int]:
        """Insert `documents` (unordered); the positions of those refused as duplicates."""
        if not documents:
            return set()
        try:
            await self._slots.insert_many(documents, ordered=False)
        except BulkWriteError as error:
            errors = error.details.get("writeErrors", ())
            concern = error.details.get("writeConcernErrors")
            if concern or any(e.get("code") != _DUPLICATE_KEY for e in errors):
                raise
            return {int(e["index"]) for e in errors}
        return set()

    async def _held(self, asks: list[_Ask]) -> set[tuple[str, str]]:
        """Which (day, request) of `asks` hold a slot."""
        if not asks:
            return set()
        days = sorted({ask.key for ask in asks})
        request_ids = sorted({ask.request_id for ask in asks})
        found = self._slots.find(
            {"day": {"$in": days}, "request_id": {"$in": request_ids}}, {"day": 1, "request_id": 1}
        )
        return {(str(d["day"]), str(d["request_id"])) async for d in found}


def _by_day(asks: Iterable[_Ask]) -> dict[str, list[_Ask]]:
    days: dict[str, list[_Ask]] = {}
    for ask in asks:
        days.setdefault(ask.key, []).append(ask)
    return days


def _slot_of(document: Document) -> int:
    return int(str(document["_id"]).rpartition("|")[2])
