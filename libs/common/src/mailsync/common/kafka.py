"""The Kafka broker every service uses, and the one way events are published.

`create_broker` returns a FastStream `KafkaBroker` configured for the project's delivery semantics:

- Producer: idempotent (`enable_idempotence=True`, `acks="all"`), so a retried send never duplicates a record
  within a partition; with `kafka_linger_ms`, records published that close together share one produce request.
- Consumers: `AckPolicy.NACK_ON_ERROR` on every subscriber, so an offset is committed only after its handler
  finished (FastStream's default for Kafka is to acknowledge first, which is at-most-once); subscribers must
  give
  an explicit `group_id` (use `ServiceSettings.consumer_group`). `DeliveryMiddleware` adds retries and dead
  letters (see `mailsync.common.delivery`).
- Metrics: FastStream's Prometheus middleware on the service's registry (events in and out, with the
  `service` label every mailsync metric has); `refresh_consumer_lag` reads each consumer's lag at scrape.
- Traces: FastStream's OpenTelemetry middleware carries the W3C trace context in every record's headers and
  continues it in the consumer; in a batch, an event keyed like one record of the batch continues that
  record's trace (see `mailsync.common.telemetry`).

Nothing connects until the broker is started by the service's HTTP shell.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.kafka.publisher.usecase import DefaultPublisher as TopicPublisher
from faststream.middlewares import AckPolicy

from mailsync.common.contracts import DeadLettered, contract_for
from mailsync.common.delivery import DeliveryPolicy, RetryPolicy
from mailsync.common.telemetry import BatchRecordTraces, continuing

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from pydantic import BaseModel

    from mailsync.common.metrics import CommonMetrics
    from mailsync.common.settings import ServiceSettings

CONTENT_TYPE = "application/json"

logger = logging.getLogger(__name__)


def create_broker(
    settings: ServiceSettings, *, registry: CollectorRegistry, metrics: CommonMetrics
) -> KafkaBroker:
    """A broker with idempotent publishing, commit-after-work consumers, retries, dead letters and metrics."""
    delivery = DeliveryPolicy(
        service=settings.service_name,
        metrics=metrics,
        retry=RetryPolicy(max_attempts=settings.kafka_max_attempts),
    )
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=f"mailsync-{settings.service_name}",
        enable_idempotence=True,
        acks="all",
        linger_ms=settings.kafka_linger_ms,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        graceful_timeout=settings.shutdown_timeout_seconds,
        middlewares=(
            KafkaTelemetryMiddleware(include_messages_counters=False),
            KafkaPrometheusMiddleware(
                registry=registry,
                app_name=settings.service_name,
                metrics_prefix="mailsync",
                custom_labels={"service": settings.service_name},
            ),
            BatchRecordTraces,
            delivery,
        ),
        logger=logging.getLogger(f"mailsync.{settings.service_name}.kafka"),
        # Per-message "Received"/"Processed" lines only when debugging; failures are logged as warnings.
        log_level=logging.DEBUG,
    )
    publisher = EventPublisher(broker, settings)

    async def publish_dead_letter(letter: DeadLettered, *, topic: str, key: bytes | None) -> None:
        await publisher.publish_raw(letter, topic=topic, key=key)

    # The policy is built before the broker it publishes dead letters through.
    delivery.publish_dead_letter = publish_dead_letter
    return broker


class SubscriberOptions(TypedDict):
    """Keyword arguments for `KafkaBroker.subscriber` that every mailsync subscriber passes."""

    group_id: str
    auto_offset_reset: Literal["earliest"]


def subscriber_options(settings: ServiceSettings, purpose: str) -> SubscriberOptions:
    """The options every subscriber takes: its explicit consumer group and where a new group starts.

    A group that has never committed starts at the earliest retained record, so nothing published before a
    service's first deployment (or while a new group is being rolled out) is skipped.
    """
    return SubscriberOptions(group_id=settings.consumer_group(purpose), auto_offset_reset="earliest")


class EventPublisher:
    """Publishes contract models to their topics, keyed by the contract's key function.

    The topic must be one of the constants in `mailsync.common.contracts.topics`; the environment's prefix is
    applied here. Publishing is awaited until the broker acknowledged the record (`acks="all"`); a failure
    raises, so a caller inside a handler leaves its own message uncommitted and it is retried. A service's
    composition root `declare`s the topics it produces, which puts them in its AsyncAPI document.
    """

    def __init__(self, broker: KafkaBroker, settings: ServiceSettings) -> None:
        self._broker = broker
        self._settings = settings
        self._publishers: dict[str, TopicPublisher] = {}

    def declare(self, topic: str) -> None:
        """Register `topic` (a contract topic constant) as one this service publishes to."""
        self._publisher(topic)

    async def publish(self, topic: str, event: BaseModel) -> None:
        """Publish `event` on the contract topic `topic`, keyed as the contract says."""
        contract = contract_for(topic)  # KeyError for a topic that is not a contract topic
        key = contract.key_of(event).encode()
        with continuing(key, f"{topic} derive"):
            await self._publisher(topic).publish(
                event.model_dump_json(by_alias=True).encode(), key=key, headers=_headers(event)
            )

    async def publish_all(self, topic: str, events: Sequence[BaseModel]) -> None:
        """Publish `events` on `topic` in their order, then wait until the broker acknowledged every one.

        Records are handed to the producer one after another without waiting in between, so records of one
        key keep their order (the producer batches and sends them; the idempotent producer never reorders
        them on retry). Cheaper than awaiting each `publish` when a handler emits many events at once.
        """
        if not events:
            return
        contract = contract_for(topic)
        publisher = self._publisher(topic)
        acknowledgements = []
        for event in events:
            key = contract.key_of(event).encode()
            with continuing(key, f"{topic} derive"):
                acknowledgements.append(
                    await publisher.publish(
                        event.model_dump_json(by_alias=True).encode(),
                        key=key,
                        headers=_headers(event),
                        no_confirm=True,
                    )
                )
        await asyncio.gather(*acknowledgements)

    async def publish_raw(self, event: BaseModel, *, topic: str, key: bytes | None) -> None:
        """Publish on a physical topic name (already prefixed), e.g. a dead-letter topic."""
        await self._broker.publish(
            event.model_dump_json(by_alias=True).encode(), topic=topic, key=key, headers=_headers(event)
        )

    def _publisher(self, topic: str) -> TopicPublisher:
        publisher = self._publishers.get(topic)
        if publisher is None:
            contract = contract_for(topic)
            publisher = self._broker.publisher(
                self._settings.topic(topic),
                title=f"{topic}:publish",
                description=f"{contract.purpose} Key: {contract.key}.",
                schema=contract.payload_type,
            )
            self._publishers[topic] = publisher
        return publisher


def _headers(event: BaseModel) -> dict[str, str]:
    headers = {"content-type": CONTENT_TYPE}
    event_type = getattr(event, "event_type", None)
    if isinstance(event_type, str):
        headers["event-type"] = event_type
    return headers


_LAG_TIMEOUT = 1.0


async def refresh_consumer_lag(broker: KafkaBroker, metrics: CommonMetrics, service: str) -> None:
    """Set `mailsync_consumer_lag` for every partition this instance's consumers hold.

    Lag is the partition's high watermark (as of the consumer's last fetch) minus the consumer's position:
    what this instance still has to read. A partition the consumer has not fetched from yet is left out, and
    partitions that moved to another instance are dropped, so the gauge sums over instances without double
    counting.
    """
    metrics.consumer_lag.clear()
    for subscriber in broker.subscribers:
        group = getattr(subscriber, "group_id", None) or ""
        consumers: list[Any] = list(getattr(subscriber, "consumer_subgroup", None) or ())
        if not consumers and getattr(subscriber, "consumer", None) is not None:
            consumers = [subscriber.consumer]  # type: ignore[attr-defined]
        for consumer in consumers:
            for partition in consumer.assignment():
                highwater = consumer.highwater(partition)
                if highwater is None:
                    continue
                try:
                    position = await asyncio.wait_for(consumer.position(partition), _LAG_TIMEOUT)
                except Exception:  # a rebalance may take the partition away meanwhile
                    logger.debug("consumer position unavailable", exc_info=True)
                    continue
                metrics.consumer_lag.labels(service, group, partition.topic, str(partition.partition)).set(
                    max(highwater - position, 0)
                )
