"""Kafka entry points of the router: decode (FastStream validates against the contract), call a handler.

One consumer group per input topic, so a slow topic never holds another back. Acknowledgement, retries and
dead letters are the broker's delivery middleware's (see `mailsync.common.delivery`). Ingested messages are
consumed in batches: whatever the partitions have ready, up to the configured size, is routed with one set of
queries and writes, and the offsets are committed after the whole batch (a failing record is isolated and
dead-lettered alone by the middleware).
"""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from mailsync.common.contracts import (
    CONNECTIONS_CHANGED,
    CRM_DIRECTORY,
    MESSAGES_INGESTED,
    SEND_RESULTS,
    ConnectionChanged,
    DirectoryEvent,
    MessageIngested,
    SendCompleted,
)
from mailsync.common.kafka import subscriber_options
from mailsync.common.settings import ServiceSettings
from mailsync.router.handlers import Router

READ_MODEL_FEEDS: tuple[tuple[str, str], ...] = (
    ("directory", CRM_DIRECTORY),
    ("connections", CONNECTIONS_CHANGED),
    ("send-results", SEND_RESULTS),
)
"""(consumer-group purpose, topic) of the consumers that feed the read models routing decisions rely on."""


def register_consumers(
    broker: KafkaBroker, settings: ServiceSettings, router: Router, *, message_batch: int = 1
) -> None:
    """Subscribe the router's handlers to their topics; messages in batches of up to `message_batch`."""

    directory, connections, send_results = (purpose for purpose, _ in READ_MODEL_FEEDS)

    @broker.subscriber(settings.topic(CRM_DIRECTORY), **subscriber_options(settings, directory))
    async def on_directory_event(event: DirectoryEvent) -> None:
        await router.apply_directory_event(event)

    @broker.subscriber(settings.topic(CONNECTIONS_CHANGED), **subscriber_options(settings, connections))
    async def on_connection_changed(event: ConnectionChanged) -> None:
        await router.apply_connection_change(event)

    @broker.subscriber(settings.topic(SEND_RESULTS), **subscriber_options(settings, send_results))
    async def on_send_completed(event: SendCompleted) -> None:
        await router.record_send_result(event)

    @broker.subscriber(
        settings.topic(MESSAGES_INGESTED),
        **subscriber_options(settings, "messages"),
        description=(
            "Each record is one `mail.message_ingested` event (schema: the MessageIngested contract); the "
            "router consumes them in batches, so the payload below lists the records of one batch."
        ),
        batch=True,
        max_records=message_batch,
    )
    async def on_messages_ingested(events: list[MessageIngested]) -> None:
        await router.route_messages(events)
