"""Benchmark of the router against a raw baseline, on the real Kafka broker and MongoDB-wire server.

In one run, with one subaccount of `--contacts` contacts (100,000 by default) spread over `--mailboxes` users,
each with a connected mailbox (mail of one mailbox is routed in order; mailboxes spread over partitions):

- baseline: `--messages` canonical events consumed from the messages topic by a plain consumer and
  bulk-upserted into a collection of the same database, with no logic (batches as Kafka returns them);
- router: the same events routed by the router service (its own process, as deployed): facts gathered,
  rules applied, each message stored once and its `ConversationMessageRecorded` published, offsets committed
  per batch. Throughput is measured from the start of the first batch (its `recorded_at`) to the moment the
  last message is seen stored; the ratio to the baseline is the figure to watch (issue 6's target: at
  least 70 %). Like the baseline's, the window leaves the start-up out: the process starting, its consumer
  groups joining and its read models applying their backlog (the 60 connections), which the first batch
  waits for; that time is printed beside each round;
- latency: with the router idle, events published at `--rate` per second; from publishing each event to
  seeing it stored, p50 and p99;
- memory: the router process's peak resident set (VmHWM) at the end, with the directory loaded.

Baseline and router take turns `--rounds` times over the same events (each round with fresh consumer groups
and empty output collections), so a change in the machine's load affects both sides of a round alike; each
round's ratio is printed, and their median is the figure.

    uv run python bench/router_bench.py [--messages 10000] [--contacts 100000] [--rate 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient, UpdateOne

from mailsync.common.contracts import (
    CONNECTIONS_CHANGED,
    MESSAGES_INGESTED,
    Address,
    ConnectionChanged,
    MessageBody,
    MessageIngested,
    contract_for,
)
from mailsync.common.topics_admin import contract_topic_names, ensure_topics
from mailsync.devstack.ports import free_port
from mailsync.devstack.stack import Stack
from mailsync.router.domain.identity import conversation_id_for, message_id_for, message_key

PREFIX = "bench."
DATABASE = "router_bench"


def mailbox_of(user: int) -> str:
    return f"gmail:user{user}@acme.example"


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def message(n: int, contacts: int, mailboxes: int, at: datetime) -> MessageIngested:
    contact = n * 7919 % contacts
    user = contact % mailboxes
    return MessageIngested(
        occurred_at=at,
        provider="gmail",
        mailbox_id=mailbox_of(user),
        mailbox_address=f"user{user}@acme.example",
        connection_ids=(f"conn_{user}",),
        provider_message_id=f"m{n:08d}",
        provider_thread_id=f"t{n:08d}",
        internet_message_id=f"<{n}@clients.example>",
        subject=f"Order {n}",
        from_=Address(email=f"contact{contact}@clients.example"),
        to=(Address(email=f"user{user}@acme.example"),),
        direction="inbound",
        sent_by_owner=False,
        sent_at=at,
        received_at=at,
        snippet="Hello Ada, about the order",
        body=MessageBody(text="Hello Ada,\n\nabout the order.\n"),
    )


async def seed(mongo: AsyncMongoClient[dict[str, Any]], contacts: int, mailboxes: int) -> None:
    database = mongo[DATABASE]
    await database["directory_users"].insert_many(
        [
            {
                "_id": f"loc_a|usr_{user}",
                "subaccount_id": "loc_a",
                "user_id": f"usr_{user}",
                "addresses": [f"user{user}@acme.example"],
                "bcc_address": None,
                "removed": False,
                "revision": 1,
            }
            for user in range(mailboxes)
        ]
    )
    batch = []
    for n in range(contacts):
        batch.append(
            {
                "_id": f"loc_a|con{n}",
                "subaccount_id": "loc_a",
                "contact_id": f"con{n}",
                "addresses": [f"contact{n}@clients.example"],
                "assigned_user_id": f"usr_{n % mailboxes}",
                "created_at": T0,
                "removed": False,
                "revision": 1,
            }
        )
        if len(batch) == 5000:
            await database["directory_contacts"].insert_many(batch)
            batch = []
    if batch:
        await database["directory_contacts"].insert_many(batch)


async def publish(broker: KafkaBroker, events: list[MessageIngested], topic: str) -> None:
    contract = contract_for(MESSAGES_INGESTED)
    for start in range(0, len(events), 200):
        await asyncio.gather(
            *(
                broker.publish(contract.serialize(e), topic=topic, key=e.mailbox_id.encode())
                for e in events[start : start + 200]
            )
        )


async def baseline(
    bootstrap: str, topic: str, mongo: AsyncMongoClient[dict[str, Any]], total: int, round_: int
) -> float:
    """Messages per second: consume and bulk-upsert with no logic (into an empty collection)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-baseline-{round_}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    collection = mongo[DATABASE]["baseline"]
    await collection.drop()
    await consumer.start()
    done = 0
    first = last = 0.0
    try:
        while done < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            for records in batches.values():
                if not records:
                    continue
                first = first or time.perf_counter()
                event_docs = [MessageIngested.model_validate_json(r.value) for r in records]
                await collection.bulk_write(
                    [
                        UpdateOne(
                            {"_id": e.provider_message_id}, {"$set": e.model_dump(mode="json")}, upsert=True
                        )
                        for e in event_docs
                    ],
                    ordered=False,
                )
                done += len(records)
                last = time.perf_counter()
            await consumer.commit()
    finally:
        await consumer.stop()
    return total / (last - first)


