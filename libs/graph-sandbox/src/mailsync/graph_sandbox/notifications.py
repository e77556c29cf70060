"""Outbound HTTP to subscribers: the validation handshake and notification delivery with retries.

Handshake (``change-notifications-delivery-notificationurl-validation`` include): Graph POSTs
``{notificationUrl}?validationToken=<opaque>`` with ``Content-Type: text/plain; charset=utf-8`` (keeping any
query string of the URL) and requires, within 10 seconds, ``200 OK`` with ``Content-Type: text/plain`` and the
URL-decoded token as the body. Both ``notificationUrl`` and ``lifecycleNotificationUrl`` are validated. The
real
token is a human-readable sentence, so an app that echoes it still URL-encoded fails, as it would in
production.

Delivery (``concepts/change-notifications-delivery-webhooks.md``): a notification is POSTed as JSON and must
be
acknowledged with any 2xx within 3 seconds. A non-2xx, a connection failure or a slower answer counts as a
failure and the notification is retried with exponential backoff "for up to 4 hours", then dropped (the
sandbox
then sends a ``missed`` lifecycle notification when the subscription has a lifecycle URL). Endpoint health: an
answer slower than 2,900 ms is "slow"; once an endpoint has had at least 100 notifications in the current
10-minute window, 10% or more slow answers delay its deliveries by 10 minutes and 15% or more make Graph drop
them. Each notification is sent in its own POST (Graph may batch; consumers must accept both).

Time: due dates follow the injectable clock, so tests move a
:class:`~mailsync.graph_sandbox.clock.ManualClock`
and call :meth:`NotificationDispatcher.deliver_due`; answer durations are measured on the event loop's clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DeliveryPolicy:
    """Timings and thresholds of delivery; defaults are the documented values."""

    validation_timeout_s: float = 10.0
    delivery_timeout_s: float = 3.0
    slow_threshold_s: float = 2.9
    retry_initial_delay_s: float = 60.0
    retry_max_delay_s: float = 1800.0
    retry_horizon_s: float = 4 * 3600.0
    health_window_s: float = 600.0
    health_min_samples: int = 100
    delay_ratio: float = 0.10
    drop_ratio: float = 0.15
    throttled_delay_s: float = 600.0


def validation_token() -> str:
    """An opaque token in the style Graph sends (a sentence with spaces and a colon)."""
    return f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` appended to its existing query string."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


async def validate_endpoint(session: aiohttp.ClientSession, url: str, timeout_s: float) -> str | None:
    """Run the validation handshake against ``url``. Returns None on success, else why it failed."""
    token = validation_token()
    try:
        async with asyncio.timeout(timeout_s):
            async with session.post(
                with_query(url, validationToken=token),
                data=b"",
                headers={"Content-Type": "text/plain; charset=utf-8"},
            ) as response:
                body = await response.text()
                content_type = response.headers.get("Content-Type", "")
    except TimeoutError:
        return f"no answer within {timeout_s} s"
    except aiohttp.ClientError as exc:
        return f"connection failed: {exc}"
    if response.status != 200:
        return f"answered {response.status}"
    if not content_type.lower().startswith("text/plain"):
        return f"answered Content-Type {content_type!r}"
    if body != token:
        return "the body is not the decoded validation token"
    return None


@dataclasses.dataclass
class PendingDelivery:
    """A notification POST waiting for its (next) attempt."""

    id: str
    url: str
    payload: dict[str, Any]
    subscription_id: str
    kind: str
    first_due: dt.datetime
    next_due: dt.datetime
    attempts: int = 0


@dataclasses.dataclass(frozen=True)
class DeliveryRecord:
    """The outcome of one delivery attempt, kept for the admin API."""

    delivery_id: str
    url: str
    kind: str
    subscription_id: str
    attempt: int
    status: int | None
    duration_s: float
    outcome: str
    at: dt.datetime


@dataclasses.dataclass
class _Health:
    window_start: dt.datetime
    total: int = 0
    slow: int = 0


class NotificationDispatcher:
    """Queues notifications and POSTs them, retrying failures until the retry horizon.

    ``on_dropped(subscription_id, reason)`` is called for each change notification that is given up on (it
    sends the ``missed`` lifecycle event). Delivery is at-least-once from the subscriber's view: a slow 2xx
    counts as a failure and is retried, so subscribers see duplicates exactly as they would from Graph.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], dt.datetime],
        policy: DeliveryPolicy,
        on_dropped: Callable[[str, str], None] | None = None,
    ) -> None:
        self._clock = clock
        self.policy = policy
        self._on_dropped = on_dropped
        self._pending: dict[str, PendingDelivery] = {}
        self._health: dict[str, _Health] = {}
        self.records: list[DeliveryRecord] = []
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()

    def attach(self, session: aiohttp.ClientSession) -> None:
        """Use ``session`` for deliveries (the app's outbound session)."""
        self._session = session

    def set_drop_callback(self, on_dropped: Callable[[str, str], None]) -> None:
        """Set the callback for change notifications that are given up on."""
        self._on_dropped = on_dropped

    @property
    def pending(self) -> list[PendingDelivery]:
        """Deliveries not yet acknowledged, oldest first."""
        return sorted(self._pending.values(), key=lambda p: p.first_due)

    def enqueue(self, url: str, item: dict[str, Any], *, subscription_id: str, kind: str) -> None:
        """Queue one notification (``item`` goes into ``{"value": [item]}``)."""
        now = self._clock()
        health = self._health_of(url, now)
        due = now
        if self._over(health, self.policy.drop_ratio):
            self._record_drop(url, kind, subscription_id, "endpoint throttled: dropped")
            if kind == "change" and self._on_dropped is not None:
                self._on_dropped(subscription_id, "endpoint throttled")
            return
        if self._over(health, self.policy.delay_ratio):
            due = now + dt.timedelta(seconds=self.policy.throttled_delay_s)
        delivery_id = str(uuid.uuid4())
        self._pending[delivery_id] = PendingDelivery(
            delivery_id, url, {"value": [item]}, subscription_id, kind, due, due
        )
        self._wake.set()

    def _over(self, health: _Health, ratio: float) -> bool:
        return health.total >= self.policy.health_min_samples and health.slow >= ratio * health.total

    def _health_of(self, url: str, now: dt.datetime) -> _Health:
        health = self._health.get(url)
        window = dt.timedelta(seconds=self.policy.health_window_s)
        if health is None or now - health.window_start >= window:
            health = _Health(now)
            self._health[url] = health
        return health

    def _record_drop(self, url: str, kind: str, subscription_id: str, outcome: str) -> None:
        self.records.append(
            DeliveryRecord("-", url, kind, subscription_id, 0, None, 0.0, outcome, self._clock())
        )

    async def deliver_due(self) -> int:
        """Attempt every delivery that is due now; returns how many attempts were made."""
        async with self._lock:
            now = self._clock()
            due = [p for p in self._pending.values() if p.next_due <= now]
            if not due:
                return 0
            await asyncio.gather(*(self._attempt(p) for p in due))
            return len(due)

    async def _attempt(self, delivery: PendingDelivery) -> None:
        if self._session is None:
            raise RuntimeError("the dispatcher has no HTTP session; start the app first")
        delivery.attempts += 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        status: int | None = None
        try:
            async with asyncio.timeout(self.policy.delivery_timeout_s):
                async with self._session.post(
                    delivery.url,
                    data=json.dumps(delivery.payload).encode(),
                    headers={"Content-Type": "application/json; charset=utf-8"},
                ) as response:
                    status = response.status
                    await response.read()
            outcome = "delivered" if 200 <= status < 300 else f"failed: {status}"
        except TimeoutError:
            outcome = "failed: timeout"
        except aiohttp.ClientError as exc:
            outcome = f"failed: {type(exc).__name__}"
        duration = loop.time() - started
        now = self._clock()
        health = self._health_of(delivery.url, now)
        health.total += 1
        if duration > self.policy.slow_threshold_s:
            health.slow += 1
            if outcome == "delivered":
                outcome = "failed: slow"
        self.records.append(
            DeliveryRecord(
                delivery.id,
                delivery.url,
                delivery.kind,
                delivery.subscription_id,
                delivery.attempts,
                status,
                duration,
                outcome,
                now,
            )
        )
        if outcome == "delivered":
            del self._pending[delivery.id]
            return
        backoff = min(
            self.policy.retry_initial_delay_s * 2 ** (delivery.attempts - 1), self.policy.retry_max_delay_s
        )
        next_due = now + dt.timedelta(seconds=backoff)
        if next_due - delivery.first_due > dt.timedelta(seconds=self.policy.retry_horizon_s):
            del self._pending[delivery.id]
            self._record_drop(delivery.url, delivery.kind, delivery.subscription_id, "dropped: retry horizon")
            if delivery.kind == "change" and self._on_dropped is not None:
                self._on_dropped(delivery.subscription_id, "retry horizon exceeded")
            return
        delivery.next_due = next_due

    async def run(self, poll_interval_s: float) -> None:
        """Deliver forever: whenever something is enqueued, and every ``poll_interval_s`` for retries."""
        while True:
            try:
                async with asyncio.timeout(poll_interval_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.deliver_due()
            except Exception:  # the loop must survive one bad round; the failure is logged
                logger.exception("notification delivery round failed")

    def clear(self) -> None:
        """Forget pending deliveries, records and endpoint health."""
        self._pending.clear()
        self.records.clear()
        self._health.clear()
