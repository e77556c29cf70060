"""Kafka entry point of ingest-outlook: the sync worker on the shared mailbox-changed topic.

Consumer group `mailsync.ingest-outlook.sync`; ingest-gmail reads the same topic in its own group, and each
service drops the other provider's hints at once. Acknowledgement, retries and dead letters are the broker's
delivery middleware's (see `mailsync.common.delivery`).
"""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from mailsync.common.contracts import MAILBOX_CHANGED, MailboxChanged
from mailsync.common.kafka import subscriber_options
from mailsync.common.settings import ServiceSettings
from mailsync.ingest_outlook.handlers.sync import MailboxSync


def register_consumers(broker: KafkaBroker, settings: ServiceSettings, sync: MailboxSync) -> None:
    """Subscribe the worker to the hint topic."""

    @broker.subscriber(settings.topic(MAILBOX_CHANGED), **subscriber_options(settings, "sync"))
    async def on_mailbox_changed(event: MailboxChanged) -> None:
        await sync.handle(event)
