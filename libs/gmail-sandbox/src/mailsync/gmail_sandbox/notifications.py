"""Gmail push notifications: ``{"emailAddress", "historyId"}`` published to the watched Pub/Sub topic.

Provider behaviour (https://developers.google.com/workspace/gmail/api/guides/push):

* After ``users.watch``, every mailbox change that passes the watch's label filter publishes one message whose
  data is the JSON ``{"emailAddress": ..., "historyId": ...}``; a successful ``watch`` publishes one right
  away.
* "Each Gmail user being watched has a maximum notification rate of 1 event/sec." The sandbox coalesces:
  changes inside the interval are folded into one notification sent when the interval has passed, carrying the
  latest historyId (the client reads history from its own stored id anyway).
* The guide's example shows ``historyId`` as a string, real deliveries carry a number; the sandbox sends a
  number by default (configurable) so clients are forced to accept it.
* Delivery is best effort: a notification that cannot be published is logged and dropped, as Gmail may "delay
  or drop" them. Watches expire after 7 days.

The publisher is an interface: :class:`PubSubEmulatorPublisher` publishes with google-cloud-pubsub to Google's
Pub/Sub emulator; :class:`RecordingPublisher` keeps messages in memory when no emulator is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mailsync.gmail_sandbox.clock import Clock
    from mailsync.gmail_sandbox.mailbox import HistoryRecord, Mailbox

logger = logging.getLogger(__name__)


class TopicNotFoundError(LookupError):
    """The topic does not exist on the Pub/Sub server."""


class NotificationPublisher(Protocol):
    """Publishes bytes to a Pub/Sub topic (``projects/{p}/topics/{t}``)."""

    async def publish(self, topic: str, data: bytes) -> str:
        """Publish ``data`` and return the server's message id.

        Raises:
            TopicNotFoundError: the topic does not exist.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class RecordingPublisher:
    """An in-memory topic sink: every topic exists unless ``known_topics`` restricts them."""

    def __init__(self, known_topics: set[str] | None = None) -> None:
        self.known_topics = known_topics
        self.messages: list[tuple[str, bytes]] = []

    async def publish(self, topic: str, data: bytes) -> str:
        """Record the message; unknown topics raise :class:`TopicNotFoundError` when topics are restricted."""
        if self.known_topics is not None and topic not in self.known_topics:
            raise TopicNotFoundError(topic)
        self.messages.append((topic, data))
        return str(len(self.messages))

    async def close(self) -> None:
        """Nothing to release."""


class PubSubEmulatorPublisher:
    """Publishes with google-cloud-pubsub over an insecure gRPC channel to the emulator at ``host``.

    The client is created on first use, never at construction (no connection at import or build time).
    """

    def __init__(self, host: str, timeout_seconds: float = 10.0) -> None:
        self.host = host
        self.timeout_seconds = timeout_seconds
        self._client: Any = None

    def _publisher(self) -> Any:
        if self._client is None:
            import grpc  # type: ignore[import-untyped]  # noqa: PLC0415 - imported only when publishing
            from google.cloud import pubsub_v1  # noqa: PLC0415
            from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport  # noqa: PLC0415

            transport = PublisherGrpcTransport(channel=grpc.insecure_channel(self.host))
            self._client = pubsub_v1.PublisherClient(
                transport=transport,
                batch_settings=pubsub_v1.types.BatchSettings(max_latency=0.0),
            )
        return self._client

    async def publish(self, topic: str, data: bytes) -> str:
        """Publish and wait for the server's message id.

        Raises:
            TimeoutError: no answer within ``timeout_seconds`` (the client library itself retries forever).
        """
        from google.api_core import exceptions  # noqa: PLC0415

        future = self._publisher().publish(topic, data)
        try:
            return str(await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_seconds))
        except exceptions.NotFound as exc:
            raise TopicNotFoundError(topic) from exc

    async def close(self) -> None:
        """Stop the client's batching threads and close the channel."""
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.to_thread(client.stop)
            client.transport.close()


@dataclass(frozen=True)
class SentNotification:
    """A notification as published, for the admin API and tests."""

    topic: str
    email_address: str
    history_id: int
    message_id: str
    published_at: float

    def describe(self) -> dict[str, Any]:
        """JSON view."""
        return {
            "topic": self.topic,
            "emailAddress": self.email_address,
            "historyId": str(self.history_id),
            "messageId": self.message_id,
            "publishedAt": self.published_at,
        }