def start_router(stack: Stack, log: Path, round_: int) -> subprocess.Popen[bytes]:
    """A router process reading every topic from the start (consumer groups of its own for the round)."""
    env = {
        **os.environ,
        **stack.env(),
        "MAILSYNC_MONGODB_DATABASE": DATABASE,
        "MAILSYNC_KAFKA_TOPIC_PREFIX": PREFIX,
        "MAILSYNC_SERVICE_NAME": f"router-bench-{round_}",
        "MAILSYNC_HTTP_PORT": str(free_port()),
        "MAILSYNC_LOG_LEVEL": "WARNING",
    }
    with log.open("wb") as stderr:
        return subprocess.Popen([sys.executable, "-m", "mailsync.router"], env=env, stderr=stderr)


def stop(router: subprocess.Popen[bytes]) -> None:
    router.send_signal(signal.SIGTERM)
    router.wait(timeout=30)


async def first_recorded(mongo: AsyncMongoClient[dict[str, Any]]) -> datetime:
    """When the router started routing the first batch it stored (its `recorded_at`)."""
    doc = await mongo[DATABASE]["conversation_messages"].find_one(
        {}, {"recorded_at": 1}, sort=[("recorded_at", 1)]
    )
    if doc is None:
        raise SystemExit("the router stored nothing")
    recorded_at: datetime = doc["recorded_at"]
    return recorded_at


async def wait_stored(
    mongo: AsyncMongoClient[dict[str, Any]], events: list[MessageIngested], contacts: int, within: float
) -> datetime:
    """Wait until every event is stored; return when that was seen (to within 10 ms).

    Mail of a mailbox is routed in order, batch after batch, so every event is stored once the last event
    of each mailbox is: only those few ids are polled (by primary key), which keeps the database free for
    the router. The total is then checked once.
    """
    last = {e.mailbox_id: stored_id(e, n, contacts) for n, e in enumerate(events)}
    waiting = set(last.values())
    collection = mongo[DATABASE]["conversation_messages"]
    deadline = time.monotonic() + within
    while waiting:
        if time.monotonic() > deadline:
            raise SystemExit(f"the router did not store every message within {within} s")
        await asyncio.sleep(0.01)
        waiting -= {
            d["_id"] for d in await collection.find({"_id": {"$in": sorted(waiting)}}, {"_id": 1}).to_list()
        }
    done = datetime.now(UTC)
    stored = await collection.count_documents({})
    if stored != len(events):
        raise SystemExit(f"the router stored {stored} messages for {len(events)} events")
    return done


def stored_id(event: MessageIngested, n: int, contacts: int) -> str:
    """The id the router stores message `n` under (its contact's conversation in loc_a, D2)."""
    conversation = conversation_id_for("loc_a", f"con{n * 7919 % contacts}")
    key = message_key(event.internet_message_id, event.mailbox_id, event.provider_message_id)
    return message_id_for(conversation, key)


