"""Proactive pacing of Graph requests per mailbox, so a long catch-up stays under Outlook's request limit.

Outlook allows 10,000 requests per app and mailbox in any 10 minutes (a sliding window); over it, Graph
answers 429 with a `Retry-After` of up to the rest of the window. Reacting only to those 429s turns a long
catch-up into bursts and stalls (and `Retry-After` beyond the client's longest in-place wait becomes a
redelivery). So every request first takes a token from its mailbox's bucket:

- capacity `burst` = `burst_fraction` of the limit (default 5%: 500 requests), so ordinary bursts (a few
  notifications, a short catch-up) are never slowed down;
- refilled at `(limit - burst) / window` per second, so any window of that length admits at most
  `burst + (limit - burst) = limit` requests: a catch-up of any length runs at 95% of the limit or more
  without meeting the window (a 429 that still comes, e.g. from another app instance, is honoured as before).

Tokens are reserved, not polled: a request that finds the bucket empty is told how long to wait, so
concurrent requests of a mailbox queue in order without a lock.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

_PRUNE_EVERY = 1024


@dataclass
class TokenBucket:
    """One mailbox's budget; `tokens` below zero are requests already promised a later start."""

    rate: float
    capacity: float
    tokens: float
    updated: float

    def reserve(self, now: float) -> float:
        """Take one token; the seconds to wait before using it (0: now)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def idle(self, now: float) -> bool:
        return self.tokens + (now - self.updated) * self.rate >= self.capacity


class MailboxPacer:
    """Token buckets per mailbox, sized from a request limit per sliding window."""

    def __init__(
        self,
        requests_per_window: int,
        window_seconds: float,
        burst_fraction: float = 0.05,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if requests_per_window < 2 or window_seconds <= 0 or not 0 < burst_fraction < 1:
            raise ValueError("need at least 2 requests per window, a positive window, 0 < burst_fraction < 1")
        self.capacity = float(max(1, math.floor(requests_per_window * burst_fraction)))
        self.rate = (requests_per_window - self.capacity) / window_seconds
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, TokenBucket] = {}
        self._reservations = 0
        self.waited_seconds = 0.0
        """Total time requests waited for a token (for the benchmark)."""

    def reserve(self, mailbox_id: str) -> float:
        """Take a token for the mailbox; the seconds to wait before sending."""
        now = self._clock()
        bucket = self._buckets.get(mailbox_id)
        if bucket is None:
            bucket = self._buckets[mailbox_id] = TokenBucket(self.rate, self.capacity, self.capacity, now)
        self._reservations += 1
        if self._reservations % _PRUNE_EVERY == 0:
            self._prune(now)
        return bucket.reserve(now)

    async def acquire(self, mailbox_id: str) -> None:
        """Wait until the mailbox may send one more request."""
        wait = self.reserve(mailbox_id)
        if wait > 0:
            self.waited_seconds += wait
            await self._sleep(wait)

    def _prune(self, now: float) -> None:
        """Forget full buckets (idle mailboxes): a new one starts full, which is the same."""
        for mailbox_id in [m for m, b in self._buckets.items() if b.idle(now)]:
            del self._buckets[mailbox_id]
