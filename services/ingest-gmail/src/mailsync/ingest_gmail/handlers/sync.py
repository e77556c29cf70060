"""The worker: one ``MailboxChanged`` hint -> the mailbox's new messages as ``MessageIngested`` events.

Runs serialised per mailbox (the hint topic is keyed by mailbox). Steps:

1. Coalesce: a push/pull hint whose ``historyId`` is at or below the stored cursor is a no-op (duplicate or
   out-of-order notifications cost one database read).
2. Take a token from the mailbox's active connections (C5: none -> nothing happens; C6: a connection whose
   refresh fails with ``invalid_grant`` moves to ``needs_reauth`` and the next one is tried).
3. ``history.list`` (``messageAdded``) from the stored ``historyId``, page by page. For each new message:
   skip it if already published (the per-mailbox published set), fetch it (``format=raw``), skip drafts and
   mail older than the connection (C7), store large parts in GridFS, publish the event, then remember it as
   published. After each page the cursor advances (only forward); so a crash repeats at most one page, whose
   already-published messages are skipped.
4. A 404 (stale cursor) starts a bounded gap recovery: ``messages.list`` with ``after:`` from the last synced
   message (minus an overlap, never before the connection), oldest first, deduplicated by the published set;
   then the cursor jumps to the profile's ``historyId`` read before listing.

Errors: provider ``TransientError`` (5xx, 429, rate-limit 403, network) propagates, and the delivery
middleware retries the hint with backoff honouring ``Retry-After``; everything done so far is idempotent.

Logs: every line of a sync carries the mailbox and the connection whose token it uses (``log_context``), and
each published message is logged (DEBUG) with its provider and event ids.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from mailsync.common.blobs import BlobStore
from mailsync.common.contracts import (
    INLINE_BODY_MAX_BYTES,
    MESSAGES_INGESTED,
    Address,
    AttachmentMeta,
    MailboxChanged,
    MessageBody,
    MessageIngested,
)
from mailsync.common.delivery import PermanentError
from mailsync.common.kafka import EventPublisher
from mailsync.common.logs import log_context
from mailsync.ingest_gmail.adapters.connection_store import ConnectionRecord, ConnectionStore
from mailsync.ingest_gmail.adapters.gmail_client import (
    AccessTokenRejectedError,
    GmailClient,
    GmailNotFoundError,
)
from mailsync.ingest_gmail.adapters.mailbox_store import Mailbox, MailboxStore
from mailsync.ingest_gmail.domain.messages import (
    ParsedAddress,
    direction_of,
    from_epoch_ms,
    is_before_cutoff,
    is_draft,
    parse_message,
    snippet_text,
)
from mailsync.ingest_gmail.handlers.credentials import Clock, Credentials, ReauthRequiredError
from mailsync.ingest_gmail.handlers.pacing import QuotaPacer
from mailsync.ingest_gmail.metrics import IngestMetrics

logger = logging.getLogger(__name__)

_EVENT_NAMESPACE = uuid.UUID("6f1c8a3e-2b7d-4c55-9a41-3d0e7f5b9c21")
_T = TypeVar("_T")


class _Session:
    """One sync's provider access: a token from the first usable connection, refreshed once on a 401."""

    def __init__(
        self, credentials: Credentials, records: list[ConnectionRecord], pacer: QuotaPacer, mailbox_id: str
    ) -> None:
        self._credentials = credentials
        self._pacer = pacer
        self._mailbox_id = mailbox_id
        self.records = records
        self.token = ""
        self.record: ConnectionRecord | None = None

    async def open(self) -> bool:
        while self.records:
            record = self.records[0]
            try:
                self.token, _ = await self._credentials.access_token(record)
            except ReauthRequiredError:
                self.records.pop(0)
                continue
            self.record = record
            return True
        return False

    async def call(self, method: str, operation: Callable[[str], Awaitable[_T]]) -> _T:
        """Run one Gmail call (``method`` names its quota cost), paced, refreshing the token once on 401."""
        await self._pacer.acquire(self._mailbox_id, method)
        try:
            return await operation(self.token)
        except AccessTokenRejectedError:
            if self.record is None:
                raise
            self.token, _ = await self._credentials.access_token(self.record, force_refresh=True)
            await self._pacer.acquire(self._mailbox_id, method)
            return await operation(self.token)


