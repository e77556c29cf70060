"""Kafka entry point of ingest-gmail: the mailbox-changed hints, serialised per mailbox by the key.

Acknowledgement, retries and dead letters are the broker's delivery middleware's (see
``mailsync.common.delivery``): a provider ``TransientError`` retries the hint, a ``PermanentError`` sends it
to ``mailsync.ingest.mailbox-changed.v1.dlt`` with its reason.
"""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from mailsync.common.contracts import MAILBOX_CHANGED, MailboxChanged
from mailsync.common.kafka import subscriber_options
from mailsync.common.settings import ServiceSettings
from mailsync.ingest_gmail.handlers.sync import MailboxSync


def register_consumers(
    broker: KafkaBroker, settings: ServiceSettings, sync: MailboxSync, *, consumers: int
) -> None:
    """Subscribe the worker to the hints of Gmail mailboxes with ``consumers`` consumers in the group.

    Each consumer owns whole partitions and commits after its work, so mailboxes of different partitions
    sync concurrently while one mailbox's hints stay serialised.
    """

    @broker.subscriber(
        settings.topic(MAILBOX_CHANGED), **subscriber_options(settings, "sync"), max_workers=consumers
    )
    async def on_mailbox_changed(hint: MailboxChanged) -> None:
        if hint.provider == "gmail":  # the topic is shared with ingest-outlook
            await sync.sync_mailbox(hint)
