"""The day a mailbox send counts against (S3), and when that day's quota resets.

Gmail enforces its sending limit over a rolling 24 hours and does not document the exact window. The ledger
uses a fixed, documented day instead: **the calendar day in Pacific time** (America/Los_Angeles, midnight to
midnight, following daylight saving), which is the day Google's API quotas reset on. A command refused for
`quota_exceeded` is told the next Pacific midnight as `quota_resets_at`. Gmail's own rolling limit remains the
backstop: if it still refuses a send (for instance because the user also sent mail from the Gmail web UI),
the command fails with `quota_exceeded` and Gmail's own retry time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

QUOTA_TIMEZONE = ZoneInfo("America/Los_Angeles")


@dataclass(frozen=True)
class QuotaDay:
    """One quota day: its key (`YYYY-MM-DD` in Pacific time) and the UTC instant it ends."""

    key: str
    resets_at: datetime


def quota_day(now: datetime) -> QuotaDay:
    """The quota day `now` (timezone-aware) falls in."""
    return _day(now.astimezone(QUOTA_TIMEZONE).date())


def quota_day_named(key: str) -> QuotaDay:
    """The quota day whose key is `key` (`YYYY-MM-DD`)."""
    return _day(date.fromisoformat(key))


def _day(day: date) -> QuotaDay:
    next_midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=QUOTA_TIMEZONE)
    return QuotaDay(key=day.isoformat(), resets_at=next_midnight.astimezone(UTC))
