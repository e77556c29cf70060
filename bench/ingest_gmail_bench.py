"""Benchmark of ingest-gmail against the Gmail sandbox (zero latency), real Kafka and MongoDB-wire servers.

Measures, in one run:

- baseline: Kafka produce-to-consume latency (p50/p99) of bare records on the same broker, and the time to
  round-trip as many records as there are mailboxes;
- hint-to-event latency (p50/p99): from the service receiving a notification (the hint's ``received_at``) to
  the ``MessageIngested`` event read back from Kafka, one message per mailbox over N mailboxes;
- N mailboxes each receiving one message: time from the first delivery until all N events are on Kafka;
- one mailbox's catch-up rate (a backlog fetched after a single hint) as a fraction of Gmail's per-user quota
  (15,000 units/minute = 250 units/s), and the number of quota errors met (target: >= 90 %, none).

Figures are printed with their ratio to the baseline. The sandbox, the service and this driver share one
event loop and the machine's cores, so absolute figures are pessimistic.

    uv run python bench/ingest_gmail_bench.py [--mailboxes 1000] [--backlog 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import statistics
import time
import uuid
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from mailsync.common.contracts import (
    CONNECTIONS_CHANGED,
    MAILBOX_CHANGED,
    MESSAGES_INGESTED,
    MailboxChanged,
    MessageIngested,
    contract_for,
)
from mailsync.common.service import RUNTIME
from mailsync.devstack.ports import free_port
from mailsync.devstack.stack import Stack
from mailsync.gmail_sandbox import DEFAULT_CLIENT, SANDBOX_KEY, GmailSandboxAdmin, SandboxConfig, SystemClock
from mailsync.gmail_sandbox import create_app as create_sandbox_app
from mailsync.ingest_gmail.app import create_app
from mailsync.ingest_gmail.settings import Settings

WATCH_TOPIC = "projects/mailsync-local/topics/gmail-watch"
AUDIENCE = "https://ingest-gmail.bench/v1/pubsub/push"
QUOTA_UNITS_PER_SECOND = 15_000 / 60
LATENCY_SAMPLES = 100


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Tap:
    """Collects the service's events with the wall-clock time each was read."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.prefix = prefix
        self.messages: list[tuple[float, MessageIngested]] = []
        self.hints: list[MailboxChanged] = []
        self._consumer = AIOKafkaConsumer(
            prefix + MESSAGES_INGESTED,
            prefix + MAILBOX_CHANGED,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            metadata_max_age_ms=1000,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for record in self._consumer:
            topic = record.topic.removeprefix(self.prefix)
            event = contract_for(topic).parse(record.value)
            if topic == MESSAGES_INGESTED:
                self.messages.append((time.time(), event))
            else:
                self.hints.append(event)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()


async def wait_until(condition: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not met in time")
        await asyncio.sleep(0.05)


async def create_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, num_partitions=3, replication_factor=1) for n in names])
    finally:
        await admin.close()


async def kafka_baseline(bootstrap: str, count: int) -> tuple[list[float], float]:
    """Produce-to-consume latency of ``count`` bare records, and their total round-trip time."""
    topic = f"bench-baseline-{uuid.uuid4().hex[:8]}"
    await create_topics(bootstrap, [topic])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await producer.start()
    await consumer.start()
    latencies: list[float] = []
    sent: dict[bytes, float] = {}

    async def consume() -> None:
        while len(latencies) < count:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.monotonic()
            latencies.extend(now - sent[r.key] for records in batch.values() for r in records)

    try:
        while not consumer.assignment():  # measure delivery, not the consumer's start-up
            await consumer.getmany(timeout_ms=100)
        started = time.monotonic()
        reading = asyncio.create_task(consume())
        for i in range(count):
            key = str(i).encode()
            sent[key] = time.monotonic()
            await producer.send_and_wait(topic, b"x" * 200, key=key)
        await reading
        total = time.monotonic() - started
    finally:
        await producer.stop()
        await consumer.stop()
    return latencies, total


