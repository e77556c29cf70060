"""What every route does around the provider call: read the stored content, journal the attempt under this
instance's lease, and give a quota reservation back when the send fails for good.

`Progress` is what one delivery of a command has done so far; it decides what a failure may still report
(after the provider was called, an unexpected error must not be answered as a failure: the outcome is
unknown).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from mailsync.common.contracts import BlobRef, SendEmail, SendFailureReason, SendRoute
from mailsync.common.delivery import TransientError
from mailsync.sender.adapters.blob_store import BlobUnavailableError
from mailsync.sender.adapters.quota_ledger import QuotaLedger
from mailsync.sender.adapters.send_records import AttemptLeasedError, SendRecordStore
from mailsync.sender.domain import MailboxConnection, MessageContent, Refusal
from mailsync.sender.handlers.retries import Retrier


class BlobReader(Protocol):
    """Reads stored content (raises `BlobUnavailableError`)."""

    async def read(self, ref: BlobRef) -> bytes: ...


@dataclass
class Progress:
    """What one delivery of a command has done so far."""

    quota_key: str | None = None
    attempted: bool = False


@dataclass(frozen=True)
class Attempts:
    """The journal, the quota release and the content reads every route shares."""

    records: SendRecordStore
    ledger: QuotaLedger
    blobs: BlobReader
    retrier: Retrier = field(default_factory=Retrier)
    attempt_lease: timedelta = timedelta(minutes=5)
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def content(self, command: SendEmail) -> MessageContent | Refusal:
        """The body and attachment bytes, read from their stores."""
        try:
            text = command.body.text
            if command.body.text_blob is not None:
                text = (await self.blobs.read(command.body.text_blob)).decode("utf-8")
            html = command.body.html
            if command.body.html_blob is not None:
                html = (await self.blobs.read(command.body.html_blob)).decode("utf-8")
            # The contract guarantees every attachment a blob.
            attachments = [(m, await self.blobs.read(m.blob)) for m in command.attachments if m.blob]
        except (BlobUnavailableError, UnicodeDecodeError) as error:
            return Refusal(SendFailureReason.ATTACHMENT_UNAVAILABLE, f"Stored content unavailable: {error}")
        return MessageContent(text=text, html=html, attachments=attachments)

    async def journal(
        self,
        request_id: str,
        route: SendRoute,
        connection: MailboxConnection | None,
        progress: Progress,
        *,
        internet_message_id: str | None = None,
    ) -> None:
        """Journal the attempt under this instance's lease, before the provider is called; while another
        instance holds the lease, wait (transient: the command is retried, and answered from the stored
        result once that instance finishes)."""
        now = self.clock()
        try:
            await self.records.mark_attempting(
                request_id,
                route=route,
                connection_id=connection.connection_id if connection else None,
                mailbox_id=connection.mailbox_id if connection else None,
                owner=self.instance_id,
                at=now,
                lease_until=now + self.attempt_lease,
                internet_message_id=internet_message_id,
                quota_key=progress.quota_key,
            )
        except AttemptLeasedError as error:
            await self._give_back_other_day(request_id, progress)
            raise TransientError(f"another sender instance is sending {request_id}") from error
        progress.attempted = True

    async def _give_back_other_day(self, request_id: str, progress: Progress) -> None:
        """Another instance journalled the request first: a reservation this delivery made on another quota
        day than the one that instance journalled (the two straddled midnight) counts nothing, so it is
        given back. On the same day both hold the same reservation, which stays."""
        if progress.quota_key is None:
            return
        record = await self.records.get(request_id)
        if record is not None and record.quota_key != progress.quota_key:
            await self.ledger.release(progress.quota_key, request_id)

    async def release(self, progress: Progress, request_id: str) -> None:
        """Give back the request's quota reservation, if it holds one (idempotent)."""
        if progress.quota_key is not None:
            await self.ledger.release(progress.quota_key, request_id)
