"""When a mailbox whose notifications went silent is synced anyway (the watchdog)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class WatchdogPolicy:
    """A mailbox is due `silence` after its last complete sync, plus a random share of `spread`.

    Every notification leads to a sync (or is coalesced into one that started later), so "no sync for
    `silence`" also means "no notification for `silence`". The spread keeps mailboxes connected together
    from all coming due in the same maintenance round.
    """

    silence: timedelta = timedelta(hours=1)
    spread: timedelta = timedelta(minutes=10)

    def due_at(self, now: datetime, jitter: float) -> datetime:
        """`jitter` is drawn from [0, 1)."""
        return now + self.silence + self.spread * jitter