@dataclass
class _UserState:
    last_sent_at: float | None = None
    pending: tuple[str, int] | None = None
    task: asyncio.Task[None] | None = None


class PublishListener(Protocol):
    """Told about every published notification (push delivery hooks in here)."""

    def published(self, topic: str, data: bytes, message_id: str) -> None:
        """Called after a successful publish."""
        ...


@dataclass
class NotificationDispatcher:
    """Turns mailbox changes into rate-limited, coalesced notifications."""

    publisher: NotificationPublisher
    clock: Clock
    min_interval_seconds: float = 1.0
    numeric_history_id: bool = True
    sent: list[SentNotification] = field(default_factory=list)
    failures: int = 0
    listeners: list[PublishListener] = field(default_factory=list)
    _users: dict[str, _UserState] = field(default_factory=dict)

    def payload(self, address: str, history_id: int) -> bytes:
        """The notification data: ``{"emailAddress", "historyId"}`` as UTF-8 JSON."""
        value: int | str = history_id if self.numeric_history_id else str(history_id)
        return json.dumps({"emailAddress": address, "historyId": value}).encode()

    def mailbox_changed(self, mailbox: Mailbox, record: HistoryRecord) -> None:
        """Mailbox listener: schedule a notification when the mailbox is watched and the change matches."""
        watch = mailbox.watch
        if watch is None or watch.expiration_ms <= self.clock.now() * 1000 or not watch.matches(record):
            return
        self.schedule(mailbox.address, watch.topic_name, mailbox.history_id)

    def schedule(self, address: str, topic: str, history_id: int) -> None:
        """Queue a notification; within the minimum interval only the latest one is kept."""
        state = self._users.setdefault(address, _UserState())
        state.pending = (topic, history_id)
        if state.task is None or state.task.done():
            state.task = asyncio.get_running_loop().create_task(self._drain(address, state))

    async def _drain(self, address: str, state: _UserState) -> None:
        while state.pending is not None:
            if state.last_sent_at is not None:
                wait = state.last_sent_at + self.min_interval_seconds - self.clock.now()
                if wait > 0:
                    await self.clock.sleep(wait)
            (topic, history_id), state.pending = state.pending, None
            state.last_sent_at = self.clock.now()
            await self._publish(address, topic, history_id)

    async def publish_now(self, address: str, topic: str, history_id: int) -> None:
        """Publish one notification immediately (the one a successful ``watch`` sends); it starts the
        interval.

        Raises:
            TopicNotFoundError: the topic does not exist; other publisher errors propagate too.
        """
        await self._publish_once(address, topic, history_id)
        self._users.setdefault(address, _UserState()).last_sent_at = self.clock.now()

    async def _publish_once(self, address: str, topic: str, history_id: int) -> None:
        data = self.payload(address, history_id)
        message_id = await self.publisher.publish(topic, data)
        self.sent.append(SentNotification(topic, address, history_id, message_id, self.clock.now()))
        for listener in self.listeners:
            listener.published(topic, data, message_id)

    async def _publish(self, address: str, topic: str, history_id: int) -> None:
        try:
            await self._publish_once(address, topic, history_id)
        except Exception:
            self.failures += 1
            logger.warning("dropped notification for %s to %s", address, topic, exc_info=True)

    async def wait_idle(self) -> None:
        """Wait until no notification is queued or being published (sleeping timers included)."""
        tasks = [s.task for s in self._users.values() if s.task is not None and not s.task.done()]
        if tasks:
            await asyncio.gather(*tasks)

    async def close(self) -> None:
        """Cancel queued notifications and close the publisher."""
        for state in self._users.values():
            if state.task is not None and not state.task.done():
                state.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await state.task
        self._users.clear()
        await self.publisher.close()

    def reset(self) -> None:
        """Forget the log and the per-user rate state (queued tasks are cancelled)."""
        for state in self._users.values():
            if state.task is not None and not state.task.done():
                state.task.cancel()
        self._users.clear()
        self.sent.clear()
        self.failures = 0


def new_message_id() -> str:
    """A Pub/Sub-style numeric message id for deliveries that did not go through a server."""
    return str(10**15 + secrets.randbelow(9 * 10**15))
