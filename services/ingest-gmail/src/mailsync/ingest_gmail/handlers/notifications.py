"""Notifications -> hints, and the maintenance loop (watch renewal and the watchdog).

A Gmail notification only says "this mailbox changed"; it becomes a ``MailboxChanged`` hint on Kafka keyed by
the mailbox, and the worker does the rest. A notification for a mailbox no active connection reads is
acknowledged and dropped (counted): Pub/Sub would otherwise redeliver it forever.

Maintenance, every ``maintenance_interval``: renew due watches (each mailbox's renewal is leased, so several
instances never renew the same mailbox together, and spread by a per-mailbox offset), and publish a
``watchdog`` hint for watched mailboxes silent longer than ``stale_after`` (notifications can be dropped by
Gmail), so a lapsed watch never silently stops sync.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from mailsync.common.contracts import MAILBOX_CHANGED, MailboxChanged, MailboxChangeSource
from mailsync.common.kafka import EventPublisher
from mailsync.ingest_gmail.adapters.connection_store import ConnectionStore
from mailsync.ingest_gmail.adapters.gmail_client import PROVIDER_ERRORS
from mailsync.ingest_gmail.adapters.mailbox_store import Mailbox, MailboxStore
from mailsync.ingest_gmail.domain.connections import mailbox_id_for
from mailsync.ingest_gmail.domain.notifications import GmailNotification
from mailsync.ingest_gmail.handlers.connections import ConnectionManager
from mailsync.ingest_gmail.handlers.credentials import Clock, Credentials, ReauthRequiredError
from mailsync.ingest_gmail.metrics import IngestMetrics

logger = logging.getLogger(__name__)

_RENEWAL_LEASE = timedelta(minutes=10)
_BATCH = 500


class NotificationIntake:
    """Turns verified notifications into hints."""

    def __init__(
        self,
        *,
        connections: ConnectionStore,
        mailboxes: MailboxStore,
        publisher: EventPublisher,
        metrics: IngestMetrics,
        now: Clock,
    ) -> None:
        self._connections = connections
        self._mailboxes = mailboxes
        self._publisher = publisher
        self._metrics = metrics
        self._now = now

    async def accept(self, notification: GmailNotification, source: MailboxChangeSource) -> bool:
        """Publish a hint; False (dropped, counted) when no active connection reads the mailbox."""
        mailbox_id = mailbox_id_for(notification.email_address)
        mailbox = await self._mailboxes.get(mailbox_id)
        if mailbox is None:
            self._metrics.notifications_dropped.labels("unknown_mailbox").inc()
            return False
        if await self._connections.count_active_for_mailbox(mailbox_id) == 0:  # C5, C6
            self._metrics.notifications_dropped.labels("no_active_connection").inc()
            return False
        now = self._now()
        await self._mailboxes.record_notification(mailbox_id, now)
        await self.publish_hint(mailbox, source, notification.history_id)
        return True

    async def publish_hint(
        self, mailbox: Mailbox, source: MailboxChangeSource, history_id: int | None
    ) -> None:
        """Publish one ``MailboxChanged`` for ``mailbox``."""
        await self._publisher.publish(
            MAILBOX_CHANGED,
            MailboxChanged(
                provider="gmail",
                mailbox_id=mailbox.mailbox_id,
                email_address=mailbox.email_address,
                source=source,
                history_id=history_id,
                received_at=self._now(),
            ),
        )
        self._metrics.hints_published.labels(source).inc()


class Maintenance:
    """Watch renewal and the watchdog; :meth:`run_once` is one round, :meth:`run` loops."""

    def __init__(
        self,
        *,
        connections: ConnectionStore,
        mailboxes: MailboxStore,
        manager: ConnectionManager,
        credentials: Credentials,
        intake: NotificationIntake,
        metrics: IngestMetrics,
        stale_after: timedelta,
        now: Clock,
    ) -> None:
        self._connections = connections
        self._mailboxes = mailboxes
        self._manager = manager
        self._credentials = credentials
        self._intake = intake
        self._metrics = metrics
        self._stale_after = stale_after
        self._now = now

    async def run(self, interval_seconds: float) -> None:
        """Loop until cancelled; one failed round is logged and the next one runs."""
        while True:
            try:
                await self.run_once()
            except Exception:
                logger.exception("maintenance round failed")
            await asyncio.sleep(interval_seconds)

    async def run_once(self) -> None:
        """Renew due watches, then sync silent mailboxes."""
        for _ in range(_BATCH):
            now = self._now()
            mailbox = await self._mailboxes.claim_due_renewal(now, now + _RENEWAL_LEASE)
            if mailbox is None:
                break
            await self._renew(mailbox)
        for _ in range(_BATCH):
            now = self._now()
            stale = await self._mailboxes.claim_stale(now - self._stale_after, now)
            if stale is None:
                break
            if await self._connections.count_active_for_mailbox(stale.mailbox_id):
                self._metrics.watchdog_hints.inc()
                await self._intake.publish_hint(stale, "watchdog", None)

    async def _renew(self, mailbox: Mailbox) -> None:
        for record in await self._connections.active_for_mailbox(mailbox.mailbox_id):
            try:
                token, _ = await self._credentials.access_token(record)
            except ReauthRequiredError:
                continue
            except PROVIDER_ERRORS:
                logger.warning(
                    "token refresh failed during renewal", extra={"mailbox_id": mailbox.mailbox_id}
                )
                return  # the lease expires and the renewal is tried again
            await self._manager.watch(mailbox.mailbox_id, token)
            return
        await self._mailboxes.set_watch(mailbox.mailbox_id, None, None)  # nobody reads it any more
