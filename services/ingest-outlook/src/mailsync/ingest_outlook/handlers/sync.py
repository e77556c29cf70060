"""The worker: a mailbox's `MailboxChanged` hint → delta rounds per folder → `MessageIngested` events.

Hints of one mailbox share a Kafka partition, so this runs serially per mailbox. For each watched folder
(Inbox, Sent Items):

1. Read the stored link: a deltaLink (last round complete) or a nextLink (a round interrupted by a crash).
   With none, start a round filtered on `receivedDateTime ge <C7 cutoff>` (the earliest active connection's
   `connected_at`), with `changeType=created` and the `$select` the canonical event needs.
2. Page through it. Per page, messages already published for the mailbox (`outlook_published_messages`)
   are skipped (replays, updates, duplicate notifications: D2); the new ones are published (together, so
   their order within a page is not guaranteed), **then** recorded as published; **then** the page's next
   link is stored. A crash repeats at most the page in flight, whose duplicate events carry the same
   `event_id` (UUIDv5 of mailbox and message).
3. A dead sync state (410, `syncStateNotFound`, `resyncRequired`) drops the link and restarts the folder
   from the C7 cutoff: a bounded full resync (Graph caps a filtered round at 5,000 messages) that publishes
   only what was never published.

Push hints are coalesced: a hint received (less `COALESCE_MARGIN`) before the start of the mailbox's last
complete sync is acknowledged without work, since that sync already saw the change; a burst of
notifications costs one delta round, not one per notification.

Lifecycle hints act first: `reauthorizationRequired` force-refreshes the token (a revoked grant moves the
connection to `needs_reauth`) and renews the subscription, `subscriptionRemoved` recreates it; then (and for
`missed`) the folders are synced. A hint for a mailbox no active connection reads is acknowledged and
dropped (C5, C6); `NeedsReauthError` likewise (the connection just moved to `needs_reauth` and published
it). Graph 429/5xx are `TransientError` (retried, then redelivered); other Graph 4xx are `PermanentError`
(dead-lettered with the Graph error code).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from mailsync.common.blobs import BlobStore
from mailsync.common.contracts import (
    INLINE_BODY_MAX_BYTES,
    MESSAGES_INGESTED,
    AttachmentMeta,
    MailboxChanged,
    MessageBody,
    MessageIngested,
)
from mailsync.common.delivery import PermanentError
from mailsync.common.kafka import EventPublisher
from mailsync.common.logs import log_context
from mailsync.ingest_outlook.adapters.connection_store import ConnectionStore
from mailsync.ingest_outlook.adapters.graph_client import (
    DeltaExpiredError,
    GraphClient,
    GraphError,
    TokenSource,
)
from mailsync.ingest_outlook.adapters.mailbox_store import MailboxStore
from mailsync.ingest_outlook.domain.connections import Connection
from mailsync.ingest_outlook.domain.messages import (
    MESSAGE_FIELDS,
    AttachmentPolicy,
    address,
    addresses,
    body_parts,
    graph_time,
    parse_graph_time,
    should_ingest,
    snippet,
    threading_headers,
)
from mailsync.ingest_outlook.domain.subscriptions import FOLDERS
from mailsync.ingest_outlook.domain.watchdog import WatchdogPolicy
from mailsync.ingest_outlook.handlers.credentials import Credentials, NeedsReauthError, NotActiveError
from mailsync.ingest_outlook.handlers.subscriptions import Subscriptions
from mailsync.ingest_outlook.metrics import IngestMetrics

logger = logging.getLogger(__name__)

_EVENT_NAMESPACE = uuid.UUID("5b0f3c1e-8d2a-4e7b-9a61-3c4d2e1f0a97")
_SENT = "SentItems"
COALESCE_MARGIN = timedelta(seconds=1)
"""Slack for clock differences between the instance that received a notification and the one syncing."""


@dataclass
class MailboxSync:
    """Handles `MailboxChanged` hints of Outlook mailboxes."""

    connections: ConnectionStore
    mailboxes: MailboxStore
    blobs: BlobStore
    graph: GraphClient
    credentials: Credentials
    subscriptions: Subscriptions
    publisher: EventPublisher
    metrics: IngestMetrics
    attachment_policy: AttachmentPolicy
    page_size: int = 50
    watchdog: WatchdogPolicy = field(default_factory=WatchdogPolicy)
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    jitter: Callable[[], float] = random.random

    async def handle(self, hint: MailboxChanged) -> None:
        """Sync the hinted mailbox; see the module docstring for what is acked when."""
        if hint.provider != "outlook":
            return  # ingest-gmail's hint on the shared topic
        active = await self.connections.active_for_mailbox(hint.mailbox_id)
        if not active:
            logger.info(
                "hint for a mailbox no active connection reads", extra={"mailbox_id": hint.mailbox_id}
            )
            return
        if hint.source == "push":
            last_started = await self.mailboxes.last_sync_started(hint.mailbox_id)
            if last_started is not None and hint.received_at < last_started - COALESCE_MARGIN:
                # A complete sync began after Graph notified this change, so it already saw it.
                self.metrics.hints_coalesced.inc()
                return
        try:
            with log_context(mailbox_id=hint.mailbox_id, connection_id=active[0].connection_id):
                await self._handle(hint, active)
        except (NeedsReauthError, NotActiveError):
            logger.info("connection lost its grant during sync", extra={"mailbox_id": hint.mailbox_id})
        except GraphError as error:
            raise PermanentError(f"graph_{error.code or error.status}", str(error)) from error

    async def _handle(self, hint: MailboxChanged, active: list[Connection]) -> None:
        connection = active[0]
        if hint.source == "lifecycle" and hint.subscription_id:
            record = await self.mailboxes.subscription(hint.subscription_id)
            if hint.change_type == "reauthorizationRequired":
                # Graph sends it when the grant is about to lapse or was revoked: prove the grant first, so
                # a revoked one is noticed now (C6) rather than when the cached access token expires.
                await self.credentials.access_token(connection, force_refresh=True)
                if record is not None:
                    await self.subscriptions.renew(record, connection)
            elif record is not None and hint.change_type == "subscriptionRemoved":
                await self.subscriptions.recreate(record, connection)
        if hint.source != "push":
            try:
                await self.subscriptions.ensure(connection)
            except GraphError:
                # Syncing does not depend on it; the maintenance loop retries the subscription.
                self.metrics.subscriptions.labels("create", "failed").inc()
                logger.warning("could not subscribe the mailbox", extra={"mailbox_id": hint.mailbox_id})
        started = self.now()
        cutoff = min(c.connected_at for c in active)
        token = self.credentials.token_source(connection)
        connection_ids = tuple(c.connection_id for c in active)
        for folder in FOLDERS:
            await self._sync_folder(connection, token, folder, cutoff, connection_ids)
        await self.mailboxes.sync_completed(
            hint.mailbox_id, started, self.watchdog.due_at(self.now(), self.jitter())
        )
        await self.connections.mark_synced(hint.mailbox_id, self.now())

    async def _sync_folder(
        self,
        connection: Connection,
        token: TokenSource,
        folder: str,
        cutoff: datetime,
        connection_ids: tuple[str, ...],
    ) -> None:
        mailbox_id = connection.mailbox_id
        link = await self.mailboxes.cursor(mailbox_id, folder) or self._first_link(connection, folder, cutoff)
        resynced = False
        while True:
            try:
                page = await self.graph.delta_page(mailbox_id, token, link, self.page_size)
            except DeltaExpiredError:
                if resynced:
                    raise
                resynced = True
                self.metrics.resyncs.labels("sync_state_not_found").inc()
                logger.warning("delta state gone; resyncing folder", extra={"mailbox_id": mailbox_id})
                await self.mailboxes.drop_cursor(mailbox_id, folder)
                link = self._first_link(connection, folder, cutoff)
                continue
            items = [i for i in page.get("value", []) if isinstance(i, dict) and isinstance(i.get("id"), str)]
            fresh = [i for i in items if should_ingest(i, cutoff)]
            done = await self.mailboxes.published(mailbox_id, (i["id"] for i in fresh))
            new = [item for item in fresh if item["id"] not in done]
            events = [await self._event(connection, token, folder, item, connection_ids) for item in new]
            # The page's events are in flight together (one producer batch), then recorded together.
            await asyncio.gather(
                *(self.publisher.publish(MESSAGES_INGESTED, e) for e in events if e is not None)
            )
            for event in events:
                if event is not None:
                    self.metrics.messages_published.labels(event.direction).inc()
                    logger.debug(
                        "message ingested",
                        extra={
                            "provider_message_id": event.provider_message_id,
                            "event_id": str(event.event_id),
                            "internet_message_id": event.internet_message_id,
                            "direction": event.direction,
                        },
                    )
            await self.mailboxes.mark_published(mailbox_id, [item["id"] for item in new], self.now())
            next_link, delta_link = page.get("@odata.nextLink"), page.get("@odata.deltaLink")
            if isinstance(next_link, str):
                await self.mailboxes.save_cursor(mailbox_id, folder, next_link, complete=False)
                link = next_link
            elif isinstance(delta_link, str):
                await self.mailboxes.save_cursor(mailbox_id, folder, delta_link, complete=True)
                return
            else:
                raise PermanentError("graph_delta_without_link", f"{folder} page had no next or delta link")

    def _first_link(self, connection: Connection, folder: str, cutoff: datetime) -> str:
        query = urlencode(
            {
                "$select": ",".join(MESSAGE_FIELDS),
                "$filter": f"receivedDateTime ge {graph_time(cutoff)}",
                "changeType": "created",
            }
        )
        return self.graph.delta_url(connection.graph_user_id, folder, query)

    async def _event(
        self,
        connection: Connection,
        token: TokenSource,
        folder: str,
        item: Mapping[str, Any],
        connection_ids: tuple[str, ...],
    ) -> MessageIngested | None:
        sender = address(item.get("from")) or address(item.get("sender"))
        received = parse_graph_time(item.get("receivedDateTime"))
        if sender is None or received is None:
            logger.warning("message without a sender or date skipped", extra={"message_id": item["id"]})
            return None
        sent = parse_graph_time(item.get("sentDateTime")) or received
        in_reply_to, references, headers = threading_headers(item.get("internetMessageHeaders") or [])
        outbound = folder == _SENT
        internet_message_id = item.get("internetMessageId")
        return MessageIngested(
            event_id=uuid.uuid5(_EVENT_NAMESPACE, f"{connection.mailbox_id}|{item['id']}"),
            provider="outlook",
            mailbox_id=connection.mailbox_id,
            mailbox_address=connection.email_address,
            connection_ids=connection_ids,
            provider_message_id=item["id"],
            provider_thread_id=item.get("conversationId") or item["id"],
            internet_message_id=internet_message_id
            if isinstance(internet_message_id, str) and internet_message_id
            else None,
            in_reply_to=in_reply_to,
            references=references,
            subject=str(item.get("subject") or "")[:998],
            from_=sender,
            to=addresses(item.get("toRecipients")),
            cc=addresses(item.get("ccRecipients")),
            bcc=addresses(item.get("bccRecipients")),
            reply_to=addresses(item.get("replyTo")),
            direction="outbound" if outbound else "inbound",
            sent_by_owner=outbound or sender.normalized == connection.email_address.lower(),
            sent_at=sent,
            received_at=received,
            folders=(folder,),
            snippet=snippet(item),
            body=await self._body(item),
            attachments=await self._attachments(connection, token, item)
            if item.get("hasAttachments")
            else (),
            headers=headers,
        )

    async def _body(self, item: Mapping[str, Any]) -> MessageBody:
        text, html = body_parts(item)
        parts: dict[str, Any] = {}
        for name, value, mime in (("text", text, "text/plain"), ("html", html, "text/html")):
            if value is None:
                continue
            encoded = value.encode()
            if len(encoded) <= INLINE_BODY_MAX_BYTES:
                parts[name] = value
            else:
                parts[f"{name}_blob"] = await self.blobs.put(encoded, f"{mime}; charset=utf-8")
        return MessageBody(**parts)

    async def _attachments(
        self, connection: Connection, token: TokenSource, item: Mapping[str, Any]
    ) -> tuple[AttachmentMeta, ...]:
        listed = await self.graph.attachments(
            connection.mailbox_id, token, connection.graph_user_id, item["id"]
        )
        result: list[AttachmentMeta] = []
        for attachment in listed:
            if not isinstance(attachment, dict):
                continue
            name = str(attachment.get("name") or "")[:1024]
            content_type = str(attachment.get("contentType") or "application/octet-stream")[:255]
            size = int(attachment.get("size") or 0)
            blob = None
            content_bytes = attachment.get("contentBytes")
            if self.attachment_policy.allows(name, size) and isinstance(content_bytes, str):
                try:
                    content = base64.b64decode(content_bytes, validate=True)
                except (binascii.Error, ValueError):
                    content = None
                if content is not None:
                    blob = await self.blobs.put(content, content_type)
                    size = len(content)
            content_id = attachment.get("contentId")
            result.append(
                AttachmentMeta(
                    filename=name,
                    content_type=content_type,
                    size_bytes=max(size, 0),
                    content_id=content_id.strip("<>") if isinstance(content_id, str) and content_id else None,
                    is_inline=bool(attachment.get("isInline")),
                    provider_attachment_id=str(attachment["id"]) if attachment.get("id") else None,
                    blob=blob,
                )
            )
        return tuple(result)
