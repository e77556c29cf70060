"""Kafka entry points of the sender: decode, call a handler; acks, retries and dead letters are the broker's.

Send commands are consumed in batches (one poll's records, up to `send_batch_max_records`), which the handler
decides concurrently; the batch's offsets are committed once every command of it is answered. A batch that
fails for any reason but a transient one is re-run record by record by the delivery middleware, so only the
records that fail alone are dead-lettered.

Send commands are taken as JSON objects rather than validated `SendEmail` models, because the contract
answers an invalid command that still carries a usable `request_id` with a `refused`/`invalid_command`
result instead of dead-lettering it; the handler validates against `SendEmail` itself. Only a payload that is
not a JSON object, or has no usable `request_id`, goes to `send.commands.v1.dlt`.
"""

from __future__ import annotations

from typing import Any

from faststream.kafka import KafkaBroker

from mailsync.common.contracts import CONNECTIONS_CHANGED, SEND_COMMANDS, ConnectionChanged
from mailsync.common.kafka import subscriber_options
from mailsync.sender.handlers import Sender
from mailsync.sender.settings import Settings


def register_consumers(broker: KafkaBroker, settings: Settings, sender: Sender) -> None:
    """Subscribe the sender's handlers to their topics."""

    @broker.subscriber(
        settings.topic(CONNECTIONS_CHANGED),
        title=f"{CONNECTIONS_CHANGED}:sender",
        **subscriber_options(settings, "connections"),
    )
    async def on_connection_changed(event: ConnectionChanged) -> None:
        await sender.apply_connection_change(event)

    @broker.subscriber(
        settings.topic(SEND_COMMANDS),
        title=f"{SEND_COMMANDS}:sender",
        description=(
            "A `sending.send_email` command (schema: the SendEmail contract, "
            "libs/common/src/mailsync/common/contracts/schemas/sending.send_email.v1.json). Exactly one "
            "`sending.send_completed` is published on the results topic per request_id. Consumed in "
            "batches of up to `MAILSYNC_SEND_BATCH_MAX_RECORDS` commands, decided concurrently."
        ),
        batch=True,
        max_records=settings.send_batch_max_records,
        **subscriber_options(settings, "commands"),
    )
    async def on_send_emails(payloads: list[dict[str, Any]]) -> None:
        await sender.send_emails(payloads)
