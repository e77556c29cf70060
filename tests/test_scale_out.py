"""Scale-out on the real broker: two processes of a service in one consumer group split the partitions of its
input topic, keep each mailbox's order, and lose nothing when one of them stops in the middle of the load.

Per service, the Kafka-consumed work that scales out:

- router: `MessageIngested` (key: mailbox) in, each message filed once in `conversation_messages` and
  announced as `ConversationMessageRecorded` (key: subaccount and contact) out;
- ingest-gmail and ingest-outlook: `MailboxChanged` hints (key: mailbox) in, the mailbox's new messages out
  as `MessageIngested` (key: mailbox), each recorded once in the worker's published set, from the provider
  sandbox.

Each test creates every topic with six partitions and chooses mailboxes whose keys land two on each
partition, so both processes get work as soon as both are in the group. The load is published in rounds
(one message per mailbox per round), so every partition has a backlog when one process is stopped (SIGTERM,
and for the router also SIGKILL) with part of the load still unpublished. What is checked is what a
consumer of the topics and a reader of the database see: every input processed, stored exactly once, output
duplicates only as the same `event_id`, and per key the output in input order.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import murmur2
from prometheus_client.parser import text_string_to_metric_families
from pymongo import AsyncMongoClient

from mailsync.common.contracts import (
    CONNECTIONS_CHANGED,
    CONVERSATION_MESSAGES_RECORDED,
    CRM_DIRECTORY,
    MAILBOX_CHANGED,
    MESSAGES_INGESTED,
    Address,
    ConnectionChanged,
    ContactUpserted,
    MailboxChanged,
    MessageBody,
    MessageIngested,
    SubaccountUserUpserted,
    contract_for,
)
from mailsync.common.topics_admin import contract_topic_names, ensure_topics
from mailsync.devstack.ports import free_port
from mailsync.gmail_sandbox import DEFAULT_CLIENT, GmailSandboxAdmin, MailboxSpec, SystemClock
from mailsync.gmail_sandbox import SandboxConfig as GmailSandboxConfig
from mailsync.gmail_sandbox import create_app as create_gmail_sandbox
from mailsync.graph_sandbox import GraphSandboxAdmin, SandboxServer
from mailsync.graph_sandbox import SandboxConfig as GraphSandboxConfig
from mailsync.ingest_outlook.domain.connections import mailbox_id_for

pytestmark = [pytest.mark.kafka, pytest.mark.mongodb]

PARTITIONS = 6
MAILBOXES_PER_PARTITION = 2
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
CONTACT = "dora@contact.example"
TOKEN_KEY = base64.b64encode(b"s" * 32).decode()
INTERNAL_TOKEN = "internal-test-token"


def partition_of(key: str) -> int:
    """The partition Kafka's default partitioner gives `key` on a topic of `PARTITIONS` partitions."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS


def spread(candidates: Iterable[str], key: Callable[[str], str] = lambda c: c) -> list[str]:
    """The first candidates whose keys fill every partition with `MAILBOXES_PER_PARTITION` mailboxes."""
    chosen: dict[int, list[str]] = defaultdict(list)
    for candidate in candidates:
        bucket = chosen[partition_of(key(candidate))]
        if len(bucket) < MAILBOXES_PER_PARTITION:
            bucket.append(candidate)
        if sum(len(b) for b in chosen.values()) == PARTITIONS * MAILBOXES_PER_PARTITION:
            return [c for p in sorted(chosen) for c in chosen[p]]
    raise AssertionError("not enough candidates to fill every partition")


async def eventually(condition: Callable[[], bool], within: float, state: Callable[[], object]) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not reached within {within} s: {state()}")
        await asyncio.sleep(0.1)


async def reach(done: Callable[[], int], target: int, within: float) -> None:
    await eventually(lambda: done() >= target, within=within, state=lambda: f"{done()} of {target} done")


@dataclass
class Tap:
    """Reads topics from their first record, keeping each record's key and parsed value in arrival order."""

    bootstrap: str
    topics: list[str]
    prefix: str
    records: list[tuple[str, Any]] = field(default_factory=list)
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            *(self.prefix + t for t in self.topics),
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            metadata_max_age_ms=1000,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._read(self._consumer))

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        async for record in consumer:
            assert record.key is not None
            assert record.value is not None
            contract = contract_for(record.topic.removeprefix(self.prefix))
            self.records.append((record.key.decode(), contract.parse(record.value)))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    def distinct(self, field_name: str) -> set[str]:
        return {getattr(event, field_name) for _, event in self.records}


