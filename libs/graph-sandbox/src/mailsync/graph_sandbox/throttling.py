"""Outlook service limits, counted per application id and mailbox.

From https://learn.microsoft.com/graph/throttling-limits (Outlook service limits, v1.0 and beta): 10,000 API
requests in a 10-minute period and 4 concurrent requests, per app ID and mailbox. Over either limit the
request
is answered 429 with a ``Retry-After`` header (https://learn.microsoft.com/graph/throttling). The bodies are
the ones clients actually see: ``ApplicationThrottled`` "Application is over its MailboxConcurrency limit."
for concurrency, and the documented ``TooManyRequests`` "Please retry again later." for the request rate.
Requests rejected by the limiter aren't counted. The window is sliding and follows the injectable clock.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import math
from collections.abc import Callable

from mailsync.graph_sandbox.errors import GraphError


@dataclasses.dataclass(frozen=True)
class ThrottlePolicy:
    """The limits; defaults are Outlook's."""

    requests_per_window: int = 10_000
    window_s: float = 600.0
    max_concurrent: int = 4
    concurrency_retry_after_s: int = 1


def too_many_requests(retry_after_s: int) -> GraphError:
    """The documented 429 body for a request-rate throttle."""
    return GraphError(
        429, "TooManyRequests", "Please retry again later.", headers={"Retry-After": str(retry_after_s)}
    )


class MailboxThrottle:
    """Admission control for Graph requests on Outlook resources."""

    def __init__(self, policy: ThrottlePolicy, clock: Callable[[], dt.datetime]) -> None:
        self.policy = policy
        self._clock = clock
        self._recent: dict[tuple[str, str], collections.deque[dt.datetime]] = collections.defaultdict(
            collections.deque
        )
        self._in_flight: collections.Counter[tuple[str, str]] = collections.Counter()

    def acquire(self, app_id: str, mailbox_id: str) -> None:
        """Admit one request or raise the 429. Every admitted request must be :meth:`release`-d."""
        key = (app_id, mailbox_id)
        if self._in_flight[key] >= self.policy.max_concurrent:
            raise GraphError(
                429,
                "ApplicationThrottled",
                "Application is over its MailboxConcurrency limit.",
                headers={"Retry-After": str(self.policy.concurrency_retry_after_s)},
            )
        now = self._clock()
        window = dt.timedelta(seconds=self.policy.window_s)
        recent = self._recent[key]
        while recent and now - recent[0] >= window:
            recent.popleft()
        if len(recent) >= self.policy.requests_per_window:
            wait = (recent[0] + window - now).total_seconds()
            raise too_many_requests(max(1, math.ceil(wait)))
        recent.append(now)
        self._in_flight[key] += 1

    def release(self, app_id: str, mailbox_id: str) -> None:
        """End a request admitted by :meth:`acquire`."""
        key = (app_id, mailbox_id)
        self._in_flight[key] -= 1
        if self._in_flight[key] <= 0:
            del self._in_flight[key]

    def reset(self) -> None:
        """Forget all counts."""
        self._recent.clear()
        self._in_flight.clear()
