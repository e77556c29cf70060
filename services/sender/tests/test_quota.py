"""S3: the per-connection daily quota is exact under many concurrent senders and across restarts."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase
from services.sender.tests.conftest import ADA, Sending, send_email

from mailsync.common.delivery import TransientError
from mailsync.common.mongo import Document
from mailsync.sender.adapters.blob_store import GridFsBlobStore
from mailsync.sender.adapters.quota_ledger import QuotaLedger, Reservation
from mailsync.sender.adapters.send_records import SendRecordStore
from mailsync.sender.domain import quota_day
from mailsync.sender.handlers.attempts import Attempts, Progress

pytestmark = [pytest.mark.kafka, pytest.mark.mongodb]


async def test_s3_600_sends_from_20_producers_send_exactly_500_and_refuse_100_with_quota_exceeded(
    sending: Sending,
) -> None:
    # Three sender instances in one consumer group share the command topic's partitions, so reservations
    # race across processes' worth of consumers, not only within one.
    for _ in range(3):
        await sending.start()
    await sending.connect("conn_ada", ADA)

    async def producer(index: int) -> list[str]:
        ids = [f"req-p{index:02d}-{n:02d}" for n in range(30)]
        for request_id in ids:
            await sending.bus.send(send_email(request_id))
        return ids

    batches = await asyncio.gather(*(producer(i) for i in range(20)))
    request_ids = [r for batch in batches for r in batch]
    results = await sending.bus.wait_for(request_ids, within=240)

    outcomes = Counter((r.status, r.reason) for r in results.values())
    assert outcomes == {("sent", None): 500, ("refused", "quota_exceeded"): 100}
    resets_at = quota_day(datetime.now(UTC)).resets_at
    assert {r.quota_resets_at for r in results.values() if r.status == "refused"} == {resets_at}
    sent = await sending.gmail.sent(ADA)
    assert len(sent) == 500
    assert {m["id"] for m in sent} == {r.provider_message_id for r in results.values() if r.status == "sent"}
    assert all(len(answers) == 1 for answers in sending.bus.results.values())


async def test_s3_reservations_are_exact_across_clients_idempotent_and_released_once(
    sending: Sending,
) -> None:
    uri = sending.settings.mongodb_uri.get_secret_value()
    clients: list[AsyncMongoClient[Document]] = [AsyncMongoClient(uri) for _ in range(4)]
    try:
        ledgers = [QuotaLedger(c[sending.settings.mongodb_database]) for c in clients]
        await ledgers[0].ensure_indexes()  # as the sender does at start-up
        key = QuotaLedger.key("conn_ada", "2026-03-02")
        expires = datetime.now(UTC) + timedelta(days=3)

        async def reserve(n: int) -> Reservation:
            # The second delivery of a request goes to another client than the first.
            ledger = ledgers[(n + n // 60) % 4]
            return await ledger.reserve(key, f"req-{n % 60}", limit=50, expires_at=expires)

        # 60 distinct requests, each reserved twice (a redelivery), from four clients at once.
        outcomes = await asyncio.gather(*(reserve(n) for n in range(120)))
        by_request: dict[str, set[Reservation]] = {}
        for n, outcome in enumerate(outcomes):
            by_request.setdefault(f"req-{n % 60}", set()).add(outcome)
        reserved = [r for r, seen in by_request.items() if Reservation.RESERVED in seen]
        assert len(reserved) == 50
        assert await ledgers[0].used(key) == 50

        # A restart: a fresh client sees the same count, and releasing twice gives one send back.
        fresh: AsyncMongoClient[Document] = AsyncMongoClient(uri)
        clients.append(fresh)
        restarted = QuotaLedger(fresh[sending.settings.mongodb_database])
        await restarted.release(key, reserved[0])
        await restarted.release(key, reserved[0])
        assert await restarted.used(key) == 49
        assert await restarted.reserve(key, "req-new", limit=50, expires_at=expires) is Reservation.RESERVED
        assert await restarted.reserve(key, "req-late", limit=50, expires_at=expires) is Reservation.EXHAUSTED

        # With room left, 30 requests reserved through one client and delivered again through the others
        # (each holding its own idea of the next free slot) still count once each.
        roomy = QuotaLedger.key("conn_ada", "2026-03-03")
        first = [ledgers[0].reserve(roomy, f"req-{n}", limit=500, expires_at=expires) for n in range(30)]
        assert set(await asyncio.gather(*first)) == {Reservation.RESERVED}
        again = [
            ledgers[1 + n % 3].reserve(roomy, f"req-{n}", limit=500, expires_at=expires) for n in range(30)
        ]
        assert set(await asyncio.gather(*again)) == {Reservation.RESERVED}
        assert await restarted.used(roomy) == 30
    finally:
        for client in clients:
            await client.close()


async def test_s3_a_full_day_is_refused_only_when_no_slot_is_left_and_a_lower_limit_holds(
    sending: Sending,
) -> None:
    """Slots freed below the next one (a release) are used before refusing; a lower limit counts at once."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(sending.settings.mongodb_uri.get_secret_value())
    try:
        database = client[sending.settings.mongodb_database]
        first = QuotaLedger(database)
        await first.ensure_indexes()
        key = QuotaLedger.key("conn_ada", "2026-03-04")
        expires = datetime.now(UTC) + timedelta(days=3)
        for n in range(4):
            assert await first.reserve(key, f"req-{n}", limit=5, expires_at=expires) is Reservation.RESERVED
        await first.release(key, "req-1")

        # Another instance, two new requests in one bulk: the next slot and the freed one.
        other = QuotaLedger(database)
        both = await asyncio.gather(
            other.reserve(key, "req-a", limit=5, expires_at=expires),
            other.reserve(key, "req-b", limit=5, expires_at=expires),
        )
        assert list(both) == [Reservation.RESERVED, Reservation.RESERVED]
        assert await other.used(key) == 5
        assert await other.reserve(key, "req-c", limit=5, expires_at=expires) is Reservation.EXHAUSTED

        # The connection's limit drops to 3: with 4 counted, a freed slot is not enough.
        await other.release(key, "req-0")
        assert await other.reserve(key, "req-d", limit=3, expires_at=expires) is Reservation.EXHAUSTED
        assert await first.reserve(key, "req-d", limit=3, expires_at=expires) is Reservation.EXHAUSTED
        assert await other.used(key) == 4
    finally:
        await client.close()


