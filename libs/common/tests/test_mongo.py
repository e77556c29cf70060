"""MongoDB factory and the idempotent insert (D2's building block) against the MongoDB-wire server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from mailsync.common.mongo import create_mongo_client, insert_many_once, insert_once
from mailsync.common.settings import ServiceSettings

pytestmark = pytest.mark.mongodb


async def test_unique_index_makes_a_repeated_insert_a_no_op(service_settings: ServiceSettings) -> None:
    """D2: the same provider message, delivered twice, is stored once."""
    client = create_mongo_client(service_settings)
    try:
        messages = client[service_settings.mongodb_database]["messages"]
        await messages.create_index([("conversation_id", 1), ("provider_message_id", 1)], unique=True)
        document = {"conversation_id": "c1", "provider_message_id": "18c2f", "subject": "Hello"}

        assert await insert_once(messages, document) is True
        assert await insert_once(messages, {**document, "subject": "redelivered"}) is False
        assert await insert_once(messages, {**document, "conversation_id": "c2"}) is True

        stored = (
            await messages.find({"provider_message_id": "18c2f"}, {"_id": 0})
            .sort("conversation_id")
            .to_list()
        )
        assert stored == [
            {"conversation_id": "c1", "provider_message_id": "18c2f", "subject": "Hello"},
            {"conversation_id": "c2", "provider_message_id": "18c2f", "subject": "Hello"},
        ]
    finally:
        await client.close()


async def test_concurrent_inserts_of_one_key_store_exactly_one(service_settings: ServiceSettings) -> None:
    client = create_mongo_client(service_settings)
    try:
        collection = client[service_settings.mongodb_database]["deliveries"]
        await collection.create_index("request_id", unique=True)
        results = await asyncio.gather(
            *(insert_once(collection, {"request_id": "r-1", "n": n}) for n in range(20))
        )
        assert results.count(True) == 1
        assert await collection.count_documents({"request_id": "r-1"}) == 1
    finally:
        await client.close()


async def test_insert_many_once_stores_the_new_documents_and_skips_the_stored(
    service_settings: ServiceSettings,
) -> None:
    """D2 for a batch: documents already stored (or twice in the batch) are skipped, the others inserted."""
    client = create_mongo_client(service_settings)
    try:
        collection = client[service_settings.mongodb_database]["batch_messages"]
        await collection.insert_one({"_id": "m2", "subject": "stored first"})
        batch = [{"_id": f"m{n}", "subject": f"batch {n}"} for n in range(1, 5)] + [
            {"_id": "m1", "subject": "again"}
        ]

        assert await insert_many_once(collection, batch) == 3
        assert await insert_many_once(collection, batch) == 0
        assert await insert_many_once(collection, []) == 0
        stored = {d["_id"]: d["subject"] for d in await collection.find({}).to_list()}
        assert stored == {"m1": "batch 1", "m2": "stored first", "m3": "batch 3", "m4": "batch 4"}
    finally:
        await client.close()


async def test_client_returns_timezone_aware_datetimes(service_settings: ServiceSettings) -> None:
    client = create_mongo_client(service_settings)
    try:
        collection = client[service_settings.mongodb_database]["times"]
        written = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
        await collection.insert_one({"_id": "t", "at": written})
        document = await collection.find_one({"_id": "t"})
        assert document is not None
        assert document["at"] == written
        assert document["at"].tzinfo is not None
    finally:
        await client.close()
