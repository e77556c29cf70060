"""Gmail's per-user quota as a budget: 15,000 units per user per minute (a moving window), with per-method
costs (https://developers.google.com/gmail/api/reference/quota).

The budget is a token bucket refilled at a fraction of the quota (default 95%) with one second's worth of
burst, so no 60-second window can exceed the quota: ``burst + rate * 60 <= quota``. Reservations may take the
bucket negative; the caller waits the returned delay, so concurrent callers queue in order.
"""

from __future__ import annotations

from dataclasses import dataclass

METHOD_UNITS: dict[str, int] = {
    "profile": 1,
    "history": 2,
    "messages.list": 5,
    "messages.get": 5,
    "attachments.get": 5,
    "stop": 50,
    "watch": 100,
}
"""Quota units per Gmail API method (the quota page's table)."""


@dataclass
class UnitBucket:
    """One user's quota budget; times are seconds on any monotonic clock."""

    rate: float
    capacity: float
    tokens: float
    updated_at: float

    @classmethod
    def for_quota(cls, units_per_minute: int, fraction: float, now: float) -> UnitBucket:
        """A bucket keeping under ``units_per_minute`` with ``fraction`` of it as the steady rate."""
        rate = units_per_minute * fraction / 60.0
        capacity = min(rate, units_per_minute * (1 - fraction))
        return cls(rate=rate, capacity=capacity, tokens=capacity, updated_at=now)

    def reserve(self, units: int, now: float) -> float:
        """Take ``units``; returns how long the caller must wait before spending them (0 when available)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated_at) * self.rate)
        self.updated_at = now
        self.tokens -= units
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate
