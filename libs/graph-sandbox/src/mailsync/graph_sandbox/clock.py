"""Time source for every rule of the sandbox that depends on time.

Token lifetimes, subscription expiry, the 10-minute throttling window, notification retry horizons and
upload-session expiry all read :meth:`Clock.now`. Tests inject :class:`ManualClock` and move time forward
instead of sleeping; the default :class:`SystemClock` follows the wall clock.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    """A source of the current UTC time."""

    def now(self) -> dt.datetime:
        """Return the current time as an aware UTC datetime."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> dt.datetime:
        """Return the current wall-clock time in UTC."""
        return dt.datetime.now(dt.UTC)


class ManualClock:
    """A clock that only moves when told to; for tests.

    It starts at ``start`` (default: the wall clock at construction) and advances with :meth:`advance`.
    """

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = start if start is not None else dt.datetime.now(dt.UTC)
        if self._now.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")

    def now(self) -> dt.datetime:
        """Return the clock's current time."""
        return self._now

    def advance(self, seconds: float) -> dt.datetime:
        """Move the clock forward by ``seconds`` and return the new time."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += dt.timedelta(seconds=seconds)
        return self._now


def to_graph_timestamp(value: dt.datetime) -> str:
    """Format a datetime the way Graph writes DateTimeOffset values: UTC with a ``Z`` suffix."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_graph_precise_timestamp(value: dt.datetime) -> str:
    """Format with seven fractional digits, as Graph writes subscription and session expiry times."""
    utc = value.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}0Z"


def parse_graph_timestamp(text: str) -> dt.datetime:
    """Parse an ISO 8601 DateTimeOffset as Graph accepts it (``Z`` or an offset; fractions optional).

    Raises ``ValueError`` for anything else.
    """
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    if "." in cleaned:
        head, _, tail = cleaned.partition(".")
        digits = ""
        rest = tail
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        cleaned = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    value = dt.datetime.fromisoformat(cleaned)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)
