"""The MongoDB-wire server, started by the plugin, answers PyMongo's async client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from pymongo import AsyncMongoClient

if TYPE_CHECKING:
    from collections.abc import Callable


@pytest.mark.mongodb
async def test_ping_and_insert_find_round_trip(mongodb_uri: str, unique_name: Callable[[str], str]) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri)
    try:
        assert (await client.admin.command("ping"))["ok"] == 1
        collection = client[unique_name("devstack")]["messages"]
        inserted = await collection.insert_one({"messageId": "m-1", "labels": ["INBOX"], "size": 42})
        found = await collection.find_one({"messageId": "m-1"})
        assert found == {"_id": inserted.inserted_id, "messageId": "m-1", "labels": ["INBOX"], "size": 42}
        assert await collection.find_one({"messageId": "m-2"}) is None
    finally:
        await client.close()
