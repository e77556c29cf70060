"""The request records on the real MongoDB-wire server: the first result stored for a request wins (S7)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from pymongo import AsyncMongoClient

from mailsync.common.contracts import SendCompleted, SendFailureReason
from mailsync.common.mongo import Document
from mailsync.sender.adapters.send_records import SendRecordStore

pytestmark = pytest.mark.mongodb

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def store(mongodb_uri: str, unique_name: Callable[[str], str]) -> AsyncIterator[SendRecordStore]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongodb_uri, tz_aware=True)
    yield SendRecordStore(client[unique_name("sender")])
    await client.close()


def refused(request_id: str, detail: str) -> SendCompleted:
    return SendCompleted(
        occurred_at=T0,
        request_id=request_id,
        status="refused",
        reason=SendFailureReason.INVALID_COMMAND,
        detail=detail,
    )


async def test_s7_a_bulk_answers_what_it_stored_and_what_was_stored_before(store: SendRecordStore) -> None:
    """Two results go to MongoDB in one bulk; one request already had a result. The new one is answered as
    stored by this bulk (the same object: the results metric counts it), the other with the first result."""
    await store.claim_all(["req-new", "req-old"], T0)
    first = refused("req-old", "first delivery")
    assert await store.complete(first) is first

    new, again = refused("req-new", "only delivery"), refused("req-old", "second delivery")
    answered = await asyncio.gather(store.complete(new), store.complete(again))

    assert answered[0] is new
    assert answered[1] is not again
    assert answered[1].event_id == first.event_id
    assert answered[1].detail == "first delivery"
    stored = await store.get("req-old")
    assert stored is not None
    assert stored.result == first


async def test_s7_two_results_for_one_request_in_a_bulk_answer_the_first_for_both(
    store: SendRecordStore,
) -> None:
    await store.claim_all(["req-twice"], T0)
    first, second = refused("req-twice", "first"), refused("req-twice", "second")
    answered = await asyncio.gather(store.complete(first), store.complete(second))
    assert answered[0] is first
    assert answered[1] is not second
    assert answered[1].event_id == first.event_id
