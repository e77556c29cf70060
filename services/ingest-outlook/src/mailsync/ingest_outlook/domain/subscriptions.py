"""Graph change-notification subscriptions: which folders, how long, and when to renew.

Outlook message subscriptions live at most 10,080 minutes. Each is renewed `lead` before it expires plus a
random share of `spread`, so renewals of subscriptions created together (a deployment, a bulk onboarding)
don't fall on the same minute and stay under Graph's subscription-write limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

FOLDERS: tuple[str, ...] = ("Inbox", "SentItems")
"""Well-known folders watched and synced; Sent Items gives outbound mail (O2)."""

LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})


def resource_for(graph_user_id: str, folder: str) -> str:
    """The subscription resource of a folder's messages."""
    return f"users/{graph_user_id}/mailFolders('{folder}')/messages"


@dataclass(frozen=True)
class RenewalPolicy:
    """Lifetime requested and renewal timing."""

    lifetime: timedelta
    lead: timedelta
    spread: timedelta

    def expiry(self, now: datetime) -> datetime:
        """The expiration to request now."""
        return now + self.lifetime

    def renew_at(self, expires_at: datetime, jitter: float) -> datetime:
        """When to renew a subscription expiring at `expires_at`; `jitter` is uniform in [0, 1)."""
        return expires_at - self.lead - self.spread * jitter
