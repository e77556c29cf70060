"""Adaptive pacing of Gmail calls per mailbox, so a long catch-up stays under the per-user quota instead of
provoking 403 ``userRateLimitExceeded`` (which would still be retried after ``Retry-After``).

Buckets live in the process: the Kafka key routes all of a mailbox's sync work to one consumer, so one
process paces a mailbox. Idle buckets are forgotten.
"""

from __future__ import annotations

import asyncio
import time

from mailsync.ingest_gmail.domain.quota import METHOD_UNITS, UnitBucket

_IDLE_SECONDS = 120.0
_MAX_BUCKETS = 10_000


class QuotaPacer:
    """Waits before each call until the mailbox's budget allows it."""

    def __init__(self, units_per_minute: int, fraction: float) -> None:
        self._units_per_minute = units_per_minute
        self._fraction = fraction
        self._buckets: dict[str, UnitBucket] = {}

    async def acquire(self, mailbox_id: str, method: str) -> None:
        """Spend the units of ``method`` for ``mailbox_id``, sleeping first when the budget is exhausted."""
        now = time.monotonic()
        bucket = self._buckets.get(mailbox_id)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._forget_idle(now)
            bucket = UnitBucket.for_quota(self._units_per_minute, self._fraction, now)
            self._buckets[mailbox_id] = bucket
        delay = bucket.reserve(METHOD_UNITS[method], now)
        if delay > 0:
            await asyncio.sleep(delay)

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if now - b.updated_at > _IDLE_SECONDS]:
            del self._buckets[key]
