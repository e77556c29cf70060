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
from typing import TYPE_CHECKING, Any

from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
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
    )
    publisher = EventPublisher(broker, settings, metrics)

    async def publish_dead_letter(letter: DeadLettered, *, topic: str, key: bytes | None) -> None:
        await publisher.publish_raw(letter, topic=topic, key=key)

    # The policy is built before the broker it publishes dead letters through.
    delivery.publish_dead_letter = publish_dead_letter
    return broker


class EventPublisher:
    """Publishes contract models to their topics, keyed by the contract's key function.

    The topic must be one of the constants in `mailsync.common.contracts.topics`; the environment's prefix is
    applied here. Publishing is awaited until the broker acknowledged the record (`acks="all"`); a failure
    raises, so a caller inside a handler leaves its own message uncommitted and it is retried.
    """

    def __init__(self, broker: KafkaBroker, settings: ServiceSettings, metrics: CommonMetrics) -> None:
        self._broker = broker
        self._settings = settings
        self._metrics = metrics

    async def publish(self, topic: str, event: BaseModel) -> None:
        """Publish `event` on the contract topic `topic`, keyed as the contract says."""
        contract = contract_for(topic)  # KeyError for a topic that is not a contract topic
        await self.publish_raw(event, topic=self._settings.topic(topic), key=contract.key_of(event).encode())

    async def publish_raw(self, event: BaseModel, *, topic: str, key: bytes | None) -> None:
        """Publish on a physical topic name (already prefixed), e.g. a dead-letter topic."""
        headers: dict[str, Any] = {"content-type": CONTENT_TYPE}
        event_type = getattr(event, "event_type", None)
        if isinstance(event_type, str):
            headers["event-type"] = event_type
        await self._broker.publish(
            event.model_dump_json(by_alias=True).encode(),
            topic=topic,
            key=key,
            headers=headers,
        )
        self._metrics.events_published.labels(self._settings.service_name, topic).inc()