async def live_latencies(
    broker: KafkaBroker, mongo: AsyncMongoClient[dict[str, Any]], topic: str, args: argparse.Namespace
) -> list[float]:
    """Publish at `args.rate` for ten seconds; milliseconds from publishing each event to seeing it stored.

    Stored messages are looked for by their deterministic ids every 5 ms, so each figure is late by at most
    that (plus one primary-key lookup).
    """
    collection = mongo[DATABASE]["conversation_messages"]
    published: dict[str, float] = {}
    seen: dict[str, float] = {}
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set() or len(seen) < len(published):
            waiting = sorted(set(published) - set(seen))
            if waiting:
                found = await collection.find({"_id": {"$in": waiting}}, {"_id": 1}).to_list()
                now = time.perf_counter()
                for doc in found:
                    seen.setdefault(doc["_id"], now)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    for n in range(args.messages, args.messages + args.rate * 10):
        event = message(n, args.contacts, args.mailboxes, datetime.now(UTC))
        published[stored_id(event, n, args.contacts)] = time.perf_counter()
        await publish(broker, [event], topic)
        await asyncio.sleep(1 / args.rate)
    done.set()
    try:
        await asyncio.wait_for(watcher, timeout=60)
    except TimeoutError:
        raise SystemExit(
            f"only {len(seen)} of {len(published)} live messages were stored within 60 s"
        ) from None
    return sorted((seen[i] - published[i]) * 1000 for i in published)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run(args: argparse.Namespace, stack: Stack) -> None:
    bootstrap = stack.kafka_bootstrap_servers
    topic = f"{PREFIX}{MESSAGES_INGESTED}"
    await ensure_topics(bootstrap, contract_topic_names(PREFIX), partitions=3, replication=1)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongodb_uri, tz_aware=True)
    broker = KafkaBroker(bootstrap)
    await broker.start()
    try:
        began = time.perf_counter()
        await seed(mongo, args.contacts, args.mailboxes)
        contract = contract_for(CONNECTIONS_CHANGED)
        for user in range(args.mailboxes):
            connected = ConnectionChanged(
                occurred_at=T0,
                connection_id=f"conn_{user}",
                subaccount_id="loc_a",
                user_id=f"usr_{user}",
                provider="gmail",
                mailbox_id=mailbox_of(user),
                email_address=f"user{user}@acme.example",
                status="active",
                change="connected",
                connected_at=T0,
            )
            await broker.publish(
                contract.serialize(connected), topic=f"{PREFIX}{contract.topic}", key=f"conn_{user}".encode()
            )
        now = datetime.now(UTC)
        events = [message(n, args.contacts, args.mailboxes, now) for n in range(args.messages)]
        await publish(broker, events, topic)
        print(
            f"seeded {args.contacts} contacts and {args.messages} events"
            f" in {time.perf_counter() - began:.1f} s"
        )

        ratios = []
        router: subprocess.Popen[bytes] | None = None
        try:
            for round_ in range(args.rounds):
                if router is not None:
                    stop(router)
                raw = await baseline(bootstrap, topic, mongo, args.messages, round_)
                for collection in ("conversation_messages", "thread_links", "thread_claims"):
                    await mongo[DATABASE][collection].drop()
                started = datetime.now(UTC)
                router = start_router(stack, Path(args.router_log), round_)
                done = await wait_stored(mongo, events, args.contacts, within=max(120.0, args.messages / 2))
                first = await first_recorded(mongo)
                routed = args.messages / (done - first).total_seconds()
                ratios.append(routed / raw)
                print(
                    f"round {round_ + 1}: baseline (consume + bulk upsert, no logic) {raw:.0f} msg/s, "
                    f"router (routed, stored once, announced, committed per batch) {routed:.0f} msg/s, "
                    f"ratio {routed / raw:.2f}; router start to first batch "
                    f"{(first - started).total_seconds():.1f} s"
                )
            median = statistics.median(ratios)
            print(f"ratio router / baseline, median of {args.rounds} rounds: {median:.2f} (target >= 0.70)")

            assert router is not None  # noqa: S101 - at least one round ran
            latencies = await live_latencies(broker, mongo, topic, args)
            p50 = statistics.median(latencies)
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
            print(f"event-to-stored latency at {args.rate}/s: p50 {p50:.0f} ms, p99 {p99:.0f} ms")
            print(f"router peak RSS with {args.contacts} contacts: {peak_rss_mib(router.pid):.0f} MiB")
        finally:
            if router is not None:
                stop(router)
    finally:
        await broker.stop()
        await mongo.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=50)
    parser.add_argument("--mailboxes", type=int, default=60)
    parser.add_argument(
        "--rounds", type=int, default=3, help="turns of baseline and router (the median counts)"
    )
    parser.add_argument(
        "--router-log",
        default=str(Path(tempfile.gettempdir()) / "router-bench.log"),
        help="the router's log file",
    )
    args = parser.parse_args()
    with Stack() as stack:
        stack.start()
        asyncio.run(run(args, stack))


if __name__ == "__main__":
    main()
