"""The sender's use cases: answer every send command exactly once, and keep the connection read model.

`send_email` (one `SendEmail` payload) follows these steps, each safe to repeat after a crash:

1. Claim the request id (`send_requests`). A request already answered gets its stored result republished,
   unchanged (S7); nothing else happens.
2. Refuse what cannot be sent: contract or header violations (`invalid_command`), size policies (S4),
   unreadable attachments, a connection that needs re-authentication.
3. Route (S1, S2, C4, C5). Through a mailbox: fetch an access token from the owning ingest service, fix the
   request's quota day, reserve one send in the ledger (S3; over the limit: `refused`/`quota_exceeded` with
   `quota_resets_at`, never attempted), journal `attempting` under this instance's lease (another instance
   holding a live lease makes this delivery wait, transiently), call Gmail or Graph.
4. Store the result (first stored wins), then publish it on `send.results`.

Transient provider failures are retried in place with exponential backoff and full jitter, never sooner
than `Retry-After`. Before resending a mailbox send whose outcome is unknown (timeout after the request was
written, 5xx, or a redelivery of a command journalled `attempting`), the sender searches the mailbox for the
email's own Message-ID, so a Gmail send never happens twice. A permanent failure releases the quota
reservation and answers `failed`. If the retries run out while the outcome is still unknown, the handler
raises `TransientError`: the command is not answered yet, stays uncommitted and is redelivered, and the
redelivery resolves it through the Sent folder. MongoDB and Kafka errors are transient the same way. A bug
before the provider was called answers `failed`/`internal_error`; after it, the error propagates (the
outcome is unknown and must not be reported as a failure).

A command without a usable `request_id` cannot be answered: it raises `PermanentError` (dead-lettered).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol, TypeVar

from aiokafka.errors import KafkaError
from pymongo.errors import PyMongoError

from mailsync.common.contracts import (
    SEND_RESULTS,
    Address,
    BlobRef,
    ConnectionChanged,
    SendCompleted,
    SendEmail,
    SendFailureReason,
    SendRoute,
)
from mailsync.common.delivery import PermanentError, TransientError
from mailsync.common.kafka import EventPublisher
from mailsync.sender.adapters.access_tokens import (
    AccessGrant,
    AccessTokens,
    ConnectionGoneError,
    ConnectionNeedsReauthError,
)
from mailsync.sender.adapters.blob_store import BlobUnavailableError
from mailsync.sender.adapters.connection_store import ConnectionStore
from mailsync.sender.adapters.delivery_errors import (
    DeliveryRejectedError,
    RetryableDeliveryError,
    SendingLimitError,
)
from mailsync.sender.adapters.gmail import GmailClient
from mailsync.sender.adapters.graph import GraphClient, GraphMessage
from mailsync.sender.adapters.mailbox_sessions import GmailSession, GraphSession
from mailsync.sender.adapters.quota_ledger import QuotaLedger, Reservation
from mailsync.sender.adapters.send_records import AttemptLeasedError, SendRecord, SendRecordStore
from mailsync.sender.adapters.smtp import SmtpRelay
from mailsync.sender.domain import (
    GMAIL_POLICY,
    AttachmentPolicy,
    InvalidCommand,
    MailboxConnection,
    MessageContent,
    ProviderReceipt,
    Refusal,
    SizePolicy,
    ThroughMailbox,
    build_message,
    choose_route,
    encode,
    graph_message,
    invalid_command_result,
    message_id_for,
    not_sent,
    parse_command,
    quota_day,
    quota_day_named,
    sent_through_mailbox,
    sent_through_provider,
    validate_command,
)
from mailsync.sender.metrics import SenderMetrics

logger = logging.getLogger(__name__)

T = TypeVar("T")

_LEDGER_RETENTION = timedelta(days=3)


class BlobReader(Protocol):
    """Reads stored content (raises `BlobUnavailableError`)."""

    async def read(self, ref: BlobRef) -> bytes: ...


@dataclass(frozen=True)
class RetrySchedule:
    """Exponential backoff with full jitter; gives up after `max_attempts` or on a too-long Retry-After."""

    max_attempts: int = 4
    initial_seconds: float = 0.5
    max_seconds: float = 30.0
    settle_seconds: float = 5.0
    """Least wait after a call whose outcome is unknown, so a request still being processed has finished
    before the sender looks for its effect."""

    def delay(
        self, attempt: int, retry_after: float | None, *, outcome_unknown: bool = False
    ) -> float | None:
        """Seconds to wait after failed attempt number `attempt` (1-based), or None to give up."""
        if attempt >= self.max_attempts or (retry_after is not None and retry_after > self.max_seconds):
            return None
        ceiling = min(self.max_seconds, self.initial_seconds * 2 ** (attempt - 1))
        backoff = random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography
        return max(backoff, retry_after or 0.0, self.settle_seconds if outcome_unknown else 0.0)


class _RetriesExhaustedError(Exception):
    def __init__(self, detail: str, *, outcome_unknown: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.outcome_unknown = outcome_unknown


@dataclass
class _Progress:
    """What one delivery of a command has done so far (decides what a failure may still report)."""

    quota_key: str | None = None
    attempted: bool = False


@dataclass(frozen=True)
class Sender:
    """The sender's handlers and what they depend on."""

    records: SendRecordStore
    ledger: QuotaLedger
    connections: ConnectionStore
    blobs: BlobReader
    tokens: AccessTokens
    gmail: GmailClient
    graph: GraphClient
    smtp: SmtpRelay
    publisher: EventPublisher
    metrics: SenderMetrics
    smtp_sender: Address
    message_id_domain: str
    smtp_policy: SizePolicy = field(default_factory=lambda: SizePolicy("the subaccount provider"))
    outlook_policy: AttachmentPolicy = field(default_factory=lambda: AttachmentPolicy("Outlook"))
    retry: RetrySchedule = field(default_factory=RetrySchedule)
    attempt_lease: timedelta = timedelta(minutes=5)
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def ensure_indexes(self) -> None:
        """Create every index the handlers rely on (idempotent; run at start-up)."""
        await self.records.ensure_indexes()
        await self.ledger.ensure_indexes()
        await self.connections.ensure_indexes()

    async def apply_connection_change(self, event: ConnectionChanged) -> None:
        """Keep the read model of which mailbox a user's connection sends through (C4, C5, C6)."""
        try:
            await self.connections.apply(event)
        except PyMongoError as error:
            raise TransientError(f"MongoDB: {error}") from error

    async def send_email(self, payload: dict[str, Any]) -> None:
        """Answer the `SendEmail` in `payload` with exactly one `SendCompleted` (see the module docstring)."""
        parsed = parse_command(payload)
        request_id = parsed.request_id
        if request_id is None:
            raise PermanentError(
                "unanswerable_command", parsed.detail if isinstance(parsed, InvalidCommand) else ""
            )
        try:
            record = await self.records.claim(request_id, self.clock())
            if record.result is None:
                if isinstance(parsed, InvalidCommand):
                    result = invalid_command_result(parsed, request_id, at=self.clock())
                else:
                    result = await self._answer(parsed, record)
                result = await self.records.complete(request_id, result)
                self.metrics.results.labels(result.status, result.route or "", result.reason or "").inc()
            else:
                result = record.result
            await self.publisher.publish(SEND_RESULTS, result)
        except (PyMongoError, KafkaError) as error:
            raise TransientError(f"{type(error).__name__}: {error}") from error

    # -- deciding ------------------------------------------------------------------------------------------

    async def _answer(self, command: SendEmail, record: SendRecord) -> SendCompleted:
        progress = _Progress(quota_key=record.quota_key, attempted=record.state == "attempting")
        try:
            return await self._decide(command, record, progress)
        except (TransientError, PyMongoError, KafkaError):
            raise
        except Exception as error:
            if progress.attempted:
                raise
            logger.exception("unexpected error before sending", extra={"request_id": command.request_id})
            await self._release(progress, command.request_id)
            return not_sent(
                command,
                Refusal(SendFailureReason.INTERNAL_ERROR, f"Unexpected error: {type(error).__name__}"),
                attempted=True,
                at=self.clock(),
            )

    async def _decide(self, command: SendEmail, record: SendRecord, progress: _Progress) -> SendCompleted:
        refusal = validate_command(command)
        if refusal is not None:
            return not_sent(command, refusal, attempted=False, at=self.clock())
        connection = None
        if command.kind == "individual" and command.user_id is not None:
            connection = await self.connections.current_for(command.subaccount_id, command.user_id)
        route = choose_route(command, connection)
        if isinstance(route, Refusal):
            return not_sent(
                command, route, attempted=False, at=self.clock(), route="mailbox", connection=connection
            )
        if isinstance(route, ThroughMailbox):
            if record.attempted_route == "subaccount_provider":
                # A previous delivery already handed it to the subaccount provider: finish that way.
                return await self._through_provider(command, progress)
            return await self._through_mailbox(command, route.connection, progress, record)
        return await self._through_provider(command, progress)

    # -- through the user's mailbox (S1, C4, S3, S6) -------------------------------------------------------

    async def _through_mailbox(
        self, command: SendEmail, connection: MailboxConnection, progress: _Progress, record: SendRecord
    ) -> SendCompleted:
        if connection.provider == "outlook":
            return await self._through_outlook(command, connection, progress, record)
        try:
            prepared = await self._prepare_gmail(command, connection, progress)
        except ConnectionNeedsReauthError:  # Gmail refused a fresh token while looking up the thread
            return await self._needs_reauth(command, connection, progress)
        if isinstance(prepared, SendCompleted):
            return prepared
        refused = await self._reserve_quota(command, prepared.connection, prepared.daily_send_limit, progress)
        if refused is not None:
            return refused
        return await self._deliver_gmail(command, prepared, progress)

    async def _grant(
        self, command: SendEmail, connection: MailboxConnection, progress: _Progress
    ) -> AccessGrant | SendCompleted:
        """An access token for the connection, or the result when there is none to be had (C5, C6)."""
        try:
            return await self.tokens.grant(
                connection.connection_id, connection.provider, connection.mailbox_id
            )
        except ConnectionNeedsReauthError:
            return await self._needs_reauth(command, connection, progress)
        except ConnectionGoneError:
            # The read model lagged behind a disconnect (C5): the subaccount provider sends it.
            await self._release(progress, command.request_id)
            return await self._through_provider(command, progress)

    async def _prepare_gmail(
        self, command: SendEmail, connection: MailboxConnection, progress: _Progress
    ) -> _PreparedGmailSend | SendCompleted:
        """Everything the Gmail call needs, or the result when the command cannot go this way."""
        now = self.clock()
        refusal = GMAIL_POLICY.check_attachments(command.attachments)
        if refusal is not None:
            return not_sent(command, refusal, attempted=False, at=now, route="mailbox", connection=connection)
        grant = await self._grant(command, connection, progress)
        if isinstance(grant, SendCompleted):
            return grant
        # The token API knows the connection's current mailbox (C4), even before the read model does.
        connection = replace(connection, mailbox_id=grant.mailbox_id, email_address=grant.email_address)
        content = await self._content(command)
        if isinstance(content, Refusal):
            return not_sent(command, content, attempted=False, at=now, route="mailbox", connection=connection)
        message_id = message_id_for(command.request_id, self.message_id_domain)
        gmail = GmailSession(self.gmail, self.tokens, grant)
        thread_id = await self._thread_for(command, gmail)
        sender = Address(email=grant.email_address)
        raw = encode(build_message(command, content, sender=sender, message_id=message_id, date=now))
        refusal = GMAIL_POLICY.check_message(len(raw))
        if refusal is not None:
            return not_sent(command, refusal, attempted=False, at=now, route="mailbox", connection=connection)
        return _PreparedGmailSend(connection, gmail, grant.daily_send_limit, raw, thread_id, message_id)

    async def _reserve_quota(
        self, command: SendEmail, connection: MailboxConnection, limit: int, progress: _Progress
    ) -> SendCompleted | None:
        """Count the send against its connection's quota day (S3); the refusal when the day is used up."""
        today = quota_day(self.clock())
        progress.quota_key = await self.records.fix_quota_key(
            command.request_id, self.ledger.key(connection.connection_id, today.key)
        )
        day = quota_day_named(progress.quota_key.rpartition("|")[2])
        started = time.perf_counter()
        reservation = await self.ledger.reserve(
            progress.quota_key,
            command.request_id,
            limit=limit,
            expires_at=day.resets_at + _LEDGER_RETENTION,
        )
        self.metrics.quota_reserve_seconds.observe(time.perf_counter() - started)
        if reservation is Reservation.RESERVED:
            return None
        return not_sent(
            command,
            Refusal(
                SendFailureReason.QUOTA_EXCEEDED,
                f"The mailbox {connection.email_address} has sent its {limit} emails "
                f"for today (S3); the quota resets at {day.resets_at.isoformat()}.",
            ),
            attempted=False,
            at=self.clock(),
            route="mailbox",
            connection=connection,
            quota_resets_at=day.resets_at,
        )

    async def _deliver_gmail(
        self, command: SendEmail, prepared: _PreparedGmailSend, progress: _Progress
    ) -> SendCompleted:
        """Send once: look in the Sent folder first when an earlier attempt's outcome is unknown."""
        connection, gmail = prepared.connection, prepared.gmail
        refusal: Refusal
        resets_at = None
        try:
            if progress.attempted:
                found = await self._resolve(lambda: gmail.find(prepared.message_id))
                if found is not None:
                    return self._sent(command, connection, found, prepared.message_id)
            await self._journal_attempt(command.request_id, "mailbox", connection)
            progress.attempted = True
            receipt = await self._with_retries(
                lambda: gmail.send(prepared.raw, prepared.thread_id),
                check=lambda: gmail.find(prepared.message_id),
            )
            return self._sent(command, connection, receipt, prepared.message_id)
        except ConnectionNeedsReauthError:
            return await self._needs_reauth(command, connection, progress)
        except ConnectionGoneError:
            refusal = Refusal(
                SendFailureReason.CONNECTION_DISCONNECTED,
                "The connection was disconnected while sending; nothing was sent (C5).",
            )
        except SendingLimitError as error:
            refusal = Refusal(SendFailureReason.QUOTA_EXCEEDED, f"{error.detail} (Gmail's own limit, S3)")
            resets_at = error.resets_at
        except DeliveryRejectedError as error:
            refusal = Refusal(error.reason, error.detail)
        except _RetriesExhaustedError as error:
            if error.outcome_unknown:
                raise TransientError(f"send outcome unknown after retries: {error.detail}") from error
            refusal = Refusal(SendFailureReason.PROVIDER_UNAVAILABLE, error.detail)
        await self._release(progress, command.request_id)
        return not_sent(
            command,
            refusal,
            attempted=True,
            at=self.clock(),
            route="mailbox",
            connection=connection,
            quota_resets_at=resets_at,
        )

    def _sent(
        self, command: SendEmail, connection: MailboxConnection, receipt: ProviderReceipt, message_id: str
    ) -> SendCompleted:
        return sent_through_mailbox(command, connection, receipt, message_id, at=self.clock())

    async def _needs_reauth(
        self, command: SendEmail, connection: MailboxConnection, progress: _Progress
    ) -> SendCompleted:
        await self._release(progress, command.request_id)
        return not_sent(
            command,
            Refusal(
                SendFailureReason.CONNECTION_NEEDS_REAUTH,
                f"The mailbox {connection.email_address} needs re-authentication (its grant failed with "
                "invalid_grant); nothing was sent (C6).",
            ),
            attempted=True,
            at=self.clock(),
            route="mailbox",
            connection=connection,
        )

    async def _thread_for(self, command: SendEmail, gmail: GmailSession) -> str | None:
        """The Gmail thread a reply joins (S6): the given one, else the thread of the message replied to."""
        context = command.reply_context
        if context is None:
            return None
        if context.provider_thread_id is not None:
            return context.provider_thread_id
        parent = await self._resolve(lambda: gmail.find(context.in_reply_to))
        return parent.provider_thread_id if parent is not None else None

    async def _resolve(self, lookup: Callable[[], Awaitable[T]]) -> T:
        """A read-only Gmail lookup; its failures are transient for the whole command."""
        try:
            return await self._with_retries(lookup, check=None)
        except (_RetriesExhaustedError, DeliveryRejectedError) as error:
            raise TransientError(f"Gmail lookup failed: {error}") from error

    # -- through the user's Outlook mailbox (S1, S5/O3, S6) ----------------------------------------------

    async def _through_outlook(
        self, command: SendEmail, connection: MailboxConnection, progress: _Progress, record: SendRecord
    ) -> SendCompleted:
        prepared = await self._prepare_outlook(command, connection, progress)
        if isinstance(prepared, SendCompleted):
            return prepared
        grant, connection, content = prepared
        refused = await self._reserve_quota(command, connection, grant.daily_send_limit, progress)
        if refused is not None:
            return refused
        graph = GraphSession(self.graph, self.tokens, grant)
        refusal_after: Refusal
        try:
            sent = None
            if progress.attempted and record.attempted_internet_message_id:
                sent = await self._resume_outlook(
                    command, graph, connection, record.attempted_internet_message_id
                )
            if sent is None:
                sent = await self._send_outlook(command, content, graph, connection, progress)
            receipt = ProviderReceipt(provider_message_id=sent.id, provider_thread_id=sent.conversation_id)
            return sent_through_mailbox(
                command, connection, receipt, sent.internet_message_id, at=self.clock()
            )
        except ConnectionNeedsReauthError:
            return await self._needs_reauth(command, connection, progress)
        except ConnectionGoneError:
            refusal_after = Refusal(
                SendFailureReason.CONNECTION_DISCONNECTED,
                "The connection was disconnected while sending; nothing was sent (C5).",
            )
        except DeliveryRejectedError as error:
            refusal_after = Refusal(error.reason, error.detail)
        except _RetriesExhaustedError as error:
            if error.outcome_unknown:
                raise TransientError(f"send outcome unknown after retries: {error.detail}") from error
            refusal_after = Refusal(SendFailureReason.PROVIDER_UNAVAILABLE, error.detail)
        await self._release(progress, command.request_id)
        return not_sent(
            command,
            refusal_after,
            attempted=True,  # the provider was called (a draft at least), even if nothing went out
            at=self.clock(),
            route="mailbox",
            connection=connection,
        )

    async def _prepare_outlook(
        self, command: SendEmail, connection: MailboxConnection, progress: _Progress
    ) -> tuple[AccessGrant, MailboxConnection, MessageContent] | SendCompleted:
        """The token, current mailbox and content of an Outlook send, or the result when it cannot go."""
        now = self.clock()
        refusal = self.outlook_policy.check(command.attachments)
        if refusal is not None:
            return not_sent(command, refusal, attempted=False, at=now, route="mailbox", connection=connection)
        grant = await self._grant(command, connection, progress)
        if isinstance(grant, SendCompleted):
            return grant
        connection = replace(connection, mailbox_id=grant.mailbox_id, email_address=grant.email_address)
        content = await self._content(command)
        if isinstance(content, Refusal):
            return not_sent(command, content, attempted=False, at=now, route="mailbox", connection=connection)
        return grant, connection, content

    async def _resume_outlook(
        self,
        command: SendEmail,
        graph: GraphSession,
        connection: MailboxConnection,
        internet_message_id: str,
    ) -> GraphMessage | None:
        """After a crash: the send journalled before it, if it went out; else its draft, sent now."""
        sent = await self._resolve(lambda: graph.find(internet_message_id))
        if sent is not None:
            return sent
        draft = await self._resolve(lambda: graph.draft(internet_message_id))
        if draft is None:
            return None  # the draft was never completed; a new one is made
        await self._journal_attempt(
            command.request_id, "mailbox", connection, internet_message_id=internet_message_id
        )
        return await self._with_retries(
            lambda: graph.send_and_find(draft), check=lambda: graph.find(draft.internet_message_id)
        )

    async def _send_outlook(
        self,
        command: SendEmail,
        content: MessageContent,
        graph: GraphSession,
        connection: MailboxConnection,
        progress: _Progress,
    ) -> GraphMessage:
        """Draft (a reply to the thread's last message for S6), attach, journal, send, find the sent copy."""
        parent = await self._outlook_parent(command, graph)
        message = graph_message(command, content, reply=parent is not None)
        if parent is not None:
            parent_id = parent.id
            draft = await self._with_retries(lambda: graph.create_reply(parent_id, message), check=None)
        else:
            draft = await self._with_retries(lambda: graph.create_draft(message), check=None)
        for meta, data in content.attachments:
            attach = partial(graph.attach, draft.id, meta.filename, meta.content_type, data)
            await self._with_retries(attach, check=None)
        await self._journal_attempt(
            command.request_id, "mailbox", connection, internet_message_id=draft.internet_message_id
        )
        progress.attempted = True
        return await self._with_retries(
            lambda: graph.send_and_find(draft), check=lambda: graph.find(draft.internet_message_id)
        )

    async def _outlook_parent(self, command: SendEmail, graph: GraphSession) -> GraphMessage | None:
        """S6 on Outlook: the last message of the thread a reply belongs to (None for a new thread)."""
        context = command.reply_context
        if context is None:
            return None
        conversation_id = context.provider_thread_id
        if conversation_id is None:
            replied_to = await self._resolve(lambda: graph.find(context.in_reply_to))
            conversation_id = replied_to.conversation_id if replied_to is not None else None
        if conversation_id is None:
            return None
        thread = conversation_id
        return await self._resolve(lambda: graph.last_in_conversation(thread))

    # -- through the subaccount provider (S2, C5) ----------------------------------------------------------

    async def _through_provider(self, command: SendEmail, progress: _Progress) -> SendCompleted:
        now = self.clock()
        refusal = self.smtp_policy.check_attachments(command.attachments)
        content = refusal or await self._content(command)
        if isinstance(content, Refusal):
            return not_sent(command, content, attempted=False, at=now, route="subaccount_provider")
        message_id = message_id_for(command.request_id, self.message_id_domain)
        message = build_message(command, content, sender=self.smtp_sender, message_id=message_id, date=now)
        refusal = self.smtp_policy.check_message(len(encode(message)))
        if refusal is not None:
            return not_sent(command, refusal, attempted=False, at=now, route="subaccount_provider")
        await self._journal_attempt(command.request_id, "subaccount_provider", None)
        progress.attempted = True
        try:
            await self._with_retries(lambda: self.smtp.send(message), check=None)
        except DeliveryRejectedError as error:
            return not_sent(
                command,
                Refusal(error.reason, error.detail),
                attempted=True,
                at=self.clock(),
                route="subaccount_provider",
            )
        except _RetriesExhaustedError as error:
            if error.outcome_unknown:
                raise TransientError(f"SMTP outcome unknown after retries: {error.detail}") from error
            return not_sent(
                command,
                Refusal(SendFailureReason.PROVIDER_UNAVAILABLE, error.detail),
                attempted=True,
                at=self.clock(),
                route="subaccount_provider",
            )
        return sent_through_provider(command, message_id, at=self.clock())

    # -- shared --------------------------------------------------------------------------------------------

    async def _with_retries(
        self, call: Callable[[], Awaitable[T]], *, check: Callable[[], Awaitable[T | None]] | None
    ) -> T:
        """Run `call`, retrying transient failures; before repeating a call whose outcome is unknown, ask
        `check` whether it took effect (and return what it found)."""
        unknown = False
        attempt = 0
        while True:
            attempt += 1
            try:
                if unknown and check is not None:
                    found = await check()
                    if found is not None:
                        return found
                    unknown = False
                return await call()
            except RetryableDeliveryError as error:
                unknown = unknown or error.outcome_unknown
                delay = self.retry.delay(attempt, error.retry_after, outcome_unknown=error.outcome_unknown)
                if delay is None:
                    raise _RetriesExhaustedError(error.detail, outcome_unknown=unknown) from error
                logger.warning(
                    "provider call failed transiently; retrying",
                    extra={"attempt": attempt, "delay": round(delay, 3), "detail": error.detail},
                )
                await self.sleep(delay)

    async def _content(self, command: SendEmail) -> MessageContent | Refusal:
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

    async def _journal_attempt(
        self,
        request_id: str,
        route: SendRoute,
        connection: MailboxConnection | None,
        *,
        internet_message_id: str | None = None,
    ) -> None:
        """Journal the attempt under this instance's lease; while another instance holds one, wait
        (transient: the command is retried, and answered from the stored result once that one finishes)."""
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
            )
        except AttemptLeasedError as error:
            raise TransientError(f"another sender instance is sending {request_id}") from error

    async def _release(self, progress: _Progress, request_id: str) -> None:
        if progress.quota_key is not None:
            await self.ledger.release(progress.quota_key, request_id)


@dataclass(frozen=True)
class _PreparedGmailSend:
    connection: MailboxConnection
    gmail: GmailSession
    daily_send_limit: int
    raw: bytes
    thread_id: str | None
    message_id: str
