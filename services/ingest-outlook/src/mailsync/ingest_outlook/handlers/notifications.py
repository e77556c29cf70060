"""Graph change and lifecycle notifications → `MailboxChanged` hints on Kafka (answered within 3 s).

Each item is accepted only when its `subscriptionId` is one mailsync created and its `clientState` hashes to
the stored digest (compared with `hmac.compare_digest`). Rejected items are counted by reason
(`unknown_subscription`, `wrong_client_state`) and dropped; Graph's guidance is to still acknowledge them, so
a forged or stale notification never triggers work or retries. Accepted items produce one hint per mailbox
(a batch naming a mailbox many times gives one hint): `source="push"` for change notifications, and
`source="lifecycle"` with the event name in `change_type` for lifecycle ones, which the worker acts on
(`reauthorizationRequired` → renew, `subscriptionRemoved` → recreate and resync, `missed` → resync).

The hint is the only work done in the request. If Kafka does not take it within the configured timeout the
request fails (503) and Graph redelivers.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from mailsync.common.contracts import MAILBOX_CHANGED, MailboxChanged
from mailsync.common.kafka import EventPublisher
from mailsync.ingest_outlook.adapters.mailbox_store import MailboxStore
from mailsync.ingest_outlook.domain.notifications import Notification
from mailsync.ingest_outlook.domain.subscriptions import LIFECYCLE_EVENTS
from mailsync.ingest_outlook.handlers.subscriptions import client_state_digest
from mailsync.ingest_outlook.metrics import IngestMetrics

Endpoint = Literal["change", "lifecycle"]


@dataclass
class NotificationIntake:
    """Verifies notifications and publishes hints."""

    mailboxes: MailboxStore
    publisher: EventPublisher
    metrics: IngestMetrics
    publish_timeout: float = 2.0
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def accept(self, items: list[Notification], endpoint: Endpoint) -> int:
        """Publish the hints of the genuine items; returns how many items were accepted.

        Raises `TimeoutError` or the broker's error when a hint could not be published.
        """
        records = await self.mailboxes.subscriptions_by_id(item.subscription_id for item in items)
        hints: dict[tuple[str, str | None], MailboxChanged] = {}
        accepted = 0
        for item in items:
            record = records.get(item.subscription_id)
            outcome = "accepted"
            if record is None:
                outcome = "unknown_subscription"
            elif item.client_state is None or not hmac.compare_digest(
                client_state_digest(item.client_state), record.client_state_sha256
            ):
                outcome = "wrong_client_state"
            elif endpoint == "lifecycle" and item.lifecycle_event not in LIFECYCLE_EVENTS:
                outcome = "unknown_lifecycle_event"
            self.metrics.notifications.count(endpoint, outcome)
            if record is None or outcome != "accepted":
                continue
            accepted += 1
            lifecycle = endpoint == "lifecycle"
            key = (record.mailbox_id, f"{item.subscription_id}:{item.lifecycle_event}" if lifecycle else None)
            hints.setdefault(
                key,
                MailboxChanged(
                    provider="outlook",
                    mailbox_id=record.mailbox_id,
                    email_address=record.email_address,
                    source="lifecycle" if lifecycle else "push",
                    subscription_id=item.subscription_id,
                    change_type=item.lifecycle_event if lifecycle else item.change_type,
                    resource=None if lifecycle else item.resource,
                    received_at=self.now(),
                ),
            )
        if hints:
            async with asyncio.timeout(self.publish_timeout):
                await asyncio.gather(*(self.publisher.publish(MAILBOX_CHANGED, h) for h in hints.values()))
        return accepted
