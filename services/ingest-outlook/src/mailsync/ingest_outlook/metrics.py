"""Prometheus metrics of ingest-outlook, on the service's registry (served at `/metrics`)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass(frozen=True)
class IngestMetrics:
    notifications: Counter
    """Graph notifications by endpoint (`change`, `lifecycle`) and outcome (`accepted` or a rejection)."""
    notification_seconds: Histogram
    """Time to answer a notification POST."""
    messages_published: Counter
    """`MessageIngested` events by folder."""
    resyncs: Counter
    """Full resyncs by cause (`sync_state_not_found`, `lifecycle_missed`, ...)."""
    subscriptions: Counter
    """Subscription operations by kind (`created`, `renewed`, `recreated`, `deleted`, `failed`)."""
    reauth_required: Counter
    """Connections moved to `needs_reauth`."""
    hints_coalesced: Counter
    """Push hints skipped because a later-started sync already covered them."""
    watchdog_hints: Counter
    """`MailboxChanged(source="watchdog")` hints published for mailboxes whose notifications went silent."""

    @classmethod
    def register(cls, registry: CollectorRegistry) -> IngestMetrics:
        return cls(
            notifications=Counter(
                "mailsync_outlook_notifications",
                "Graph notifications received, by endpoint and outcome.",
                ["endpoint", "outcome"],
                registry=registry,
            ),
            notification_seconds=Histogram(
                "mailsync_outlook_notification_response_seconds",
                "Time to answer a Graph notification POST (Graph's deadline is 3 s).",
                ["endpoint"],
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0),
                registry=registry,
            ),
            messages_published=Counter(
                "mailsync_outlook_messages_published",
                "MessageIngested events published, by folder.",
                ["folder"],
                registry=registry,
            ),
            resyncs=Counter(
                "mailsync_outlook_resyncs", "Full folder resyncs, by cause.", ["cause"], registry=registry
            ),
            subscriptions=Counter(
                "mailsync_outlook_subscription_operations",
                "Graph subscription operations, by kind.",
                ["kind"],
                registry=registry,
            ),
            reauth_required=Counter(
                "mailsync_outlook_reauth_required",
                "Connections that lost their grant (C6).",
                registry=registry,
            ),
            hints_coalesced=Counter(
                "mailsync_outlook_hints_coalesced",
                "Push hints skipped because a sync started after them already covered them.",
                registry=registry,
            ),
            watchdog_hints=Counter(
                "mailsync_outlook_watchdog_hints",
                "Watchdog hints published for mailboxes with no notification or sync for too long.",
                registry=registry,
            ),
        )