class MailboxSync:
    """Handles ``MailboxChanged`` hints; see the module docstring."""

    def __init__(
        self,
        *,
        connections: ConnectionStore,
        mailboxes: MailboxStore,
        blobs: BlobStore,
        gmail: GmailClient,
        credentials: Credentials,
        publisher: EventPublisher,
        metrics: IngestMetrics,
        recovery_overlap: timedelta,
        recovery_max_messages: int,
        pacer: QuotaPacer,
        prefetch: int,
        now: Clock,
    ) -> None:
        self._pacer = pacer
        self._prefetch = prefetch
        self._connections = connections
        self._mailboxes = mailboxes
        self._blobs = blobs
        self._gmail = gmail
        self._credentials = credentials
        self._publisher = publisher
        self._metrics = metrics
        self._overlap = recovery_overlap
        self._max_recovery = recovery_max_messages
        self._now = now

    async def sync_mailbox(self, hint: MailboxChanged) -> None:
        """Fetch and publish what changed since the stored cursor. Idempotent."""
        with log_context(mailbox_id=hint.mailbox_id):
            await self._sync(hint)

    async def _sync(self, hint: MailboxChanged) -> None:
        mailbox = await self._mailboxes.get(hint.mailbox_id)
        if mailbox is None:
            self._metrics.notifications_dropped.labels("unknown_mailbox").inc()
            return
        if hint.history_id is not None and hint.history_id <= mailbox.history_id:
            self._metrics.hints_coalesced.inc()
            return
        records = await self._connections.active_for_mailbox(mailbox.mailbox_id)
        session = _Session(self._credentials, list(records), self._pacer, mailbox.mailbox_id)
        if not await session.open():
            return  # C5/C6: no active grant reads this mailbox
        active = [r.connection for r in session.records]
        cutoff = min(c.connected_at for c in active)
        context = _Context(mailbox, tuple(c.connection_id for c in active), cutoff)
        connection_id = session.record.connection.connection_id if session.record else None
        with log_context(connection_id=connection_id):
            try:
                await self._follow_history(session, context)
            except GmailNotFoundError:
                await self._recover(session, context)

    async def _follow_history(self, session: _Session, context: _Context) -> None:
        cursor = context.mailbox.history_id
        page_token: str | None = None
        while True:
            start = cursor
            page = await session.call("history", partial(_history, self._gmail, start, page_token))
            last_record = cursor
            added: list[str] = []
            for record in page.get("history", []):
                last_record = max(last_record, int(record["id"]))
                added += [str(entry["message"]["id"]) for entry in record.get("messagesAdded", [])]
            await self._ingest_all(session, context, added)
            page_token = page.get("nextPageToken")
            advance_to = last_record if page_token else int(page.get("historyId", last_record))
            await self._mailboxes.advance(
                context.mailbox.mailbox_id,
                advance_to,
                synced_at=self._now(),
                last_message_at=context.last_message_at,
            )
            if not page_token:
                return

    async def _recover(self, session: _Session, context: _Context) -> None:
        """Bounded gap recovery after a 404 (see the module docstring)."""
        self._metrics.history_recoveries.inc()
        profile = await session.call("profile", self._gmail.profile)
        mailbox = context.mailbox
        since = max(
            context.cutoff,
            (mailbox.last_message_at or mailbox.last_synced_at or context.cutoff) - self._overlap,
        )
        query = f"after:{int(since.timestamp())}"
        ids: list[str] = []
        page_token: str | None = None
        while len(ids) < self._max_recovery:
            current = page_token
            page = await session.call("messages.list", partial(_list, self._gmail, query, current))
            ids += [str(m["id"]) for m in page.get("messages", [])]
            page_token = page.get("nextPageToken")
            if not page_token:
                break
        if len(ids) >= self._max_recovery:
            logger.error(
                "gap recovery hit its bound; older messages of the gap need an operator",
                extra={"mailbox_id": mailbox.mailbox_id, "bound": self._max_recovery},
            )
        logger.warning(
            "history cursor was stale; recovered the gap by date",
            extra={"mailbox_id": mailbox.mailbox_id, "since": since.isoformat(), "candidates": len(ids)},
        )
        await self._ingest_all(session, context, list(reversed(ids[: self._max_recovery])))  # oldest first
        await self._mailboxes.advance(
            mailbox.mailbox_id,
            int(profile["historyId"]),
            synced_at=self._now(),
            last_message_at=context.last_message_at,
        )

    async def _ingest_all(self, session: _Session, context: _Context, message_ids: list[str]) -> None:
        """Publish the new ones of ``message_ids`` in this order.

        Already-published ids are filtered with one query; fetches run ``prefetch`` ahead (in chunks) while
        events are still published strictly in order, each followed by its published mark.
        """
        fresh = [m for m in dict.fromkeys(message_ids) if m not in context.seen]
        context.seen.update(fresh)
        published = await self._mailboxes.published_among(context.mailbox.mailbox_id, fresh)
        todo = [m for m in fresh if m not in published]
        for start in range(0, len(todo), self._prefetch):
            chunk = todo[start : start + self._prefetch]
            try:
                async with asyncio.TaskGroup() as group:
                    fetches = [group.create_task(self._fetch(session, message_id)) for message_id in chunk]
            except ExceptionGroup as failures:
                # The delivery middleware classifies plain exceptions: surface one, a permanent one first.
                raise _decisive(failures) from None
            for fetched in fetches:
                message = fetched.result()
                if message is not None:
                    await self._ingest(context, *message)

    async def _fetch(self, session: _Session, message_id: str) -> tuple[dict[str, Any], bytes] | None:
        try:
            return await session.call("messages.get", partial(_get_raw, self._gmail, message_id))
        except GmailNotFoundError:
            self._metrics.messages_skipped.labels("deleted").inc()
            return None

    async def _ingest(self, context: _Context, resource: dict[str, Any], raw: bytes) -> None:
        mailbox_id = context.mailbox.mailbox_id
        message_id = str(resource["id"])
        labels = tuple(str(label) for label in resource.get("labelIds", []))
        internal_ms = int(resource.get("internalDate", "0"))
        if is_draft(labels):
            self._metrics.messages_skipped.labels("draft").inc()
            return
        if is_before_cutoff(internal_ms, context.cutoff):
            self._metrics.messages_skipped.labels("before_connection").inc()
            return
        event = await self._event(context, resource, raw, labels, internal_ms)
        await self._publisher.publish(MESSAGES_INGESTED, event)
        await self._mailboxes.mark_published(mailbox_id, message_id, self._now())
        self._metrics.messages_published.labels(event.direction).inc()
        logger.debug(
            "message ingested",
            extra={
                "provider_message_id": message_id,
                "event_id": str(event.event_id),
                "internet_message_id": event.internet_message_id,
                "direction": event.direction,
            },
        )
        context.last_message_at = max(context.last_message_at or event.received_at, event.received_at)

    async def _event(
        self,
        context: _Context,
        resource: dict[str, Any],
        raw: bytes,
        labels: tuple[str, ...],
        internal_ms: int,
    ) -> MessageIngested:
        parsed = parse_message(raw)
        mailbox = context.mailbox
        direction, sent_by_owner = direction_of(labels, parsed.from_, mailbox.email_address)
        received_at = from_epoch_ms(internal_ms)
        sender = parsed.from_ or ParsedAddress(email=mailbox.email_address, name=None)
        attachments = []
        for attachment in parsed.attachments:
            blob = await self._blobs.put(attachment.content, attachment.content_type)
            attachments.append(
                AttachmentMeta(
                    filename=attachment.filename,
                    content_type=attachment.content_type,
                    size_bytes=len(attachment.content),
                    content_id=attachment.content_id,
                    is_inline=attachment.is_inline,
                    blob=blob,
                )
            )
        message_id = str(resource["id"])
        return MessageIngested(
            event_id=uuid.uuid5(_EVENT_NAMESPACE, f"{mailbox.mailbox_id}:{message_id}"),
            provider="gmail",
            mailbox_id=mailbox.mailbox_id,
            mailbox_address=mailbox.email_address,
            connection_ids=context.connection_ids,
            provider_message_id=message_id,
            provider_thread_id=str(resource.get("threadId") or message_id),
            internet_message_id=parsed.message_id,
            in_reply_to=parsed.in_reply_to,
            references=parsed.references,
            subject=parsed.subject,
            from_=_address(sender),
            to=tuple(_address(a) for a in parsed.to),
            cc=tuple(_address(a) for a in parsed.cc),
            bcc=tuple(_address(a) for a in parsed.bcc),
            reply_to=tuple(_address(a) for a in parsed.reply_to),
            direction=direction,
            sent_by_owner=sent_by_owner,
            sent_at=parsed.date or received_at,
            received_at=received_at,
            folders=labels,
            snippet=snippet_text(str(resource.get("snippet", ""))),
            body=await self._body(parsed.text, parsed.html),
            attachments=tuple(attachments),
            headers=parsed.headers,
        )

    async def _body(self, text: str | None, html: str | None) -> MessageBody:
        parts: dict[str, Any] = {}
        for name, value, content_type in (("text", text, "text/plain"), ("html", html, "text/html")):
            if value is None:
                continue
            encoded = value.encode()
            if len(encoded) <= INLINE_BODY_MAX_BYTES:
                parts[name] = value
            else:
                parts[f"{name}_blob"] = await self._blobs.put(encoded, f"{content_type}; charset=utf-8")
        return MessageBody(**parts)


