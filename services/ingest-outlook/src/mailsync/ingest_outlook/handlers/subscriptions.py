"""Graph subscriptions of a mailbox: create (through Graph's validation handshake), renew, recreate, delete.

One subscription per watched folder (Inbox, Sent Items) per mailbox, shared by every connection to it (M1),
created with `changeType=created`, a `lifecycleNotificationUrl`, the configured lifetime (at most 10,080
minutes) and a fresh random `clientState` of 32 bytes, of which only the SHA-256 is stored. Renewal runs
from the maintenance loop at each record's `renew_at` (lead + jitter, see `domain.subscriptions`); a renewal
answered 404 means Graph dropped the subscription, so it is recreated and the mailbox resynced.

Graph calls use the token of one active connection of the mailbox; with none (all disconnected or awaiting
re-authentication) nothing is called.
"""

from __future__ import annotations

import hashlib
import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from mailsync.common.delivery import TransientError
from mailsync.ingest_outlook.adapters.connection_store import ConnectionStore
from mailsync.ingest_outlook.adapters.graph_client import GraphClient, GraphError
from mailsync.ingest_outlook.adapters.mailbox_store import MailboxStore, SubscriptionRecord
from mailsync.ingest_outlook.domain.connections import Connection
from mailsync.ingest_outlook.domain.messages import graph_time, parse_graph_time
from mailsync.ingest_outlook.domain.subscriptions import FOLDERS, RenewalPolicy, resource_for
from mailsync.ingest_outlook.handlers.credentials import Credentials, NeedsReauthError, NotActiveError
from mailsync.ingest_outlook.metrics import IngestMetrics

logger = logging.getLogger(__name__)


def client_state_digest(client_state: str) -> str:
    """What is stored of a clientState secret and compared (in constant time) on each notification."""
    return hashlib.sha256(client_state.encode()).hexdigest()


