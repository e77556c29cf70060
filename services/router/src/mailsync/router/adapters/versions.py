"""Collection `read_model_versions`: a counter per part of a read model that router instances keep in memory.

A writer moves the counter on after every write to that part, including writes that changed nothing (a
redelivered event), so a crash between the write and the counter is mended by the redelivery. A reader reads
the counter before the data and keeps the data with the counter it read; while the counter has not moved,
the data it keeps is at least as new as the counter says.
"""

from __future__ import annotations

from collections.abc import Iterable

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mailsync.common.mongo import Document, find_in


class ReadModelVersions:
    """The `read_model_versions` collection (`_id` = the part's name, `version` = its counter)."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._versions = database["read_model_versions"]

    async def move_on(self, name: str) -> None:
        """Count one more write to the part `name`."""
        try:
            await self._versions.update_one({"_id": name}, {"$inc": {"version": 1}}, upsert=True)
        except DuplicateKeyError:  # a concurrent first write created the counter: it exists now
            await self._versions.update_one({"_id": name}, {"$inc": {"version": 1}})

    async def of(self, names: Iterable[str]) -> dict[str, int]:
        """The counter of each of `names` (0 for a part never written through a store)."""
        wanted = sorted(set(names))
        found = {
            str(d["_id"]): int(d.get("version", 0)) for d in await find_in(self._versions, "_id", wanted)
        }
        return {name: found.get(name, 0) for name in wanted}
