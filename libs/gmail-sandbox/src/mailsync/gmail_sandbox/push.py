"""Push delivery of published notifications, as a Pub/Sub push subscription with authentication does it.

Pub/Sub POSTs ``{"message": {"data": <base64>, "attributes", "messageId", "publishTime"}, "subscription"}``
with ``Authorization: Bearer <OIDC token>`` (see :mod:`mailsync.gmail_sandbox.push_auth`). 102, 200, 201, 202
and 204 acknowledge; any other status or a timeout (the ack deadline, 10 s by default) is a nack and the
message is redelivered with exponential backoff (the subscription retry policy: 10 s minimum, 600 s maximum by
default). Sources: https://cloud.google.com/pubsub/docs/push,
https://cloud.google.com/pubsub/docs/handling-failures.

The emulator can push as well but sends no token; this deliverer exists so push endpoints are tested with
signed requests. Attempts are capped (``max_attempts``) instead of the 7-day retention.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from mailsync.gmail_sandbox.clock import Clock
    from mailsync.gmail_sandbox.push_auth import PushTokenSigner

logger = logging.getLogger(__name__)

ACK_STATUSES = frozenset({102, 200, 201, 202, 204})


@dataclass
class PushSubscription:
    """A push subscription on one topic; ``audience`` defaults to the endpoint URL, as in Pub/Sub."""

    name: str
    topic: str
    endpoint: str
    audience: str | None = None
    ack_deadline_seconds: float = 10.0
    min_backoff_seconds: float = 10.0
    max_backoff_seconds: float = 600.0
    max_attempts: int = 10
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        """JSON view including every delivery attempt."""
        return {
            "name": self.name,
            "topic": self.topic,
            "endpoint": self.endpoint,
            "audience": self.audience or self.endpoint,
            "attempts": list(self.attempts),
        }


def envelope(subscription: str, data: bytes, message_id: str, published_at: float) -> dict[str, Any]:
    """The JSON body of a push request."""
    stamp = (
        datetime.fromtimestamp(published_at, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
    return {
        "message": {
            "data": base64.b64encode(data).decode("ascii"),
            "attributes": {},
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": stamp,
            "publish_time": stamp,
        },
        "subscription": subscription,
    }


class PushDeliverer:
    """Delivers every message published to a subscribed topic to that subscription's endpoint."""

    def __init__(self, signer: PushTokenSigner, clock: Clock) -> None:
        self.signer = signer
        self.clock = clock
        self.subscriptions: list[PushSubscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def published(self, topic: str, data: bytes, message_id: str) -> None:
        """Publish listener: start a delivery for each push subscription of ``topic``."""
        for subscription in self.subscriptions:
            if subscription.topic == topic:
                task = asyncio.get_running_loop().create_task(self._deliver(subscription, data, message_id))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _deliver(self, subscription: PushSubscription, data: bytes, message_id: str) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        body = envelope(subscription.name, data, message_id, self.clock.now())
        backoff = subscription.min_backoff_seconds
        for attempt in range(1, subscription.max_attempts + 1):
            token = self.signer.sign(subscription.audience or subscription.endpoint)
            outcome: int | str
            try:
                async with self._session.post(
                    subscription.endpoint,
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=aiohttp.ClientTimeout(total=subscription.ack_deadline_seconds),
                ) as response:
                    outcome = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcome = type(exc).__name__
            subscription.attempts.append({"messageId": message_id, "attempt": attempt, "outcome": outcome})
            if outcome in ACK_STATUSES:
                return
            logger.info("push to %s nacked (%s), attempt %d", subscription.endpoint, outcome, attempt)
            await self.clock.sleep(backoff)
            backoff = min(backoff * 2, subscription.max_backoff_seconds)
        logger.warning(
            "push to %s gave up after %d attempts", subscription.endpoint, subscription.max_attempts
        )

    async def wait_idle(self) -> None:
        """Wait for every delivery in progress (including its retries)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def close(self) -> None:
        """Cancel deliveries and close the HTTP session."""
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    def reset(self) -> None:
        """Remove all subscriptions (deliveries in progress are cancelled)."""
        for task in list(self._tasks):
            task.cancel()
        self.subscriptions.clear()