@pytest.mark.parametrize("other_day", [True, False])
async def test_s3_a_delivery_that_loses_the_attempt_lease_keeps_only_the_day_that_counts(
    sending: Sending, other_day: bool
) -> None:
    """Two deliveries of one request straddle midnight (a rebalance): the one that journalled first keeps
    its day's reservation; the other gives back a reservation made on another day, and keeps a shared one."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(sending.settings.mongodb_uri.get_secret_value())
    try:
        database = client[sending.settings.mongodb_database]
        records, ledger = SendRecordStore(database), QuotaLedger(database)
        await ledger.ensure_indexes()
        blobs = GridFsBlobStore(database, sending.settings.blob_bucket)
        first = Attempts(records=records, ledger=ledger, blobs=blobs)
        second = Attempts(records=records, ledger=ledger, blobs=blobs)
        expires = datetime.now(UTC) + timedelta(days=3)
        today = QuotaLedger.key("conn_ada", "2026-03-05")
        tomorrow = QuotaLedger.key("conn_ada", "2026-03-06") if other_day else today
        await records.claim_all(["req-straddle"], datetime.now(UTC))

        mine = Progress(quota_key=today)
        assert (
            await ledger.reserve(today, "req-straddle", limit=5, expires_at=expires) is Reservation.RESERVED
        )
        theirs = Progress(quota_key=tomorrow)
        assert (
            await ledger.reserve(tomorrow, "req-straddle", limit=5, expires_at=expires)
            is Reservation.RESERVED
        )
        await first.journal("req-straddle", "mailbox", None, mine)
        with pytest.raises(TransientError):
            await second.journal("req-straddle", "mailbox", None, theirs)

        assert await ledger.used(today) == 1
        if other_day:
            assert await ledger.used(tomorrow) == 0
    finally:
        await client.close()


async def reserve_together(
    ledger: QuotaLedger, key: str, request_ids: list[str], *, limit: int
) -> list[Reservation]:
    """`request_ids` reserved on `key` at once through `ledger` (they meet in its coalesced inserts)."""
    expires = datetime.now(UTC) + timedelta(days=3)
    return list(
        await asyncio.gather(*(ledger.reserve(key, r, limit=limit, expires_at=expires) for r in request_ids))
    )


class _RefusedInserts(monitoring.CommandListener):
    """Counts the slots an insert into the ledger found taken (duplicate keys), as the server answered."""

    def __init__(self) -> None:
        self.taken = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.command_name == "insert":
            self.taken += sum(1 for e in event.reply.get("writeErrors", ()) if e.get("code") == 11000)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_s3_instances_sending_for_one_connection_try_different_slots(sending: Sending) -> None:
    """Two instances reserving on one connection's day at the same time, wave after wave (the sender's
    coalesced inserts), never try a slot the other took: each has blocks of its own from the day's counter."""
    listener = _RefusedInserts()
    uri = sending.settings.mongodb_uri.get_secret_value()
    clients: list[AsyncMongoClient[Document]] = [
        AsyncMongoClient(uri, event_listeners=[listener]) for _ in range(2)
    ]
    try:
        ledgers = [QuotaLedger(c[sending.settings.mongodb_database]) for c in clients]
        await ledgers[0].ensure_indexes()
        key = QuotaLedger.key("conn_ada", "2026-03-07")
        expires = datetime.now(UTC) + timedelta(days=3)
        for wave in range(10):
            outcomes = await asyncio.gather(
                *(
                    ledgers[n % 2].reserve(key, f"req-{wave}-{n}", limit=2000, expires_at=expires)
                    for n in range(26)
                )
            )
            assert set(outcomes) == {Reservation.RESERVED}
        assert await ledgers[0].used(key) == 260
        assert listener.taken == 0
    finally:
        for client in clients:
            await client.close()


