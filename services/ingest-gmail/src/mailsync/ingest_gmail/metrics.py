"""Prometheus metrics of ingest-gmail, registered on the runtime's registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter


@dataclass(frozen=True)
class IngestMetrics:
    """Counters every use case reports to."""

    push_rejected: Counter
    notifications_dropped: Counter
    hints_published: Counter
    hints_coalesced: Counter
    messages_published: Counter
    messages_skipped: Counter
    history_recoveries: Counter
    reauth_required: Counter
    watch_calls: Counter
    watchdog_hints: Counter

    @classmethod
    def register(cls, registry: CollectorRegistry) -> IngestMetrics:
        """Create the counters on ``registry``."""
        return cls(
            push_rejected=Counter(
                "mailsync_gmail_push_rejected",
                "Pub/Sub pushes refused, by reason.",
                ["reason"],
                registry=registry,
            ),
            notifications_dropped=Counter(
                "mailsync_gmail_notifications_dropped",
                "Authentic notifications acked without a hint (unknown mailbox, malformed data), by reason.",
                ["reason"],
                registry=registry,
            ),
            hints_published=Counter(
                "mailsync_gmail_hints_published",
                "MailboxChanged hints published, by source.",
                ["source"],
                registry=registry,
            ),
            hints_coalesced=Counter(
                "mailsync_gmail_hints_coalesced",
                "Hints already covered by the stored cursor.",
                registry=registry,
            ),
            messages_published=Counter(
                "mailsync_gmail_messages_published",
                "MessageIngested events published, by direction.",
                ["direction"],
                registry=registry,
            ),
            messages_skipped=Counter(
                "mailsync_gmail_messages_skipped",
                "Fetched history entries that did not become events, by reason.",
                ["reason"],
                registry=registry,
            ),
            history_recoveries=Counter(
                "mailsync_gmail_history_recoveries",
                "Gap recoveries after a stale history cursor (404).",
                registry=registry,
            ),
            reauth_required=Counter(
                "mailsync_gmail_reauth_required", "Connections moved to needs_reauth (C6).", registry=registry
            ),
            watch_calls=Counter(
                "mailsync_gmail_watch_calls", "users.watch calls, by outcome.", ["outcome"], registry=registry
            ),
            watchdog_hints=Counter(
                "mailsync_gmail_watchdog_hints", "Silent mailboxes synced by the watchdog.", registry=registry
            ),
        )
