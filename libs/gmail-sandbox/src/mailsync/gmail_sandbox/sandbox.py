"""The sandbox's use cases, shared by the Gmail REST handlers and the admin API.

:class:`GmailSandbox` owns the mailboxes, the authorization server, the limits, fault injection and the
notification pipeline, and implements what happens on a send, an inbound delivery, an insert or a watch. HTTP
adapters only decode requests, call these methods and render the results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from mailsync.gmail_sandbox import mime
from mailsync.gmail_sandbox.errors import GoogleApiError, bad_request, invalid_argument, not_found
from mailsync.gmail_sandbox.faults import FaultInjector
from mailsync.gmail_sandbox.mailbox import Mailbox, MailStore, StoredMessage, WatchState
from mailsync.gmail_sandbox.notifications import (
    NotificationDispatcher,
    NotificationPublisher,
    PubSubEmulatorPublisher,
    RecordingPublisher,
    TopicNotFoundError,
)
from mailsync.gmail_sandbox.oauth import AuthorizationServer
from mailsync.gmail_sandbox.outbound import OutboundMail, OutboundMessage
from mailsync.gmail_sandbox.push import PushDeliverer
from mailsync.gmail_sandbox.push_auth import PushTokenSigner
from mailsync.gmail_sandbox.quota import ConcurrencyLimiter, QuotaLedger, check_daily_sending

if TYPE_CHECKING:
    from mailsync.gmail_sandbox.config import MailboxSpec, SandboxConfig

WATCH_LIFETIME_MS = 7 * 24 * 3600 * 1000
_TOPIC = re.compile(r"projects/[^/]+/topics/[^/]+")


@dataclass(frozen=True)
class WatchResult:
    """The ``WatchResponse`` values."""

    history_id: int
    expiration_ms: int


class GmailSandbox:
    """All state of one sandbox and the operations on it. Single event loop; not thread-safe."""

    def __init__(self, config: SandboxConfig, publisher: NotificationPublisher | None = None) -> None:
        self.config = config
        self.clock = config.clock
        self.store = MailStore(config.seed, self.clock.now)
        self.oauth = AuthorizationServer()
        for client in config.oauth_clients:
            self.oauth.register_client(client)
        self.quota = QuotaLedger(config.quota_units_per_user_per_minute)
        self.concurrency = ConcurrencyLimiter(config.max_concurrent_requests_per_user)
        self.faults = FaultInjector(config.seed)
        self.signer = PushTokenSigner(config.push_service_account, self.clock.now())
        if publisher is None:
            publisher = (
                PubSubEmulatorPublisher(config.pubsub_emulator_host)
                if config.pubsub_emulator_host
                else RecordingPublisher()
            )
        self.notifications = NotificationDispatcher(
            publisher,
            self.clock,
            min_interval_seconds=config.notification_interval_seconds,
            numeric_history_id=config.numeric_history_id_in_notifications,
        )
        self.push = PushDeliverer(self.signer, self.clock)
        self.outbound = OutboundMail(config.smtp_relay)
        self.notifications.listeners.append(self.push)
        self.store.subscribe(self.notifications.mailbox_changed)
        for spec in config.mailboxes:
            self.create_mailbox(spec)

    def now(self) -> float:
        """Current time from the configured clock."""
        return self.clock.now()

    # -- mailboxes -----------------------------------------------------------------------------------------

    def create_mailbox(self, spec: MailboxSpec) -> Mailbox:
        """Create (or recreate, empty) a mailbox."""
        return self.store.create(
            spec.address,
            kind=spec.kind,
            display_name=spec.display_name,
            history_retention_seconds=(
                spec.history_retention_seconds
                if spec.history_retention_seconds is not None
                else self.config.history_retention_seconds
            ),
            daily_send_limit=spec.daily_send_limit,
        )

    def mailbox(self, address: str) -> Mailbox:
        """Return the mailbox or raise 404."""
        mailbox = self.store.find(address)
        if mailbox is None:
            raise not_found()
        return mailbox

    # -- sending and receiving -----------------------------------------------------------------------------

    def send(self, mailbox: Mailbox, raw: bytes, thread_id: str | None) -> StoredMessage:
        """``messages.send``: apply Gmail's limits and header rules, store with ``SENT``, deliver the copies.

        Recipients that are mailboxes of this sandbox receive a copy (without ``Bcc``) threaded by headers;
        the copy for the others goes to the outbound log (and the SMTP relay, if configured). The send counts
        against the daily limit.

        Raises:
            GoogleApiError: 400 for a message without recipients or with attachments over 25 MB, 404 for an
                unknown ``threadId``, 429 when the daily sending limit is reached.
        """
        now = self.now()
        parsed = mime.parse(raw)
        recipients = mime.addresses(parsed, "To", "Cc", "Bcc")
        if not recipients:
            raise invalid_argument("Recipient address required")
        if mime.attachment_total(parsed) > self.config.max_attachment_bytes:
            raise bad_request(
                "Message attachments exceed the maximum total size of "
                f"{self.config.max_attachment_bytes} bytes."
            )
        if thread_id and thread_id not in mailbox.threads:
            raise not_found()
        check_daily_sending(mailbox.sent_at, mailbox.daily_send_limit, now)
        prepared = mime.prepare_outgoing(raw, mailbox.address, mailbox.display_name, now)
        labels = {"SENT"}
        if mailbox.address in recipients:
            labels |= {"INBOX", "UNREAD"}
        message = mailbox.add_message(prepared, labels, now, requested_thread_id=thread_id)
        mailbox.sent_at.append(now)
        delivered = mime.strip_bcc(prepared)
        outside: list[str] = []
        for address in dict.fromkeys(recipients):
            target = self.store.find(address)
            if target is None:
                outside.append(address)
            elif target is not mailbox:
                target.add_message(delivered, {"INBOX", "UNREAD"}, now, received=True)
        if outside:
            self.outbound.record(
                OutboundMessage(mailbox.address, message.id, mailbox.address, tuple(outside), delivered, now)
            )
        return message

    def deliver(self, mailbox: Mailbox, raw: bytes, label_ids: set[str] | None = None) -> StoredMessage:
        """Receive a message from outside (SMTP delivery): ``INBOX`` + ``UNREAD``, threaded by headers."""
        labels = label_ids if label_ids is not None else {"INBOX", "UNREAD"}
        return mailbox.add_message(raw, labels, self.now(), received=True)

    def insert(
        self,
        mailbox: Mailbox,
        raw: bytes,
        label_ids: list[str],
        thread_id: str | None,
        internal_date_source: str,
    ) -> StoredMessage:
        """``messages.insert`` / ``import``: store ``raw`` as given (no sending), with the requested labels.

        ``internalDateSource=dateHeader`` takes ``internalDate`` from the ``Date`` header.

        Raises:
            GoogleApiError: 400 for an unknown label id.
        """
        for label in label_ids:
            if label not in mailbox.labels:
                raise invalid_argument(f"Invalid label: {label}")
        now = self.now()
        internal_ms: int | None = None
        if internal_date_source == "dateHeader":
            date_header = mime.header_text(mime.parse(raw), "Date")
            try:
                internal_ms = (
                    int(parsedate_to_datetime(date_header).timestamp() * 1000) if date_header else None
                )
            except (TypeError, ValueError):
                internal_ms = None
        return mailbox.add_message(
            raw,
            set(label_ids),
            now,
            requested_thread_id=thread_id,
            received=not thread_id,
            internal_date_ms=internal_ms,
        )

    # -- notifications -------------------------------------------------------------------------------------

    async def watch(
        self, mailbox: Mailbox, topic_name: str, label_ids: list[str], behavior: str | None
    ) -> WatchResult:
        """``users.watch``: validate, publish the immediate notification, and remember the watch for 7 days.

        Raises:
            GoogleApiError: 400 for a missing/malformed topic name or unknown label, 404 when the topic
                does not exist on the Pub/Sub server, 500 when the Pub/Sub server does not answer.
        """
        if not topic_name:
            raise invalid_argument("topicName required")
        if not _TOPIC.fullmatch(topic_name):
            raise invalid_argument(
                f"Invalid topicName does not match projects/{self.config.project_id}/topics/*"
            )
        for label in label_ids:
            if label not in mailbox.labels:
                raise invalid_argument(f"Invalid label: {label}")
        normalized = (behavior or "include").lower()
        if normalized not in {"include", "exclude"}:
            raise invalid_argument(f"Invalid value at 'label_filter_behavior' ({behavior})")
        try:
            await self.notifications.publish_now(mailbox.address, topic_name, mailbox.history_id)
        except TimeoutError:
            raise GoogleApiError(
                500,
                f"Error sending test message to Cloud PubSub {topic_name} : Deadline exceeded.",
                "backendError",
            ) from None
        except TopicNotFoundError:
            resource = topic_name.rsplit("/", 1)[-1]
            raise GoogleApiError(
                404,
                f"Error sending test message to Cloud PubSub {topic_name} : Resource not found "
                f"(resource={resource}).",
                "notFound",
            ) from None
        expiration = int(self.now() * 1000) + WATCH_LIFETIME_MS
        mailbox.watch = WatchState(topic_name, frozenset(label_ids), normalized, expiration)
        return WatchResult(mailbox.history_id, expiration)

    @staticmethod
    def stop(mailbox: Mailbox) -> None:
        """``users.stop``: no further notifications for this mailbox."""
        mailbox.watch = None

    # -- lifecycle -----------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the configured start state: configured mailboxes only, no grants, faults or history."""
        self.store.reset()
        self.oauth.reset()
        self.quota.reset()
        self.faults.clear()
        self.notifications.reset()
        self.push.reset()
        self.outbound.reset()
        for spec in self.config.mailboxes:
            self.create_mailbox(spec)

    async def close(self) -> None:
        """Stop background work and close outbound connections."""
        await self.push.close()
        await self.outbound.close()
        await self.notifications.close()
