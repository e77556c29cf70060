"""Traces and lag on the real broker: the W3C context rides in Kafka headers into single and batch consumers,
consumer lag is served at `/metrics`, and tracing stays off unless the OTEL_* variables turn it on."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer
from faststream import Context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from mailsync.common.contracts import MAILBOX_CHANGED, MESSAGES_INGESTED, MailboxChanged
from mailsync.common.contracts.examples import MESSAGE_INGESTED
from mailsync.common.kafka import subscriber_options
from mailsync.common.service import create_runtime, create_service_app
from mailsync.common.settings import ServiceSettings
from mailsync.common.telemetry import record_span, root_span, trace_requests, tracer_provider_from_env
from mailsync.common.topics_admin import ensure_topics

THE_MESSAGE = Context()
"""A handler argument: the consumed message (for a batch, with every record's headers)."""


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span ended during the test, observed through the global SDK tracer provider."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def hint(n: int, mailbox: str = "gmail:ada@example.com") -> MailboxChanged:
    return MailboxChanged(
        provider="gmail",
        mailbox_id=mailbox,
        email_address="ada@example.com",
        source="push",
        history_id=n,
        received_at=datetime.now(UTC),
    )


async def eventually(condition: Any, within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - polls state the consumers mutate
            await asyncio.sleep(0.05)


def named(spans: InMemorySpanExporter, suffix: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name.endswith(suffix)]


def test_tracing_stays_off_unless_the_environment_asks_for_it() -> None:
    assert tracer_provider_from_env("router", {}) is None
    assert tracer_provider_from_env("router", {"OTEL_TRACES_EXPORTER": "none"}) is None
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert tracer_provider_from_env("router", {**endpoint, "OTEL_SDK_DISABLED": "true"}) is None
    assert tracer_provider_from_env("router", {**endpoint, "OTEL_TRACES_EXPORTER": "none"}) is None
    provider = tracer_provider_from_env("router", endpoint)
    assert provider is not None
    try:
        assert provider.resource.attributes["service.name"] == "mailsync-router"  # type: ignore[attr-defined]
    finally:
        provider.shutdown()  # type: ignore[attr-defined]


async def test_requests_continue_the_callers_trace_and_probes_are_not_traced(
    spans: InMemorySpanExporter,
) -> None:
    async def push(_: web.Request) -> web.Response:
        return web.Response(status=204)

    async def broken(_: web.Request) -> web.Response:
        raise web.HTTPServiceUnavailable

    app = web.Application(middlewares=[trace_requests])
    app.router.add_post("/v1/push/{channel}", push)
    app.router.add_get("/broken", broken)
    app.router.add_get("/healthz", push)
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with TestClient(TestServer(app)) as client:
        assert (await client.post("/v1/push/a", headers={"traceparent": caller})).status == 204
        assert (await client.get("/broken")).status == 503
        assert (await client.get("/nowhere/123")).status == 404
        assert (await client.get("/healthz")).status == 204

    by_name = {s.name: s for s in spans.get_finished_spans()}
    assert set(by_name) == {"POST /v1/push/{channel}", "GET /broken", "GET unmatched"}
    pushed = by_name["POST /v1/push/{channel}"]
    assert trace.format_trace_id(pushed.context.trace_id) == "0af7651916cd43dd8448eb211c80319c"
    assert pushed.parent is not None
    assert trace.format_span_id(pushed.parent.span_id) == "b7ad6b7169203331"
    assert by_name["GET /broken"].status.status_code == trace.StatusCode.ERROR
    assert by_name["GET /broken"].parent is None


@pytest.mark.kafka
async def test_trace_context_rides_kafka_headers_into_single_and_batch_consumers(
    service_settings: ServiceSettings, spans: InMemorySpanExporter
) -> None:
    topic = service_settings.topic(MAILBOX_CHANGED)
    await ensure_topics(service_settings.kafka_bootstrap_servers, [topic], partitions=1, replication=1)
    runtime = create_runtime(service_settings)
    single: list[int] = []
    batch_traces: list[int] = []
    record_traces: list[int] = []

    @runtime.broker.subscriber(topic, **subscriber_options(service_settings, "single"))
    async def one(event: MailboxChanged) -> None:
        single.append(trace.get_current_span().get_span_context().trace_id)

    @runtime.broker.subscriber(
        topic, **subscriber_options(service_settings, "batch"), batch=True, max_records=10
    )
    async def many(events: list[MailboxChanged], message: Any = THE_MESSAGE) -> None:
        batch_traces.append(trace.get_current_span().get_span_context().trace_id)
        for headers in message.batch_headers:
            with record_span(headers, "route") as span:
                record_traces.append(span.get_span_context().trace_id)

    runtime.publisher.declare(MAILBOX_CHANGED)
    await runtime.broker.start()
    try:
        with root_span("notification") as root:
            origin = root.get_span_context().trace_id
            for n in (1, 2):
                await runtime.publisher.publish(MAILBOX_CHANGED, hint(n))
        await eventually(lambda: len(single) == 2 and len(record_traces) == 2)
    finally:
        await runtime.broker.stop()
        await runtime.mongo.close()

    assert single == [origin, origin]
    assert record_traces == [origin, origin]
    assert origin not in batch_traces  # a batch has a trace of its own ...
    # FastStream writes the context of a PRODUCER "create" span into each record's headers.
    produced = {s.context.span_id for s in named(spans, "create") if s.context.trace_id == origin}
    assert len(produced) == 2
    created = [s for s in named(spans, "create") if s.context.trace_id in batch_traces]
    linked = {link.context.span_id for s in created for link in s.links}
    assert produced <= linked  # ... that links to every record's span
    routes = named(spans, "route")
    assert {s.context.trace_id for s in routes} == {origin}
    assert all(s.parent is not None and s.parent.span_id in produced for s in routes)
    assert all(link.context.trace_id in batch_traces for s in routes for link in s.links)


@pytest.mark.kafka
async def test_an_event_keyed_like_one_record_of_a_batch_continues_that_records_trace(
    service_settings: ServiceSettings, spans: InMemorySpanExporter
) -> None:
    """A send result keyed by its command's request id stays in the command's trace; a key that several
    records of the batch share cannot say which one caused the event, so it stays in the batch's trace."""
    source, derived = service_settings.topic(MAILBOX_CHANGED), service_settings.topic(MESSAGES_INGESTED)
    await ensure_topics(
        service_settings.kafka_bootstrap_servers, [source, derived], partitions=1, replication=1
    )
    runtime = create_runtime(service_settings)
    seen: dict[int, tuple[int, int]] = {}
    """history id of a hint -> (its batch's trace, how many records of the batch share its key)"""

    @runtime.broker.subscriber(
        source, **subscriber_options(service_settings, "batch"), batch=True, max_records=10
    )
    async def many(events: list[MailboxChanged]) -> None:
        batch_trace = trace.get_current_span().get_span_context().trace_id
        for event in events:
            sharing = sum(e.mailbox_id == event.mailbox_id for e in events)
            seen[event.history_id or 0] = (batch_trace, sharing)
        derived_events = [
            MESSAGE_INGESTED.model_copy(
                update={"mailbox_id": e.mailbox_id, "provider_message_id": f"h{e.history_id}"}
            )
            for e in events
        ]
        await runtime.publisher.publish_all(MESSAGES_INGESTED, derived_events)

    runtime.publisher.declare(MAILBOX_CHANGED)
    runtime.publisher.declare(MESSAGES_INGESTED)
    await runtime.broker.connect()
    origins: dict[int, int] = {}
    for n, mailbox in (
        (1, "gmail:ada@example.com"),
        (2, "gmail:bob@example.com"),
        (3, "gmail:bob@example.com"),
    ):
        with root_span(f"notification {n}") as root:
            origins[n] = root.get_span_context().trace_id
            await runtime.publisher.publish(MAILBOX_CHANGED, hint(n, mailbox))
    await runtime.broker.start()
    try:
        await eventually(lambda: len(seen) == 3)
        derived_traces = await _traces_by_message_id(service_settings, derived, 3)
    finally:
        await runtime.broker.stop()
        await runtime.mongo.close()

    for n, (batch_trace, sharing) in seen.items():
        expected = origins[n] if sharing == 1 else batch_trace
        assert derived_traces[f"h{n}"] == expected, (n, sharing)
    assert seen[1][1] == 1  # ada's hint is alone in its batch: its event continued its trace
    assert seen[2][1] == seen[3][1] == 2  # bob's two, published before the consumer started, came together


async def _traces_by_message_id(settings: ServiceSettings, topic: str, count: int) -> dict[str, int]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    traces: dict[str, int] = {}
    try:
        async with asyncio.timeout(30):
            async for record in consumer:
                event = MESSAGE_INGESTED.model_validate_json(record.value or b"")
                traceparent = bytes(dict(record.headers)["traceparent"]).decode()
                traces[event.provider_message_id] = int(traceparent.split("-")[1], 16)
                if len(traces) == count:
                    return traces
    finally:
        await consumer.stop()
    return traces


@pytest.mark.kafka
async def test_consumer_lag_is_served_per_group_and_partition(service_settings: ServiceSettings) -> None:
    topic = service_settings.topic(MAILBOX_CHANGED)
    await ensure_topics(service_settings.kafka_bootstrap_servers, [topic], partitions=1, replication=1)
    runtime = create_runtime(service_settings)
    release = asyncio.Event()
    handled: list[int] = []

    @runtime.broker.subscriber(topic, **subscriber_options(service_settings, "slow"))
    async def slow(event: MailboxChanged) -> None:
        await release.wait()
        handled.append(event.history_id or 0)

    runtime.publisher.declare(MAILBOX_CHANGED)
    await runtime.broker.connect()
    for n in range(1, 6):
        await runtime.publisher.publish(MAILBOX_CHANGED, hint(n))
    group = service_settings.consumer_group("slow")

    async with TestClient(TestServer(create_service_app(runtime))) as client:

        async def lag() -> float | None:
            text = await (await client.get("/metrics")).text()
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == "mailsync_consumer_lag" and sample.labels["group"] == group:
                        assert sample.labels["topic"] == topic
                        assert sample.labels["partition"] == "0"
                        assert sample.labels["service"] == "common-test"
                        return float(sample.value)
            return None

        async with asyncio.timeout(30):
            while (behind := await lag()) is None or behind < 4:  # noqa: ASYNC110 - polls the endpoint
                await asyncio.sleep(0.2)
        assert behind == 4  # the first record is in the handler, four wait behind it
        release.set()
        await eventually(lambda: len(handled) == 5)
        async with asyncio.timeout(30):
            while await lag() != 0:  # noqa: ASYNC110 - polls the endpoint
                await asyncio.sleep(0.2)