@dataclass
class Subscriptions:
    """Keeps every read mailbox subscribed."""

    connections: ConnectionStore
    mailboxes: MailboxStore
    graph: GraphClient
    credentials: Credentials
    metrics: IngestMetrics
    policy: RenewalPolicy
    notification_url: str
    lifecycle_url: str
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    jitter: Callable[[], float] = random.random

    async def ensure(self, connection: Connection) -> None:
        """Create the subscriptions the connection's mailbox lacks (idempotent).

        The mailbox is marked due for a subscription check (`subscribe_at`) before any create and unmarked
        once none is missing, so a create that fails (or a crash) is retried by the maintenance loop.
        """
        existing = {record.folder for record in await self.mailboxes.subscriptions_of(connection.mailbox_id)}
        missing = [folder for folder in FOLDERS if folder not in existing]
        if not missing:
            return
        await self.mailboxes.set_subscribe(connection.mailbox_id, self.now())
        for folder in missing:
            await self._create(connection, folder)
        await self.mailboxes.set_subscribe(connection.mailbox_id, None)

    async def _create(self, connection: Connection, folder: str) -> None:
        client_state = secrets.token_urlsafe(32)
        requested = self.policy.expiry(self.now())
        created = await self.graph.create_subscription(
            connection.mailbox_id,
            self.credentials.token_source(connection),
            {
                "changeType": "created",
                "notificationUrl": self.notification_url,
                "lifecycleNotificationUrl": self.lifecycle_url,
                "resource": resource_for(connection.graph_user_id, folder),
                "expirationDateTime": graph_time(requested),
                "clientState": client_state,
                "latestSupportedTlsVersion": "v1_2",
            },
        )
        expires_at = parse_graph_time(created.get("expirationDateTime")) or requested
        await self.mailboxes.add_subscription(
            SubscriptionRecord(
                subscription_id=str(created["id"]),
                mailbox_id=connection.mailbox_id,
                email_address=connection.email_address,
                folder=folder,
                client_state_sha256=client_state_digest(client_state),
                expires_at=expires_at,
                renew_at=self.policy.renew_at(expires_at, self.jitter()),
            )
        )
        self.metrics.subscriptions.labels("create", "ok").inc()
        logger.info(
            "subscription created",
            extra={"mailbox_id": connection.mailbox_id, "folder": folder, "subscription_id": created["id"]},
        )

    async def renew(self, record: SubscriptionRecord, connection: Connection) -> bool:
        """Extend a subscription (also answers `reauthorizationRequired`); recreate it when Graph lost it.

        Returns True when the subscription had to be recreated (the caller resyncs the mailbox).
        """
        expires_at = self.policy.expiry(self.now())
        try:
            await self.graph.renew_subscription(
                record.mailbox_id,
                self.credentials.token_source(connection),
                record.subscription_id,
                graph_time(expires_at),
            )
        except GraphError as error:
            if error.status != 404:
                raise
            await self.recreate(record, connection)
            return True
        await self.mailboxes.renewed(
            record.subscription_id, expires_at, self.policy.renew_at(expires_at, self.jitter())
        )
        self.metrics.subscriptions.labels("renew", "ok").inc()
        return False

    async def recreate(self, record: SubscriptionRecord, connection: Connection) -> None:
        """Replace a subscription Graph removed (`subscriptionRemoved`, or 404 on renewal)."""
        await self.mailboxes.remove_subscription(record.subscription_id, self.now())
        await self._create(connection, record.folder)
        self.metrics.subscriptions.labels("recreate", "ok").inc()

    async def remove_all(self, mailbox_id: str, connection: Connection | None) -> None:
        """Delete the mailbox's subscriptions at Graph (when a grant is available) and locally (C5, C4)."""
        for record in await self.mailboxes.subscriptions_of(mailbox_id):
            if connection is not None:
                try:
                    await self.graph.delete_subscription(
                        mailbox_id, self.credentials.token_source(connection), record.subscription_id
                    )
                except (GraphError, TransientError, NeedsReauthError, NotActiveError):
                    # The record goes anyway: notifications of an unknown subscription are dropped, and
                    # Graph expires the subscription on its own.
                    logger.warning(
                        "could not delete a subscription at Graph",
                        extra={"mailbox_id": mailbox_id, "subscription_id": record.subscription_id},
                    )
            await self.mailboxes.remove_subscription(record.subscription_id, self.now())
            self.metrics.subscriptions.labels("delete", "ok").inc()

    async def maintain(self, limit: int = 100) -> None:
        """One maintenance round: renew what is due; subscribe the mailboxes that may lack subscriptions.

        Both sets come from one indexed query each (`renew_at` of subscriptions, `subscribe_at` of
        mailboxes), earliest first and at most `limit` per round: no scan of every mailbox.
        """
        now = self.now()
        for record in await self.mailboxes.due_renewals(now, limit):
            active = await self.connections.active_for_mailbox(record.mailbox_id)
            if not active:
                continue
            try:
                await self.renew(record, active[0])
            except (GraphError, TransientError, NeedsReauthError, NotActiveError):
                self.metrics.subscriptions.labels("renew", "failed").inc()
                logger.warning("subscription renewal failed", extra={"mailbox_id": record.mailbox_id})
        for mailbox_id in await self.mailboxes.due_subscribe(now, limit):
            active = await self.connections.active_for_mailbox(mailbox_id)
            if not active:
                # Nobody reads it (disconnected or awaiting re-authentication): a reconnect or the
                # re-authentication's catch-up hint subscribes it again.
                await self.mailboxes.set_subscribe(mailbox_id, None)
                continue
            try:
                await self.ensure(active[0])
            except (GraphError, TransientError, NeedsReauthError, NotActiveError):
                self.metrics.subscriptions.labels("create", "failed").inc()
                logger.warning("subscription creation failed", extra={"mailbox_id": mailbox_id})
                continue
            await self.mailboxes.set_subscribe(mailbox_id, None)
