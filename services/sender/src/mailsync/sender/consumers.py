"""Kafka entry points of the sender: decode, call a handler; acks, retries and dead letters are the broker's.

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
from mailsync.common.settings import ServiceSettings
from mailsync.sender.handlers import Sender


def register_consumers(broker: KafkaBroker, settings: ServiceSettings, sender: Sender) -> None:
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
            "`sending.send_completed` is published on the results topic per request_id."
        ),
        **subscriber_options(settings, "commands"),
    )
    async def on_send_email(payload: dict[str, Any]) -> None:
        await sender.send_email(payload)
