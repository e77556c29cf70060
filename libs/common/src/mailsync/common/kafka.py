"""The Kafka broker every service uses, and the one way events are published.

`create_broker` returns a FastStream `KafkaBroker` configured for the project's delivery semantics:

- Producer: idempotent (`enable_idempotence=True`, `acks="all"`), so a retried send never duplicates a record
  within a partition.
- Consumers: `AckPolicy.NACK_ON_ERROR` on every subscriber, so an offset is committed only after its handler
  finished (FastStream's default for Kafka is to acknowledge first, which is at-most-once); subscribers must
  give
  an explicit `group_id` (use `ServiceSettings.consumer_group`). `DeliveryMiddleware` adds retries and dead
  letters (see `mailsync.common.delivery`).
- Metrics: FastStream's Prometheus middleware on the service's registry.

Nothing connects until the broker is started by the service's HTTP shell.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal, TypedDict

from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.kafka.publisher.usecase import DefaultPublisher as TopicPublisher
from faststream.middlewares import AckPolicy

from mailsync.common.contracts import DeadLettered, contract_for
from mailsync.common.delivery import DeliveryPolicy, RetryPolicy

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from pydantic import BaseModel

    from mailsync.common.metrics import CommonMetrics
    from mailsync.common.settings import ServiceSettings

CONTENT_TYPE = "application/json"


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
        ack_policy=AckPolicy.NACK_ON_ERROR,
        graceful_timeout=settings.shutdown_timeout_seconds,
        middlewares=(
            KafkaPrometheusMiddleware(
                registry=registry, app_name=settings.service_name, metrics_prefix="mailsync"
            ),
            delivery,
        ),
        logger=logging.getLogger(f"mailsync.{settings.service_name}.kafka"),
        # Per-message "Received"/"Processed" lines only when debugging; failures are logged as warnings.
        log_level=logging.DEBUG,
    )
    publisher = EventPublisher(broker, settings, metrics)

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

    def __init__(self, broker: KafkaBroker, settings: ServiceSettings, metrics: CommonMetrics) -> None:
        self._broker = broker
        self._settings = settings
        self._metrics = metrics
        self._publishers: dict[str, TopicPublisher] = {}

    def declare(self, topic: str) -> None:
        """Register `topic` (a contract topic constant) as one this service publishes to."""
        self._publisher(topic)

    async def publish(self, topic: str, event: BaseModel) -> None:
        """Publish `event` on the contract topic `topic`, keyed as the contract says."""
        contract = contract_for(topic)  # KeyError for a topic that is not a contract topic
        await self._publisher(topic).publish(
            event.model_dump_json(by_alias=True).encode(),
            key=contract.key_of(event).encode(),
            headers=_headers(event),
        )
        self._metrics.events_published.labels(self._settings.service_name, self._settings.topic(topic)).inc()

    async def publish_raw(self, event: BaseModel, *, topic: str, key: bytes | None) -> None:
        """Publish on a physical topic name (already prefixed), e.g. a dead-letter topic."""
        await self._broker.publish(
            event.model_dump_json(by_alias=True).encode(), topic=topic, key=key, headers=_headers(event)
        )
        self._metrics.events_published.labels(self._settings.service_name, topic).inc()

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
