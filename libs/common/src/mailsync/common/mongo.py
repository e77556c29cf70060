"""MongoDB access through PyMongo's asyncio client, and the idempotent insert every handler builds on.

The client is created by a service's composition root and closed by its HTTP shell; nothing connects at
import time. Only features of MongoDB 7 itself are used, so the same code runs against a real replica set,
Atlas, or the MongoDB-wire server the tests start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pymongo.asynchronous.collection import AsyncCollection

    from mailsync.common.settings import ServiceSettings

Document = dict[str, Any]


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