class _Context:
    """Per-sync state: the mailbox snapshot, the connections, the C7 cutoff, what this sync saw."""

    def __init__(self, mailbox: Mailbox, connection_ids: tuple[str, ...], cutoff: datetime) -> None:
        self.mailbox = mailbox
        self.connection_ids = connection_ids
        self.cutoff = cutoff
        self.seen: set[str] = set()
        self.last_message_at: datetime | None = None


async def _history(gmail: GmailClient, start: int, page_token: str | None, token: str) -> dict[str, Any]:
    return await gmail.history(token, start, page_token)


async def _get_raw(gmail: GmailClient, message_id: str, token: str) -> tuple[dict[str, Any], bytes]:
    return await gmail.get_raw(token, message_id)


async def _list(gmail: GmailClient, query: str, page_token: str | None, token: str) -> dict[str, Any]:
    return await gmail.list_messages(token, query, page_token)


def _decisive(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The exception that decides a failed chunk's fate: a ``PermanentError`` if any, else the first."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        error = pending.pop(0)
        if isinstance(error, BaseExceptionGroup):
            pending[:0] = list(error.exceptions)
        else:
            leaves.append(error)
    return next((e for e in leaves if isinstance(e, PermanentError)), leaves[0])


def _address(address: ParsedAddress) -> Address:
    return Address(email=address.email, name=address.name)