async def test_s3_slots_left_in_a_stopped_instances_block_are_used_before_refusing(
    database: AsyncDatabase[Document],
) -> None:
    stopped = QuotaLedger(database)
    await stopped.ensure_indexes()
    key = QuotaLedger.key("conn_ada", "2026-03-08")
    expires = datetime.now(UTC) + timedelta(days=3)
    # An instance takes a block of slots, uses one, and stops with the rest of its block untried.
    assert await stopped.reserve(key, "req-first", limit=40, expires_at=expires) is Reservation.RESERVED

    running = QuotaLedger(database)
    outcomes = await reserve_together(running, key, [f"req-{n}" for n in range(45)], limit=40)
    assert Counter(outcomes) == {Reservation.RESERVED: 39, Reservation.EXHAUSTED: 6}
    assert await running.used(key) == 40


async def test_s3_an_instance_whose_block_others_filled_finds_the_free_slots(
    database: AsyncDatabase[Document],
) -> None:
    """Past the counter, another instance fills the lowest free slots, which are in this instance's block:
    after one collision this instance looks where slots are free instead of trying its block slot by slot."""
    mine, other = QuotaLedger(database), QuotaLedger(database)
    await mine.ensure_indexes()
    key = QuotaLedger.key("conn_ada", "2026-03-09")
    expires = datetime.now(UTC) + timedelta(days=3)
    assert await mine.reserve(key, "req-mine", limit=64, expires_at=expires) is Reservation.RESERVED
    filled = await reserve_together(other, key, [f"req-{n}" for n in range(58)], limit=64)
    assert set(filled) == {Reservation.RESERVED}

    assert await mine.reserve(key, "req-late", limit=64, expires_at=expires) is Reservation.RESERVED
    assert await mine.used(key) == 60


async def test_s3_a_redelivery_among_the_last_slots_does_not_crowd_out_new_requests(
    database: AsyncDatabase[Document],
) -> None:
    first = QuotaLedger(database)
    await first.ensure_indexes()
    key = QuotaLedger.key("conn_ada", "2026-03-10")
    held = await reserve_together(first, key, [f"req-{n}" for n in range(38)], limit=40)
    assert set(held) == {Reservation.RESERVED}

    # Another instance, past the counter: a redelivery and two new requests for the last two slots.
    other = QuotaLedger(database)
    outcomes = await reserve_together(other, key, ["req-0", "req-y", "req-z"], limit=40)
    assert list(outcomes) == [Reservation.RESERVED] * 3
    assert await other.used(key) == 40
