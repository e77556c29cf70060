"""Gmail's usage limits: per-user quota units, the per-user concurrency cap and the daily sending limit.

* Quota units (https://developers.google.com/gmail/api/reference/quota): 15,000 units per user per minute,
  charged per method (``messages.send`` 100, ``messages.get`` 5, ``history.list`` 2, ...). Exceeding it
  answers 403 ``userRateLimitExceeded``; the sandbox adds a ``Retry-After`` with the seconds until enough
  units free up in its sliding 60-second window.
* Concurrency: Gmail limits concurrent requests per user (about 10 by community reports); over it answers 429
  ``rateLimitExceeded`` "Too many concurrent requests for user". Off unless configured.
* Daily sending limit (support.google.com/a/answer/166852, support.google.com/mail/answer/22839): 2,000
  messages a day for Workspace, about 500 for consumer accounts, over a rolling 24 hours; exceeding it answers
  429 "User-rate limit exceeded.  Retry after <time> (Mail sending)" (handle-errors guide, "Mail sending
  limits").
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Final

from mailsync.gmail_sandbox.errors import (
    sending_limit_exceeded,
    too_many_concurrent_requests,
    user_rate_limit_exceeded,
)

METHOD_COSTS: Final[dict[str, int]] = {
    "gmail.users.getProfile": 1,
    "gmail.users.history.list": 2,
    "gmail.users.labels.list": 1,
    "gmail.users.labels.get": 1,
    "gmail.users.labels.create": 5,
    "gmail.users.messages.get": 5,
    "gmail.users.messages.list": 5,
    "gmail.users.messages.attachments.get": 5,
    "gmail.users.messages.modify": 5,
    "gmail.users.messages.trash": 5,
    "gmail.users.messages.untrash": 5,
    "gmail.users.messages.delete": 10,
    "gmail.users.messages.import": 25,
    "gmail.users.messages.insert": 25,
    "gmail.users.messages.send": 100,
    "gmail.users.threads.get": 10,
    "gmail.users.threads.list": 10,
    "gmail.users.watch": 100,
    "gmail.users.stop": 50,
}

DAY_SECONDS = 24 * 3600
WINDOW_SECONDS = 60.0


class QuotaLedger:
    """Per-user quota units in a sliding 60-second window."""

    def __init__(self, units_per_minute: int = 15_000) -> None:
        self.units_per_minute = units_per_minute
        self._spent: dict[str, deque[tuple[float, int]]] = defaultdict(deque)
        self._used: dict[str, int] = defaultdict(int)  # the units in each user's window, kept with it

    def charge(self, user: str, units: int, now: float) -> None:
        """Charge ``units`` to ``user``; nothing is charged when the request is refused.

        Raises:
            GoogleApiError: 403 ``userRateLimitExceeded`` with ``Retry-After``.
        """
        spent = self._spent[user]
        while spent and spent[0][0] <= now - WINDOW_SECONDS:
            self._used[user] -= spent.popleft()[1]
        used = self._used[user]
        if used + units > self.units_per_minute:
            freed = 0
            retry_at = now + WINDOW_SECONDS
            for at, units_spent in spent:
                freed += units_spent
                if used - freed + units <= self.units_per_minute:
                    retry_at = at + WINDOW_SECONDS
                    break
            raise user_rate_limit_exceeded(max(1, math.ceil(retry_at - now)))
        spent.append((now, units))
        self._used[user] += units

    def reset(self) -> None:
        """Forget all spending."""
        self._spent.clear()
        self._used.clear()


class ConcurrencyLimiter:
    """Counts in-flight requests per user and refuses those over the cap (``None``: no cap)."""

    def __init__(self, max_per_user: int | None = None) -> None:
        self.max_per_user = max_per_user
        self._in_flight: dict[str, int] = defaultdict(int)

    @contextmanager
    def hold(self, user: str) -> Iterator[None]:
        """Hold one slot for ``user`` for the duration of the block.

        Raises:
            GoogleApiError: 429 "Too many concurrent requests for user".
        """
        if self.max_per_user is not None and self._in_flight[user] >= self.max_per_user:
            raise too_many_concurrent_requests()
        self._in_flight[user] += 1
        try:
            yield
        finally:
            self._in_flight[user] -= 1


def check_daily_sending(sent_at: deque[float], limit: int, now: float) -> None:
    """Refuse a send when ``limit`` messages were already sent in the last 24 hours (``sent_at`` is pruned).

    Raises:
        GoogleApiError: 429 "User-rate limit exceeded.  Retry after ... (Mail sending)".
    """
    while sent_at and sent_at[0] <= now - DAY_SECONDS:
        sent_at.popleft()
    if len(sent_at) >= limit:
        retry_at = sent_at[len(sent_at) - limit] + DAY_SECONDS
        stamp = (
            datetime.fromtimestamp(retry_at, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )
        raise sending_limit_exceeded(stamp, max(1, math.ceil(retry_at - now)))