async def run(mailboxes: int, backlog: int) -> None:  # noqa: PLR0915 - one linear scenario
    stack = Stack()
    stack.start(["kafka", "mongodb"])
    try:
        bootstrap, mongodb_uri = stack.kafka_bootstrap_servers, stack.mongodb_uri
        baseline_latencies, _ = await kafka_baseline(bootstrap, 200)
        _, baseline_total = await kafka_baseline(bootstrap, mailboxes)

        sandbox_app = create_sandbox_app(SandboxConfig(clock=SystemClock()))
        sandbox_server = TestServer(sandbox_app, host="127.0.0.1", port=0)
        await sandbox_server.start_server()
        sandbox_url = str(sandbox_server.make_url("")).rstrip("/")
        sandbox = sandbox_app[SANDBOX_KEY]
        admin = GmailSandboxAdmin(sandbox_url)

        port = free_port()
        service_url = f"http://127.0.0.1:{port}"
        prefix = f"bench-{uuid.uuid4().hex[:8]}."
        settings = Settings(
            kafka_bootstrap_servers=bootstrap,
            kafka_topic_prefix=prefix,
            mongodb_uri=mongodb_uri,  # type: ignore[arg-type]  # pydantic wraps the str in SecretStr
            mongodb_database=f"bench_{uuid.uuid4().hex[:8]}",
            http_port=port,
            google_client_id=DEFAULT_CLIENT.client_id,
            google_client_secret=DEFAULT_CLIENT.client_secret,  # type: ignore[arg-type]
            google_auth_url=f"{sandbox_url}/o/oauth2/v2/auth",
            google_token_url=f"{sandbox_url}/token",
            gmail_api_url=sandbox_url,
            oauth_redirect_uri=f"{service_url}/v1/oauth/callback",
            token_keys={"k1": base64.b64encode(b"b" * 32).decode()},  # type: ignore[dict-item]
            internal_api_token="bench",  # type: ignore[arg-type]  # noqa: S106 - a throwaway local token
            pubsub_watch_topic=WATCH_TOPIC,
            pubsub_push_audience=AUDIENCE,
            pubsub_certs_url=f"{sandbox_url}/oauth2/v1/certs",
            maintenance_interval_seconds=3600.0,
            log_level="WARNING",
        )
        await create_topics(
            bootstrap, [prefix + t for t in (MAILBOX_CHANGED, MESSAGES_INGESTED, CONNECTIONS_CHANGED)]
        )
        tap = Tap(bootstrap, prefix)
        await tap.start()
        app = create_app(settings)
        server = TestServer(app, host="127.0.0.1", port=port)
        await server.start_server()
        await admin.add_push_subscription(
            WATCH_TOPIC, f"{service_url}/v1/pubsub/push", audience=AUDIENCE, min_backoff_seconds=0.2
        )
        addresses = [f"user{i:05d}@bench.example" for i in range(mailboxes)]
        backlog_address = "backlog@bench.example"
        async with aiohttp.ClientSession() as http:
            semaphore = asyncio.Semaphore(16)

            async def connect(address: str, index: int) -> None:
                async with semaphore:
                    await admin.create_mailbox(address)
                    async with http.post(
                        f"{service_url}/v1/connections/authorize",
                        json={"subaccount_id": "bench", "user_id": f"u{index}", "login_hint": address},
                    ) as response:
                        url = (await response.json())["authorization_url"]
                    async with http.get(url, allow_redirects=False) as response:
                        callback = response.headers["Location"]
                    async with http.get(callback) as response:
                        if response.status != 201:
                            raise RuntimeError(f"connect failed: {await response.text()}")

            setup_started = time.monotonic()
            await asyncio.gather(*(connect(a, i) for i, a in enumerate([*addresses, backlog_address])))
            setup = time.monotonic() - setup_started
            await asyncio.sleep(2)  # the watch notifications' hints drain
            tap.messages.clear()

            # hint-to-event latency, one message at a time (no queueing)
            latencies: list[float] = []
            for address in addresses[:LATENCY_SAMPLES]:
                seen = len(tap.messages)
                await admin.deliver_inbound(
                    address, sender="contact@outside.example", subject="one", text="x"
                )
                await wait_until(lambda seen=seen: len(tap.messages) > seen, within=60)
                read_at, event = tap.messages[-1]
                hint = next(
                    h for h in reversed(tap.hints) if h.mailbox_id == event.mailbox_id and h.source == "push"
                )
                latencies.append(read_at - hint.received_at.timestamp())
            tap.messages.clear()
            tap.hints.clear()

            # N mailboxes x 1 message, all at once
            started = time.time()
            await asyncio.gather(
                *(
                    admin.deliver_inbound(a, sender="contact@outside.example", subject="hi", text="x")
                    for a in addresses
                )
            )
            await wait_until(lambda: len(tap.messages) >= mailboxes, within=600)
            fan_in = max(t for t, _ in tap.messages) - started
            hint_at: dict[str, datetime] = {}
            for hint in tap.hints:
                if hint.source == "push":
                    hint_at[hint.mailbox_id] = max(
                        hint_at.get(hint.mailbox_id, hint.received_at), hint.received_at
                    )
            burst_latencies = [
                read_at - hint_at[event.mailbox_id].timestamp()
                for read_at, event in tap.messages
                if event.mailbox_id in hint_at
            ]

            # one mailbox's backlog after a single hint
            mailbox = sandbox.store.find(backlog_address)
            if mailbox is None:
                raise RuntimeError("the backlog mailbox is missing")
            sandbox.stop(mailbox)  # no notifications while the backlog builds
            for i in range(backlog):
                await admin.deliver_inbound(
                    backlog_address, sender="contact@outside.example", subject=f"b{i}", text="x"
                )
            tap.messages.clear()
            retries_before = _retries(app)
            token = await admin.sign_push_token(AUDIENCE)
            body = _envelope(backlog_address, 1 << 40)
            catch_up_started = time.monotonic()
            async with http.post(
                f"{service_url}/v1/pubsub/push", data=body, headers={"Authorization": f"Bearer {token}"}
            ) as response:
                if response.status != 204:
                    raise RuntimeError(f"push refused: {response.status}")
            await wait_until(lambda: len(tap.messages) >= backlog, within=900)
            catch_up = time.monotonic() - catch_up_started
            units = 2 + 5 * backlog
            quota_errors = _retries(app) - retries_before

        await tap.stop()
        await server.close()
        await admin.close()
        await sandbox_server.close()
    finally:
        stack.stop()

    base_p50, base_p99 = percentile(baseline_latencies, 0.5), percentile(baseline_latencies, 0.99)
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    burst_p50, burst_p99 = percentile(burst_latencies, 0.5), percentile(burst_latencies, 0.99)
    rate = units / catch_up
    print(f"setup: {mailboxes + 1} mailboxes connected through OAuth in {setup:.1f} s")
    print(f"baseline Kafka produce->consume: p50 {base_p50 * 1000:.1f} ms, p99 {base_p99 * 1000:.1f} ms")
    print(
        f"hint-to-event latency, {len(latencies)} messages one at a time: p50 {p50 * 1000:.1f} ms "
        f"({p50 / base_p50:.1f}x baseline), p99 {p99 * 1000:.1f} ms ({p99 / base_p99:.1f}x baseline), "
        f"mean {statistics.mean(latencies) * 1000:.1f} ms"
    )
    print(f"same under the burst below (queueing included): p50 {burst_p50:.2f} s, p99 {burst_p99:.2f} s")
    print(
        f"{mailboxes} mailboxes x 1 message: all events on Kafka after {fan_in:.2f} s "
        f"(baseline: {mailboxes} bare records round-tripped in {baseline_total:.2f} s; "
        f"ratio {fan_in / baseline_total:.1f}x)"
    )
    print(
        f"catch-up of {backlog} messages after one hint: {catch_up:.1f} s, {rate:.0f} units/s = "
        f"{rate / QUOTA_UNITS_PER_SECOND:.0%} of the per-user quota (target >= 90%); "
        f"transient retries (quota errors included): {quota_errors:.0f}"
    )


def _retries(app: Any) -> float:
    registry = app[RUNTIME].registry
    total = 0.0
    for metric in registry.collect():
        if metric.name == "mailsync_handler_retries":
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


def _envelope(address: str, history_id: int) -> bytes:
    data = base64.b64encode(json.dumps({"emailAddress": address, "historyId": history_id}).encode()).decode()
    return json.dumps({"message": {"data": data, "messageId": "1"}, "subscription": "bench"}).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--backlog", type=int, default=3000)  # > 1 minute of quota
    args = parser.parse_args()
    asyncio.run(run(args.mailboxes, args.backlog))


if __name__ == "__main__":
    main()
