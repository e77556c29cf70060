"""The watchdog: a delta sync for mailboxes whose notifications went silent.

Graph's `missed` lifecycle event covers the deliveries Graph knows it dropped; the watchdog covers the rest
(a subscription lost without a lifecycle event, a notification lost after Graph's 2xx, a stalled partition).
Each complete sync stores the mailbox's `watchdog_at` (see `domain.watchdog`); a maintenance round reads the
due mailboxes with one indexed query (earliest first, at most `batch` per round, so a backlog is spread over
rounds) and publishes `MailboxChanged(source="watchdog")` for each mailbox an active connection reads. The
mailbox's `watchdog_at` then moves one more period ahead, so a hint the worker cannot act on is not repeated
every round; the sync it triggers sets it again. Mailboxes no active connection reads leave the watchdog.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from mailsync.common.contracts import MAILBOX_CHANGED, MailboxChanged
from mailsync.common.kafka import EventPublisher
from mailsync.ingest_outlook.adapters.connection_store import ConnectionStore
from mailsync.ingest_outlook.adapters.mailbox_store import MailboxStore
from mailsync.ingest_outlook.domain.watchdog import WatchdogPolicy
from mailsync.ingest_outlook.metrics import IngestMetrics

logger = logging.getLogger(__name__)


@dataclass
class Watchdog:
    """Publishes watchdog hints for mailboxes due for one."""

    connections: ConnectionStore
    mailboxes: MailboxStore
    publisher: EventPublisher
    metrics: IngestMetrics
    policy: WatchdogPolicy
    batch: int = 100
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    jitter: Callable[[], float] = random.random

    async def run_round(self) -> int:
        """Hint the due mailboxes; returns how many hints were published."""
        now = self.now()
        published = 0
        for mailbox_id in await self.mailboxes.due_watchdog(now, self.batch):
            active = await self.connections.active_for_mailbox(mailbox_id)
            if not active:
                await self.mailboxes.set_watchdog(mailbox_id, None)
                continue
            await self.publisher.publish(
                MAILBOX_CHANGED,
                MailboxChanged(
                    provider="outlook",
                    mailbox_id=mailbox_id,
                    email_address=active[0].email_address,
                    source="watchdog",
                    received_at=now,
                ),
            )
            await self.mailboxes.set_watchdog(mailbox_id, self.policy.due_at(now, self.jitter()))
            self.metrics.watchdog_hints.inc()
            published += 1
            logger.info("watchdog sync requested", extra={"mailbox_id": mailbox_id})
        return published
