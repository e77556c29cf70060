"""MongoDB: the per-connection daily send counter (S3), exact under concurrency and across restarts.

Collection `quota_ledger`, one document per connection and quota day (`_id` = `<connection_id>|<day>`):
`count` and the `request_ids` holding a reservation. A reservation is one `find_one_and_update` whose filter
requires `count < limit` and that this request holds no reservation yet, incrementing `count` and adding the
request id in the same atomic document update; so concurrent senders (any number of processes) can never
pass the limit, and a redelivered command never counts twice. Release is the reverse update, conditional on
the request holding a reservation, so it is idempotent too. Reservations asked for concurrently
are made together: one conditional update per day counts all of that day's requests at once, when the day has
room for all of them and holds none of them yet, still one atomic document update. Documents expire (TTL) a
few days after their day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mailsync.common.mongo import Document
from mailsync.sender.adapters.coalescing import Coalescer

_UPSERT_RACE_ATTEMPTS = 5


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
    """The `quota_ledger` collection."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._ledger = database["quota_ledger"]
        self._reservations = Coalescer(self._reserve_all)

    async def ensure_indexes(self) -> None:
        """Expire ledger days once `expires_at` has passed."""
        await self._ledger.create_index("expires_at", expireAfterSeconds=0)

    @staticmethod
    def key(connection_id: str, day: str) -> str:
        """The ledger key of `connection_id` on quota day `day`."""
        return f"{connection_id}|{day}"

    async def reserve(self, key: str, request_id: str, *, limit: int, expires_at: datetime) -> Reservation:
        """Count `request_id` against `key` unless `limit` sends are already counted (idempotent).

        Concurrent calls go to MongoDB together (see `Coalescer`)."""
        return await self._reservations.submit(_Ask(key, request_id, limit, expires_at))

    async def _reserve_all(self, asks: list[_Ask]) -> list[Reservation]:
        """Reserve `asks` with one conditional update per ledger day they name; a day whose update did not
        match (a new day, too little room, a redelivery) has each of its asks made again alone, which is
        idempotent, to learn its outcome."""
        days: dict[tuple[str, int], list[str]] = {}
        for ask in asks:
            days.setdefault((ask.key, ask.limit), [])
            if ask.request_id not in days[(ask.key, ask.limit)]:
                days[(ask.key, ask.limit)].append(ask.request_id)
        groups = [(key, limit, request_ids) for (key, limit), request_ids in days.items()]
        written = await self._ledger.bulk_write(
            [_reserve_together(key, limit, request_ids) for key, limit, request_ids in groups],
            ordered=False,
        )
        if written.matched_count == len(groups):
            return [Reservation.RESERVED] * len(asks)
        return [await self._reserve_one(ask) for ask in asks]

    async def _reserve_one(self, ask: _Ask) -> Reservation:
        key, request_id, limit = ask.key, ask.request_id, ask.limit
        for _ in range(_UPSERT_RACE_ATTEMPTS):
            try:
                await self._ledger.find_one_and_update(
                    {"_id": key, "count": {"$lt": limit}, "request_ids": {"$ne": request_id}},
                    {
                        "$inc": {"count": 1},
                        "$push": {"request_ids": request_id},
                        "$set": {"limit": limit},
                        "$setOnInsert": {"expires_at": ask.expires_at},
                    },
                    upsert=True,
                )
            except DuplicateKeyError:
                # The day exists and the filter did not match: full, already reserved, or a concurrent first
                # upsert won the insert. Read it to tell which.
                document = await self._ledger.find_one({"_id": key})
                if document is None:
                    continue
                if request_id in document.get("request_ids", ()):
                    return Reservation.RESERVED
                if int(document.get("count", 0)) >= limit:
                    return Reservation.EXHAUSTED
                continue
            return Reservation.RESERVED
        raise RuntimeError(f"could not reserve quota on {key} after {_UPSERT_RACE_ATTEMPTS} attempts")

    async def release(self, key: str, request_id: str) -> None:
        """Give back `request_id`'s reservation on `key` (no-op when it holds none)."""
        await self._ledger.update_one(
            {"_id": key, "request_ids": request_id},
            {"$inc": {"count": -1}, "$pull": {"request_ids": request_id}},
        )

    async def used(self, key: str) -> int:
        """How many sends are counted on `key`."""
        document = await self._ledger.find_one({"_id": key}, {"count": 1})
        return int(document["count"]) if document else 0


def _reserve_together(key: str, limit: int, request_ids: list[str]) -> UpdateOne:
    """One atomic update counting all of `request_ids` on `key`, matching only when the day exists, has room
    for all of them and holds a reservation for none."""
    return UpdateOne(
        {"_id": key, "count": {"$lte": limit - len(request_ids)}, "request_ids": {"$nin": request_ids}},
        {
            "$inc": {"count": len(request_ids)},
            "$push": {"request_ids": {"$each": request_ids}},
            "$set": {"limit": limit},
        },
    )
