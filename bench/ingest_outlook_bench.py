"""Benchmark of ingest-outlook against the Graph sandbox (zero latency), real Kafka and MongoDB-wire servers.

Measures, in one run, for one mailbox connected through the real MSAL flow:

- baseline: Kafka produce-to-consume latency (p50/p99) of bare records on the same broker;
- notification-to-event latency (p50/p99): from a message arriving in the sandbox mailbox (which notifies the
  service over HTTP) to its `MessageIngested` read back from Kafka, one message at a time;
- the notification endpoint's response time (p50/p99/max) while genuine notifications are posted at
  `--rate` per second for `--seconds` (Graph's deadline is 3 s);
- catch-up: a backlog of `--backlog` messages that arrived unnotified, fetched after one `missed` lifecycle
  event; messages/s, Graph requests/s as a fraction of Outlook's per-mailbox limit (10,000 requests per 10
  minutes = 16.7/s), and the 429s met;
- paced catch-up: a second sandbox whose per-mailbox window is scaled down to `--paced-limit` requests per
  `--paced-window` seconds (default 1,000 per 60 s: the same 16.7/s as Outlook's 10,000 per 10 minutes), a
  service configured with the same limit, and a backlog of `--paced-backlog` messages fetched one per delta
  page, so the catch-up needs more requests than one window allows; requests/s achieved as a fraction of the
  limit, and the 429s met. `--unpaced` lifts the service's pacing to show what reacting to 429s alone gives.

The sandbox, the service and this driver share one event loop and the machine's cores, so absolute figures
are pessimistic.

    uv run python bench/ingest_outlook_bench.py [--rate 200] [--seconds 5] [--backlog 500]
        [--paced-backlog 1100] [--paced-limit 1000] [--paced-window 60] [--unpaced] [--only-paced]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import math
import ssl
import statistics
import time
import uuid
from datetime import UTC, datetime
from html.parser import HTMLParser

import aiohttp
from aiohttp.test_utils import TestServer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from mailsync.common.contracts import MESSAGES_INGESTED, MessageIngested, contract_for
from mailsync.devstack.ports import free_port
from mailsync.devstack.stack import Stack
from mailsync.graph_sandbox import GraphSandboxAdmin, SandboxConfig, SandboxServer
from mailsync.graph_sandbox.throttling import ThrottlePolicy
from mailsync.ingest_outlook.app import SUBSCRIPTIONS, SYNC, create_app
from mailsync.ingest_outlook.settings import Settings

ALICE = "alice@sandbox.onmicrosoft.com"
CONTACT = "dora@contact.example"
GRAPH_REQUESTS_PER_SECOND = 10_000 / 600


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


class _Form(HTMLParser):
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


async def kafka_baseline(bootstrap: str, samples: int) -> list[float]:
    topic = f"bench-baseline-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await producer.start()
    await producer.send_and_wait(topic, b"warm-up")
    await consumer.start()
    await consumer.getone()
    latencies = []
    try:
        for _ in range(samples):
            started = time.perf_counter()
            await producer.send_and_wait(topic, b"x")
            await consumer.getone()
            latencies.append(time.perf_counter() - started)
    finally:
        await consumer.stop()
        await producer.stop()
    return latencies


class Tap:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self.events: list[tuple[float, MessageIngested]] = []
        self._consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for record in self._consumer:
            if record.value is not None:
                self.events.append((time.perf_counter(), contract_for(MESSAGES_INGESTED).parse(record.value)))

    async def wait(self, count: int, within: float = 120.0) -> None:
        deadline = time.monotonic() + within
        while len(self.events) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.events)} of {count} events")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()


async def run(rate: int, seconds: float, backlog: int, samples: int) -> None:  # noqa: PLR0915 - one scenario
    stack = Stack()
    stack.start(["kafka", "mongodb"])
    try:
        bootstrap = stack.kafka_bootstrap_servers
        baseline = await kafka_baseline(bootstrap, 200)
        async with SandboxServer(SandboxConfig(), http_port=0) as sandbox:
            admin = GraphSandboxAdmin(sandbox.base_url, ca_file=sandbox.ca_file)
            await admin.create_mailbox(ALICE)
            port = free_port()
            prefix = f"bench-{uuid.uuid4().hex[:8]}."
            settings = Settings(
                kafka_bootstrap_servers=bootstrap,
                kafka_topic_prefix=prefix,
                kafka_ensure_topics=True,
                mongodb_uri=stack.mongodb_uri,  # type: ignore[arg-type]  # pydantic wraps the str in SecretStr
                mongodb_database=f"bench_{uuid.uuid4().hex[:8]}",
                client_id=sandbox.config.default_app.client_id,
                client_secret=sandbox.config.default_app.client_secret,  # type: ignore[arg-type]
                authority=sandbox.authority,
                graph_url=sandbox.base_url,
                ca_file=sandbox.ca_file,
                http_port=port,
                oauth_redirect_uri=f"http://127.0.0.1:{port}/v1/oauth/callback",
                public_base_url=f"http://127.0.0.1:{port}/",
                token_keys={"k1": base64.b64encode(b"b" * 32).decode()},  # type: ignore[dict-item]
                maintenance_interval_seconds=3600,
                log_level="WARNING",
            )
            app = create_app(settings)
            service = TestServer(app, host="127.0.0.1", port=port)
            await service.start_server()
            tap = Tap(bootstrap, prefix + MESSAGES_INGESTED)
            await tap.start()
            base = f"http://127.0.0.1:{port}"
            context = ssl.create_default_context(cafile=sandbox.ca_file)
            try:
                async with aiohttp.ClientSession() as http:
                    body = {"subaccount_id": "sub", "user_id": "usr", "login_hint": ALICE}
                    async with http.post(f"{base}/v1/connections/authorize", json=body) as response:
                        url = (await response.json())["authorization_url"]
                    async with http.get(url, ssl=context) as response:
                        form = _Form()
                        form.feed(await response.text())
                    async with http.post(form.action, data=form.fields) as response:
                        if response.status != 201:
                            raise RuntimeError(f"sign-in failed: {await response.text()}")
                    await asyncio.sleep(1.0)

                    # notification-to-event latency
                    latencies = []
                    for number in range(samples):
                        started = time.perf_counter()
                        await admin.deliver_inbound(ALICE, sender=CONTACT, subject=f"l{number}", body="x")
                        await tap.wait(number + 1)
                        latencies.append(tap.events[number][0] - started)

                    # endpoint response time under load
                    inbox = next(s for s in await admin.subscriptions() if "Inbox" in s["resource"])
                    payload = {
                        "value": [
                            {
                                "subscriptionId": inbox["id"],
                                "clientState": inbox["clientState"],
                                "changeType": "created",
                                "resource": "Users/x/Messages/y",
                                "subscriptionExpirationDateTime": inbox["expirationDateTime"],
                                "tenantId": "t",
                            }
                        ]
                    }
                    response_times: list[float] = []
                    statuses: dict[int, int] = {}

                    async def post() -> None:
                        started = time.perf_counter()
                        async with http.post(f"{base}/v1/graph/notifications", json=payload) as response:
                            await response.read()
                            statuses[response.status] = statuses.get(response.status, 0) + 1
                        response_times.append(time.perf_counter() - started)

                    tasks = []
                    load_started = time.perf_counter()
                    for index in range(int(rate * seconds)):
                        delay = load_started + index / rate - time.perf_counter()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        tasks.append(asyncio.create_task(post()))
                    await asyncio.gather(*tasks)
                    await asyncio.sleep(2.0)

                    # catch-up of an unnotified backlog after one `missed`
                    store = app[SUBSCRIPTIONS].mailboxes
                    record = await store.subscription(inbox["id"])
                    if record is None:
                        raise RuntimeError("the Inbox subscription is not stored")
                    await store.remove_subscription(inbox["id"], datetime.now(UTC))
                    for number in range(backlog):
                        await admin.deliver_inbound(ALICE, sender=CONTACT, subject=f"b{number}", body="x")
                    await store.add_subscription(record)
                    before = len(tap.events)
                    throttled_before = app[SYNC].graph.throttled
                    started = time.perf_counter()
                    await admin.lifecycle(inbox["id"], "missed")
                    await tap.wait(before + backlog, within=600)
                    elapsed = tap.events[-1][0] - started
                    requests = math.ceil(backlog / settings.delta_page_size) + 2
                    throttled = app[SYNC].graph.throttled - throttled_before
            finally:
                await tap.stop()
                await service.close()
                await admin.close()
    finally:
        stack.stop()

    report(
        baseline=baseline,
        latencies=latencies,
        response_times=response_times,
        statuses=statuses,
        load=(rate, seconds),
        catch_up=(backlog, elapsed, requests, throttled, settings.delta_page_size),
    )


async def paced_catch_up(
    stack: Stack, backlog: int, limit: int, window: float, *, paced: bool
) -> tuple[float, int, int, float]:
    """One mailbox's catch-up against a sandbox whose throttling window is scaled down to `limit` requests
    per `window` seconds.

    Returns (elapsed seconds, Graph requests, 429s, seconds the pacer made requests wait).
    """
    bootstrap = stack.kafka_bootstrap_servers
    config = SandboxConfig(throttle=ThrottlePolicy(requests_per_window=limit, window_s=window))
    async with SandboxServer(config, http_port=0) as sandbox:
        admin = GraphSandboxAdmin(sandbox.base_url, ca_file=sandbox.ca_file)
        await admin.create_mailbox(ALICE)
        port = free_port()
        prefix = f"bench-{uuid.uuid4().hex[:8]}."
        settings = Settings(
            kafka_bootstrap_servers=bootstrap,
            kafka_topic_prefix=prefix,
            kafka_ensure_topics=True,
            mongodb_uri=stack.mongodb_uri,  # type: ignore[arg-type]  # pydantic wraps the str in SecretStr
            mongodb_database=f"bench_{uuid.uuid4().hex[:8]}",
            client_id=sandbox.config.default_app.client_id,
            client_secret=sandbox.config.default_app.client_secret,  # type: ignore[arg-type]
            authority=sandbox.authority,
            graph_url=sandbox.base_url,
            ca_file=sandbox.ca_file,
            http_port=port,
            oauth_redirect_uri=f"http://127.0.0.1:{port}/v1/oauth/callback",
            public_base_url=f"http://127.0.0.1:{port}/",
            token_keys={"k1": base64.b64encode(b"b" * 32).decode()},  # type: ignore[dict-item]
            maintenance_interval_seconds=3600,
            delta_page_size=1,
            graph_requests_per_window=limit if paced else 10**9,
            graph_window_seconds=window,
            log_level="WARNING",
        )
        app = create_app(settings)
        service = TestServer(app, host="127.0.0.1", port=port)
        await service.start_server()
        tap = Tap(bootstrap, prefix + MESSAGES_INGESTED)
        await tap.start()
        base = f"http://127.0.0.1:{port}"
        context = ssl.create_default_context(cafile=sandbox.ca_file)
        try:
            async with aiohttp.ClientSession() as http:
                await sign_in(http, base, context)
                await asyncio.sleep(1.0)
                inbox = next(s for s in await admin.subscriptions() if "Inbox" in s["resource"])
                store = app[SUBSCRIPTIONS].mailboxes
                record = await store.subscription(inbox["id"])
                if record is None:
                    raise RuntimeError("the Inbox subscription is not stored")
                await store.remove_subscription(inbox["id"], datetime.now(UTC))
                for number in range(backlog):
                    await admin.deliver_inbound(ALICE, sender=CONTACT, subject=f"p{number}", body="x")
                await store.add_subscription(record)
                graph = app[SYNC].graph
                requests_before, throttled_before = graph.requests, graph.throttled
                waited_before = graph.pacer.waited_seconds
                started = time.perf_counter()
                await admin.lifecycle(inbox["id"], "missed")
                await tap.wait(backlog, within=20 * window)
                elapsed = tap.events[-1][0] - started
                return (
                    elapsed,
                    graph.requests - requests_before,
                    graph.throttled - throttled_before,
                    graph.pacer.waited_seconds - waited_before,
                )
        finally:
            await tap.stop()
            await service.close()
            await admin.close()


async def sign_in(http: aiohttp.ClientSession, base: str, context: ssl.SSLContext) -> None:
    """Connect ALICE through the real MSAL flow (the browser's part done by hand)."""
    body = {"subaccount_id": "sub", "user_id": "usr", "login_hint": ALICE}
    async with http.post(f"{base}/v1/connections/authorize", json=body) as response:
        url = (await response.json())["authorization_url"]
    async with http.get(url, ssl=context) as response:
        form = _Form()
        form.feed(await response.text())
    async with http.post(form.action, data=form.fields) as response:
        if response.status != 201:
            raise RuntimeError(f"sign-in failed: {await response.text()}")


def report_paced(
    backlog: int, limit: int, window: float, measured: tuple[float, int, int, float], *, paced: bool
) -> None:
    elapsed, requests, throttled, waited = measured
    rate = requests / elapsed
    print(
        f"paced catch-up of {backlog} messages (1 per delta page) under {limit} requests per {window:.0f} s "
        f"({limit / window:.2f}/s), service pacing {'on' if paced else 'off'}: {elapsed:.1f} s, {requests} "
        f"Graph requests, {rate:.2f} requests/s = {rate / (limit / window):.1%} of the limit, "
        f"429s: {throttled}, pacer waits {waited:.1f} s"
    )


def report(
    *,
    baseline: list[float],
    latencies: list[float],
    response_times: list[float],
    statuses: dict[int, int],
    load: tuple[int, float],
    catch_up: tuple[int, float, int, int, int],
) -> None:
    def ms(values: list[float], fraction: float) -> str:
        return f"{percentile(values, fraction) * 1000:.1f} ms"

    rate, seconds = load
    backlog, elapsed, requests, throttled, page_size = catch_up
    request_rate = requests / elapsed
    print(f"Kafka baseline latency: p50 {ms(baseline, 0.5)}, p99 {ms(baseline, 0.99)}")
    ratio = statistics.median(latencies) / statistics.median(baseline)
    print(
        f"notification-to-event latency ({len(latencies)} messages): p50 {ms(latencies, 0.5)}, "
        f"p99 {ms(latencies, 0.99)} ({ratio:.1f}x the Kafka baseline median)"
    )
    print(
        f"notification endpoint at {rate}/s for {seconds:.0f} s: p50 {ms(response_times, 0.5)}, "
        f"p99 {ms(response_times, 0.99)}, max {max(response_times) * 1000:.1f} ms, statuses {statuses} "
        "(Graph's deadline: 3000 ms)"
    )
    share = request_rate / GRAPH_REQUESTS_PER_SECOND
    print(
        f"catch-up of {backlog} messages: {elapsed:.2f} s, {backlog / elapsed:.0f} messages/s, "
        f"{request_rate:.2f} Graph requests/s = {share:.0%} of the per-mailbox limit "
        f"(page size {page_size}), 429s: {throttled}"
    )


async def run_paced(backlog: int, limit: int, window: float, *, paced: bool) -> None:
    stack = Stack()
    stack.start(["kafka", "mongodb"])
    try:
        measured = await paced_catch_up(stack, backlog, limit, window, paced=paced)
    finally:
        stack.stop()
    report_paced(backlog, limit, window, measured, paced=paced)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--backlog", type=int, default=500)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--paced-backlog", type=int, default=1100)
    parser.add_argument("--paced-limit", type=int, default=1000)
    parser.add_argument("--paced-window", type=float, default=60.0)
    parser.add_argument("--unpaced", action="store_true", help="lift the service's pacing in the paced run")
    parser.add_argument("--only-paced", action="store_true", help="run the paced catch-up only")
    args = parser.parse_args()
    if not args.only_paced:
        asyncio.run(run(args.rate, args.seconds, args.backlog, args.samples))
    asyncio.run(run_paced(args.paced_backlog, args.paced_limit, args.paced_window, paced=not args.unpaced))


if __name__ == "__main__":
    main()
