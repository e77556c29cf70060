"""Prometheus metrics of ingest-outlook: the shared ones (`mailsync.common.metrics`) bound to this service.

The names are the ones every ingest service uses (one name per concept); only the fixed labels are chosen
here. Served at `/metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailsync.common.metrics import BoundCounter, BoundHistogram, SyncMetrics
from mailsync.common.service import ServiceRuntime

PROVIDER = "outlook"
ACCEPTED_OUTCOMES = frozenset({"accepted", "validation"})
"""Notification outcomes that are not rejections: a handled notification and Graph's validation handshake."""


class NotificationOutcomes:
    """Counts each Graph notification (or handshake) as accepted or rejected, by endpoint."""

    def __init__(self, shared: SyncMetrics, service: str) -> None:
        self._accepted = BoundCounter(shared.webhook_accepted, service)
        self._rejected = BoundCounter(shared.webhook_rejected, service)

    def count(self, endpoint: str, outcome: str) -> None:
        """`outcome` is `accepted`, `validation` or the reason of a rejection."""
        if outcome in ACCEPTED_OUTCOMES:
            self._accepted.labels(endpoint).inc()
        else:
            self._rejected.labels(endpoint, outcome).inc()


@dataclass(frozen=True)
class IngestMetrics:
    notifications: NotificationOutcomes
    """Graph notifications by endpoint (`change`, `lifecycle`) and outcome (`accepted` or a rejection)."""
    notification_seconds: BoundHistogram
    """Time to answer a notification POST, by endpoint."""
    messages_published: BoundCounter
    """`MessageIngested` events by direction."""
    resyncs: BoundCounter
    """Full resyncs by cause (`sync_state_not_found`, `lifecycle_missed`, ...)."""
    subscriptions: BoundCounter
    """Subscription operations by operation (`create`, `renew`, `recreate`, `delete`) and outcome."""
    reauth_required: BoundCounter
    """Connections moved to `needs_reauth`."""
    hints_coalesced: BoundCounter
    """Push hints skipped because a later-started sync already covered them."""
    watchdog_hints: BoundCounter
    """`MailboxChanged(source="watchdog")` hints published for mailboxes whose notifications went silent."""
    provider_calls: BoundCounter
    """Graph requests by operation and outcome."""
    quota_requests: BoundCounter
    """Graph requests spent from the mailbox's request budget."""
    shared: SyncMetrics

    @classmethod
    def register(cls, runtime: ServiceRuntime) -> IngestMetrics:
        service = runtime.settings.service_name
        shared = SyncMetrics.register(runtime.registry)
        return cls(
            notifications=NotificationOutcomes(shared, service),
            notification_seconds=BoundHistogram(shared.webhook_response_seconds, service),
            messages_published=BoundCounter(shared.messages_ingested, service),
            resyncs=BoundCounter(shared.resyncs, service),
            subscriptions=BoundCounter(shared.push_channel_operations, service),
            reauth_required=BoundCounter(shared.reauth_required, service),
            hints_coalesced=BoundCounter(shared.hints_coalesced, service),
            watchdog_hints=BoundCounter(shared.watchdog_hints, service),
            provider_calls=BoundCounter(runtime.metrics.provider_calls, service, PROVIDER),
            quota_requests=BoundCounter(runtime.metrics.quota_used, service, PROVIDER, "graph_requests"),
            shared=shared,
        )
