"""MongoDB access through PyMongo's asyncio client, and the idempotent insert every handler builds on.

The client is created by a service's composition root and closed by its HTTP shell; nothing connects at
import time. Only features of MongoDB 7 itself are used, so the same code runs against a real replica set,
Atlas, or the MongoDB-wire server the tests start.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from pymongo import AsyncMongoClient
from pymongo.errors import BulkWriteError, DuplicateKeyError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from pymongo.asynchronous.collection import AsyncCollection

    from mailsync.common.settings import ServiceSettings

Document = dict[str, Any]

_DUPLICATE_KEY = 11000


def create_mongo_client(settings: ServiceSettings) -> AsyncMongoClient[Document]:
    """A client with timezone-aware datetimes, standard UUIDs and an app name for server-side logs.

    Connection is lazy: the first operation connects. Server selection fails after 10 s with
    `ServerSelectionTimeoutError`, which handlers treat as transient.
    """
    return AsyncMongoClient(
        settings.mongodb_uri.get_secret_value(),
        appname=f"mailsync-{settings.service_name}",
        tz_aware=True,
        uuidRepresentation="standard",
        serverSelectionTimeoutMS=10_000,
    )


async def insert_once(collection: AsyncCollection[Document], document: Mapping[str, Any]) -> bool:
    """Insert `document` unless a unique index already holds its natural key.

    Returns True when this call inserted it and False when it was already there, so a redelivered message
    produces its effect once. The collection must have a unique index on the natural key (or use it as
    `_id`); without one this is a plain insert and idempotency is not guaranteed.
    """
    try:
        await collection.insert_one(dict(document))
    except DuplicateKeyError:
        return False
    return True


async def insert_many_once(
    collection: AsyncCollection[Document], documents: Sequence[Mapping[str, Any]]
) -> int:
    """`insert_once` for many documents in one round trip; returns how many this call inserted.

    The insert is unordered, so a document already stored does not stop the others; duplicate-key errors are
    expected and ignored, any other write error is raised.
    """
    if not documents:
        return 0
    try:
        result = await collection.insert_many([dict(d) for d in documents], ordered=False)
    except BulkWriteError as error:
        others = [e for e in error.details.get("writeErrors", ()) if e.get("code") != _DUPLICATE_KEY]
        if others or error.details.get("writeConcernErrors"):
            raise
        return int(error.details.get("nInserted", 0))
    return len(result.inserted_ids)


IN_CHUNK = 25
"""Most values in one `$in`: some MongoDB-wire servers match `$in` in time quadratic in its length."""


async def find_in(
    collection: AsyncCollection[Document],
    field: str,
    values: Iterable[Any],
    query: Mapping[str, Any] | None = None,
    projection: Mapping[str, Any] | None = None,
) -> list[Document]:
    """Documents matching `query` whose `field` is one of `values`, in concurrent bounded `$in` queries.

    Distinct values are asked once each, and a document matching values of several chunks (an array field)
    is returned once (`projection` must keep `_id`).
    """
    distinct = sorted(set(values))
    chunks = [distinct[i : i + IN_CHUNK] for i in range(0, len(distinct), IN_CHUNK)]

    async def one(chunk: list[Any]) -> list[Document]:
        return await collection.find({**(query or {}), field: {"$in": chunk}}, projection).to_list()

    found: dict[Any, Document] = {}
    for docs in await asyncio.gather(*(one(c) for c in chunks)):
        found.update((doc["_id"], doc) for doc in docs)
    return list(found.values())