@dataclass
class Instance:
    """One service process, started as deployed: `python -m mailsync.<service>` configured by environment."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self, how: signal.Signals) -> None:
        if self.process.poll() is None:
            self.process.send_signal(how)
        self.process.wait(timeout=30)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    async def published(self, http: aiohttp.ClientSession, topic: str) -> float:
        """Records this process has published to `topic`, from its `/metrics` (the largest counter of
        published records labelled with the topic)."""
        async with http.get(f"{self.url}/metrics") as response:
            text = await response.text()
        totals: dict[str, float] = defaultdict(float)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                counts_records = "published" in sample.name and sample.name.endswith("_total")
                if counts_records and topic in sample.labels.values():
                    totals[sample.name] += sample.value
        return max(totals.values(), default=0.0)


def spawn(module: str, name: str, env: dict[str, str], port: int, logs: Path) -> Instance:
    log = logs / f"{name}.log"
    variables = {k: v for k, v in os.environ.items() if not k.startswith("MAILSYNC_")}
    with log.open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 - the service under test
            [sys.executable, "-m", module],
            env={**variables, **env, "MAILSYNC_HTTP_PORT": str(port), "MAILSYNC_LOG_FORMAT": "text"},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    return Instance(name, process, f"http://127.0.0.1:{port}", log)


@contextlib.asynccontextmanager
async def two_instances(
    module: str, env: dict[str, str], ports: tuple[int, int], logs: Path
) -> AsyncIterator[tuple[Instance, Instance]]:
    """Two processes of one service (one consumer group: same prefix and service name), both ready."""
    instances = (spawn(module, "a", env, ports[0], logs), spawn(module, "b", env, ports[1], logs))
    try:
        async with aiohttp.ClientSession() as http:
            for instance in instances:
                await wait_ready(http, instance)
        yield instances
    finally:
        for instance in instances:
            if instance.process.poll() is None:
                instance.process.kill()
            instance.process.wait(timeout=30)


async def wait_ready(http: aiohttp.ClientSession, instance: Instance) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if instance.process.poll() is not None:
            pytest.fail(f"instance {instance.name} exited: {instance.log_tail()}")
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(f"{instance.url}/readyz") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.2)
    pytest.fail(f"instance {instance.name} not ready: {instance.log_tail()}")


class Publisher:
    """Publishes contract events keyed as their contract says (the producers' side of the topics)."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
        self._prefix = prefix

    async def __aenter__(self) -> Publisher:
        await self._producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._producer.stop()

    async def publish(self, topic: str, events: Iterable[Any]) -> None:
        contract = contract_for(topic)
        sent = [
            await self._producer.send(
                self._prefix + topic, contract.serialize(e), key=contract.key_of(e).encode()
            )
            for e in events
        ]
        await asyncio.gather(*sent)


async def run_load(
    *,
    publish_round: Callable[[int], Awaitable[None]],
    done: Callable[[], int],
    per_round: int,
    rounds: int,
    instances: tuple[Instance, Instance],
    topic: str,
    how: signal.Signals,
) -> tuple[int, dict[str, float]]:
    """Drive the load; returns how many rounds were published and what each instance had published to
    `topic` before the stop.

    Warm-up rounds, each awaited, until both instances have published output: both hold partitions. Then
    half of `rounds` at once, the first instance stopped (`how`) while that backlog is being worked, and the
    other half.
    """
    first, second = instances
    published = 0
    counts: dict[str, float] = {}
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 45
        while not (counts and all(counts.values())):
            if time.monotonic() > deadline:
                pytest.fail(f"the instances did not both get work: {counts}")
            await publish_round(published)
            published += 1
            await reach(done, published * per_round, within=45)
            counts = {i.name: await i.published(http, topic) for i in instances}
    for _ in range(rounds // 2):
        await publish_round(published)
        published += 1
    pending = published * per_round - done()
    await asyncio.to_thread(first.stop, how)
    assert pending > 0, "the backlog was done before the stop: nothing was tested"
    for _ in range(rounds - rounds // 2):
        await publish_round(published)
        published += 1
    assert second.process.poll() is None, second.log_tail()
    return published, counts


def assert_order_and_event_ids(
    records: list[tuple[str, Any]], expected: dict[str, list[str]], key_of_mailbox: Callable[[str], str]
) -> None:
    """Per output key, the first occurrence of each message is in input order; a repeat has the same id."""
    by_key: dict[str, list[str]] = defaultdict(list)
    event_ids: dict[str, set[str]] = defaultdict(set)
    for key, event in records:
        event_ids[event.provider_message_id].add(str(event.event_id))
        if event.provider_message_id not in by_key[key]:
            by_key[key].append(event.provider_message_id)
    for mailbox, ids in expected.items():
        assert by_key[key_of_mailbox(mailbox)] == ids, f"order of {mailbox}"
    assert {m: ids for m, ids in event_ids.items() if len(ids) != 1} == {}


# --- router ---------------------------------------------------------------------------------------------


def router_events(mailboxes: list[str]) -> list[Any]:
    """One subaccount; per mailbox a user, its connection and one contact assigned to that user (G3)."""
    events: list[tuple[str, Any]] = []
    for i, mailbox in enumerate(mailboxes):
        address = mailbox.removeprefix("gmail:")
        events.append(
            (
                CRM_DIRECTORY,
                SubaccountUserUpserted(
                    occurred_at=T0,
                    subaccount_id="loc_a",
                    user_id=f"usr_{i}",
                    email_addresses=(address,),
                    bcc_address=None,
                    revision=1,
                ),
            )
        )
        events.append(
            (
                CRM_DIRECTORY,
                ContactUpserted(
                    occurred_at=T0,
                    subaccount_id="loc_a",
                    contact_id=f"con_{i}",
                    email_addresses=(f"contact{i}@clients.example",),
                    assigned_user_id=f"usr_{i}",
                    created_at=T0,
                    revision=1,
                ),
            )
        )
        events.append(
            (
                CONNECTIONS_CHANGED,
                ConnectionChanged(
                    occurred_at=T0,
                    connection_id=f"conn_{i}",
                    subaccount_id="loc_a",
                    user_id=f"usr_{i}",
                    provider="gmail",
                    mailbox_id=mailbox,
                    email_address=address,
                    status="active",
                    change="connected",
                    connected_at=T0,
                ),
            )
        )
    return events


def ingested(i: int, mailbox: str, n: int) -> MessageIngested:
    at = T0 + timedelta(hours=1, seconds=n)
    address = mailbox.removeprefix("gmail:")
    return MessageIngested(
        occurred_at=at,
        provider="gmail",
        mailbox_id=mailbox,
        mailbox_address=address,
        connection_ids=(f"conn_{i}",),
        provider_message_id=f"m{i:02d}-{n:04d}",
        provider_thread_id=f"t{i:02d}-{n:04d}",
        internet_message_id=f"<{i}.{n}@clients.example>",
        subject=f"Order {n}",
        from_=Address(email=f"contact{i}@clients.example"),
        to=(Address(email=address),),
        direction="inbound",
        sent_by_owner=False,
        sent_at=at,
        received_at=at,
        body=MessageBody(text=f"about order {n}"),
    )


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_two_routers_split_partitions_keep_mailbox_order_and_lose_nothing_when_one_stops(
    how: signal.Signals,
    kafka_bootstrap_servers: str,
    mongodb_uri: str,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    """G3 filings, D2 exactly once in the database, per-contact order of `ConversationMessageRecorded`."""
    prefix = unique_name("t") + "."
    database_name = unique_name("router")
    await ensure_topics(
        kafka_bootstrap_servers, contract_topic_names(prefix), partitions=PARTITIONS, replication=1
    )
    mailboxes = spread(f"gmail:user{j}@acme.example" for j in range(1000))
    env = {
        "MAILSYNC_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "MAILSYNC_MONGODB_URI": mongodb_uri,
        "MAILSYNC_MONGODB_DATABASE": database_name,
        "MAILSYNC_KAFKA_TOPIC_PREFIX": prefix,
    }
    tap = Tap(kafka_bootstrap_servers, [CONVERSATION_MESSAGES_RECORDED], prefix)
    await tap.start()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri, tz_aware=True)

    def done() -> int:
        return len(tap.distinct("provider_message_id"))

    try:
        async with (
            Publisher(kafka_bootstrap_servers, prefix) as publisher,
            two_instances("mailsync.router", env, (free_port(), free_port()), tmp_path) as instances,
        ):
            for topic, event in router_events(mailboxes):
                await publisher.publish(topic, [event])

            async def publish_round(n: int) -> None:
                await publisher.publish(
                    MESSAGES_INGESTED, [ingested(i, m, n) for i, m in enumerate(mailboxes)]
                )

            rounds, counts = await run_load(
                publish_round=publish_round,
                done=done,
                per_round=len(mailboxes),
                rounds=40,
                instances=instances,
                topic=prefix + CONVERSATION_MESSAGES_RECORDED,
                how=how,
            )
            total = rounds * len(mailboxes)
            await eventually(
                lambda: done() == total, within=60, state=lambda: f"{done()} of {total} recorded; {counts}"
            )
            await asyncio.sleep(1)  # a late duplicate would arrive now
            stored = mongo[database_name]["conversation_messages"]
            documents = [d async for d in stored.find({}, {"provider_message_id": 1})]
    finally:
        await tap.stop()
        await mongo.close()

    expected = {
        m: [ingested(i, m, n).provider_message_id for n in range(rounds)] for i, m in enumerate(mailboxes)
    }
    copies = Counter(d["provider_message_id"] for d in documents)
    assert set(copies) == {i for ids in expected.values() for i in ids}
    assert {i: c for i, c in copies.items() if c != 1} == {}
    key_of_mailbox = {m: f"loc_a:con_{i}" for i, m in enumerate(mailboxes)}
    assert_order_and_event_ids(tap.records, expected, key_of_mailbox.__getitem__)


# --- ingest-gmail ---------------------------------------------------------------------------------------


async def connect_gmail(http: aiohttp.ClientSession, service: str, index: int, address: str) -> None:
    """C2: the user consents in the sandbox, the callback on `service` stores the connection."""
    body = {"subaccount_id": "loc_a", "user_id": f"usr_{index}", "login_hint": address}
    async with http.post(f"{service}/v1/connections/authorize", json=body) as response:
        assert response.status == 200, await response.text()
        authorization_url = (await response.json())["authorization_url"]
    async with http.get(authorization_url, allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        callback = response.headers["Location"]
    async with http.get(callback) as response:
        assert response.status == 201, await response.text()


async def test_two_gmail_workers_split_mailboxes_keep_history_order_and_lose_nothing_on_sigterm(
    kafka_bootstrap_servers: str, mongodb_uri: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    """D2 across a scale-in: every delivered message published and recorded once, each mailbox's in order."""
    prefix = unique_name("t") + "."
    database_name = unique_name("gmail")
    await ensure_topics(
        kafka_bootstrap_servers, contract_topic_names(prefix), partitions=PARTITIONS, replication=1
    )
    addresses = spread((f"user{j}@example.com" for j in range(1000)), key=lambda a: f"gmail:{a}")
    sandbox = TestServer(
        create_gmail_sandbox(
            GmailSandboxConfig(clock=SystemClock(), mailboxes=tuple(MailboxSpec(a) for a in addresses))
        ),
        host="127.0.0.1",
        port=0,
    )
    await sandbox.start_server()
    sandbox_url = str(sandbox.make_url("")).rstrip("/")
    ports = (free_port(), free_port())
    env = {
        "MAILSYNC_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "MAILSYNC_MONGODB_URI": mongodb_uri,
        "MAILSYNC_MONGODB_DATABASE": database_name,
        "MAILSYNC_KAFKA_TOPIC_PREFIX": prefix,
        "MAILSYNC_GOOGLE_CLIENT_ID": DEFAULT_CLIENT.client_id,
        "MAILSYNC_GOOGLE_CLIENT_SECRET": DEFAULT_CLIENT.client_secret,
        "MAILSYNC_GOOGLE_AUTH_URL": f"{sandbox_url}/o/oauth2/v2/auth",
        "MAILSYNC_GOOGLE_TOKEN_URL": f"{sandbox_url}/token",
        "MAILSYNC_GMAIL_API_URL": sandbox_url,
        "MAILSYNC_OAUTH_REDIRECT_URI": f"http://127.0.0.1:{ports[0]}/v1/oauth/callback",
        "MAILSYNC_TOKEN_KEYS": json.dumps({"k1": TOKEN_KEY}),
        "MAILSYNC_INTERNAL_API_TOKEN": INTERNAL_TOKEN,
        "MAILSYNC_NOTIFICATION_MODE": "none",
        "MAILSYNC_PUBSUB_WATCH_TOPIC": "projects/mailsync-local/topics/gmail-watch",
        "MAILSYNC_MAINTENANCE_INTERVAL_SECONDS": "3600",
    }
    admin = GmailSandboxAdmin(sandbox_url)
    tap = Tap(kafka_bootstrap_servers, [MESSAGES_INGESTED], prefix)
    await tap.start()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri, tz_aware=True)
    delivered: dict[str, list[str]] = {f"gmail:{a}": [] for a in addresses}

    def done() -> int:
        return len(tap.distinct("provider_message_id"))

    try:
        async with (
            Publisher(kafka_bootstrap_servers, prefix) as publisher,
            two_instances("mailsync.ingest_gmail", env, ports, tmp_path) as instances,
            aiohttp.ClientSession() as http,
        ):
            for index, address in enumerate(addresses):
                await connect_gmail(http, instances[0].url, index, address)
            # Fetches take a while, as Gmail's do, so the partitions have a backlog when a worker stops.
            await admin.add_fault("slow", delay_seconds=0.2, path_pattern="/messages/")

            async def publish_round(n: int) -> None:
                hints = []
                for address in addresses:
                    message = await admin.deliver_inbound(
                        address, sender=CONTACT, subject=f"{address} {n}", text=f"message {n}"
                    )
                    delivered[f"gmail:{address}"].append(message["id"])
                    now = datetime.now(UTC)
                    hints.append(
                        MailboxChanged(
                            occurred_at=now,
                            provider="gmail",
                            mailbox_id=f"gmail:{address}",
                            email_address=address,
                            source="push",
                            history_id=int(message["historyId"]),
                            received_at=now,
                        )
                    )
                await publisher.publish(MAILBOX_CHANGED, hints)

            rounds, counts = await run_load(
                publish_round=publish_round,
                done=done,
                per_round=len(addresses),
                rounds=20,
                instances=instances,
                topic=prefix + MESSAGES_INGESTED,
                how=signal.SIGTERM,
            )
            total = rounds * len(addresses)
            await eventually(
                lambda: done() == total, within=60, state=lambda: f"{done()} of {total} published; {counts}"
            )
            await asyncio.sleep(1)  # a late duplicate would arrive now
            published_set = mongo[database_name]["gmail_published_messages"]
            recorded = [str(d["_id"]) async for d in published_set.find({}, {"_id": 1})]
    finally:
        await tap.stop()
        await mongo.close()
        await admin.close()
        await sandbox.close()

    expected = {f"{m}:{i}" for m, ids in delivered.items() for i in ids}
    assert len(recorded) == len(expected)
    assert set(recorded) == expected
    assert_order_and_event_ids(tap.records, delivered, lambda mailbox: mailbox)


# --- ingest-outlook -------------------------------------------------------------------------------------


class _FormFields(HTMLParser):
    """The identity sandbox's form_post page: its action and hidden fields."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = values["action"]
        elif tag == "input":
            self.fields[values["name"]] = values["value"]


async def connect_outlook(
    http: aiohttp.ClientSession, service: str, index: int, address: str, tls: ssl.SSLContext
) -> None:
    """C2: the user signs in at the identity sandbox; its page posts the code to the callback on `service`."""
    body = {"subaccount_id": "loc_a", "user_id": f"usr_{index}", "login_hint": address}
    async with http.post(f"{service}/v1/connections/authorize", json=body) as response:
        assert response.status == 200, await response.text()
        authorization_url = (await response.json())["authorization_url"]
    async with http.get(authorization_url, allow_redirects=False, ssl=tls) as response:
        assert response.status == 200, await response.text()
        form = _FormFields()
        form.feed(await response.text())
    async with http.post(form.action, data=form.fields) as response:
        assert response.status == 201, await response.text()


async def test_two_outlook_workers_split_mailboxes_keep_delta_order_and_lose_nothing_on_sigterm(
    kafka_bootstrap_servers: str, mongodb_uri: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    """D2 across a scale-in: every delivered message published and recorded once, each mailbox's in order.

    Within one delta page the events are published together, unordered (docs/ingest-outlook.md), so the
    workers read one message per page here and the mailbox's whole order is observable.
    """
    prefix = unique_name("t") + "."
    await ensure_topics(
        kafka_bootstrap_servers, contract_topic_names(prefix), partitions=PARTITIONS, replication=1
    )
    ports = (free_port(), free_port())
    async with SandboxServer(GraphSandboxConfig(), http_port=0) as sandbox:
        admin = GraphSandboxAdmin(sandbox.base_url, ca_file=str(sandbox.ca_file))
        try:
            created = [await admin.create_mailbox(f"user{j}@sandbox.onmicrosoft.com") for j in range(60)]
            ids = {mailbox_id_for(m["id"]): m["address"] for m in created}
            address_of = {m: ids[m] for m in spread(ids)}
            env = {
                "MAILSYNC_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
                "MAILSYNC_MONGODB_URI": mongodb_uri,
                "MAILSYNC_MONGODB_DATABASE": unique_name("outlook"),
                "MAILSYNC_KAFKA_TOPIC_PREFIX": prefix,
                "MAILSYNC_CLIENT_ID": sandbox.config.default_app.client_id,
                "MAILSYNC_CLIENT_SECRET": sandbox.config.default_app.client_secret,
                "MAILSYNC_AUTHORITY": sandbox.authority,
                "MAILSYNC_GRAPH_URL": sandbox.base_url,
                "MAILSYNC_CA_FILE": str(sandbox.ca_file),
                "MAILSYNC_OAUTH_REDIRECT_URI": f"http://127.0.0.1:{ports[0]}/v1/oauth/callback",
                # Graph notifies the instance that keeps running.
                "MAILSYNC_PUBLIC_BASE_URL": f"http://127.0.0.1:{ports[1]}/",
                "MAILSYNC_TOKEN_KEYS": json.dumps({"k1": TOKEN_KEY}),
                "MAILSYNC_INTERNAL_API_TOKEN": INTERNAL_TOKEN,
                "MAILSYNC_MAINTENANCE_INTERVAL_SECONDS": "3600",
                "MAILSYNC_DELTA_PAGE_SIZE": "1",
            }
            await run_outlook_load(
                bootstrap=kafka_bootstrap_servers,
                mongodb_uri=mongodb_uri,
                env=env,
                ports=ports,
                address_of=address_of,
                admin=admin,
                ca_file=str(sandbox.ca_file),
                logs=tmp_path,
            )
        finally:
            await admin.close()


async def run_outlook_load(
    *,
    bootstrap: str,
    mongodb_uri: str,
    env: dict[str, str],
    ports: tuple[int, int],
    address_of: dict[str, str],
    admin: GraphSandboxAdmin,
    ca_file: str,
    logs: Path,
) -> None:
    prefix = env["MAILSYNC_KAFKA_TOPIC_PREFIX"]
    tap = Tap(bootstrap, [MESSAGES_INGESTED], prefix)
    await tap.start()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri, tz_aware=True)
    delivered: dict[str, list[str]] = {m: [] for m in address_of}
    tls = ssl.create_default_context(cafile=ca_file)

    def done() -> int:
        return len(tap.distinct("provider_message_id"))

    try:
        async with (
            Publisher(bootstrap, prefix) as publisher,
            two_instances("mailsync.ingest_outlook", env, ports, logs) as instances,
            aiohttp.ClientSession() as http,
        ):
            for index, address in enumerate(address_of.values()):
                await connect_outlook(http, instances[0].url, index, address, tls)
            await asyncio.sleep(1.1)  # Graph times have whole seconds: mail after the connection (C7)

            async def publish_round(n: int) -> None:
                hints = []
                for mailbox_id, address in address_of.items():
                    message = await admin.deliver_inbound(
                        address, sender=CONTACT, subject=f"{address} {n}", body=f"message {n}"
                    )
                    delivered[mailbox_id].append(message["id"])
                    now = datetime.now(UTC)
                    hints.append(
                        MailboxChanged(
                            occurred_at=now,
                            provider="outlook",
                            mailbox_id=mailbox_id,
                            email_address=address,
                            source="push",
                            change_type="created",
                            received_at=now,
                        )
                    )
                await publisher.publish(MAILBOX_CHANGED, hints)

            rounds, counts = await run_load(
                publish_round=publish_round,
                done=done,
                per_round=len(address_of),
                rounds=16,
                instances=instances,
                topic=prefix + MESSAGES_INGESTED,
                how=signal.SIGTERM,
            )
            total = rounds * len(address_of)
            await eventually(
                lambda: done() == total, within=60, state=lambda: f"{done()} of {total} published; {counts}"
            )
            await asyncio.sleep(1)  # a late duplicate would arrive now
            published_set = mongo[env["MAILSYNC_MONGODB_DATABASE"]]["outlook_published_messages"]
            recorded = [str(d["_id"]) async for d in published_set.find({}, {"_id": 1})]
    finally:
        await tap.stop()
        await mongo.close()

    expected = {f"{m}|{i}" for m, ids in delivered.items() for i in ids}
    assert len(recorded) == len(expected)
    assert set(recorded) == expected
    assert_order_and_event_ids(tap.records, delivered, lambda mailbox: mailbox)
