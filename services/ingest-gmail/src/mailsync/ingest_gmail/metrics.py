"""Prometheus metrics of ingest-gmail: the shared ones (`mailsync.common.metrics`) bound to this service.

The names are the ones every ingest service uses (one name per concept); only the fixed labels are chosen
here: the push endpoint, the provider, the quota, the recovery cause of a stale history cursor.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailsync.common.metrics import BoundCounter, BoundHistogram, CommonMetrics, SyncMetrics
from mailsync.common.service import ServiceRuntime

PUSH_ENDPOINT = "pubsub_push"
PROVIDER = "gmail"


@dataclass(frozen=True)
class IngestMetrics:
    """The counters the use cases report to, labelled for this service."""

    push_accepted: BoundCounter
    push_rejected: BoundCounter
    """By reason."""
    push_seconds: BoundHistogram
    notifications_dropped: BoundCounter
    """By reason."""
    hints_published: BoundCounter
    """By source."""
    hints_coalesced: BoundCounter
    messages_published: BoundCounter
    """By direction."""
    messages_skipped: BoundCounter
    """By reason."""
    history_recoveries: BoundCounter
    reauth_required: BoundCounter
    watch_calls: BoundCounter
    """By outcome."""
    watchdog_hints: BoundCounter
    provider_calls: BoundCounter
    """By operation and outcome."""
    quota_units: BoundCounter
    shared: SyncMetrics

    @classmethod
    def register(cls, runtime: ServiceRuntime) -> IngestMetrics:
        """Create the shared sync metrics on the runtime's registry and bind them to this service."""
        service = runtime.settings.service_name
        shared = SyncMetrics.register(runtime.registry)
        common: CommonMetrics = runtime.metrics
        return cls(
            push_accepted=BoundCounter(shared.webhook_accepted, service, PUSH_ENDPOINT),
            push_rejected=BoundCounter(shared.webhook_rejected, service, PUSH_ENDPOINT),
            push_seconds=BoundHistogram(shared.webhook_response_seconds, service),
            notifications_dropped=BoundCounter(shared.notifications_dropped, service),
            hints_published=BoundCounter(shared.hints_published, service),
            hints_coalesced=BoundCounter(shared.hints_coalesced, service),
            messages_published=BoundCounter(shared.messages_ingested, service),
            messages_skipped=BoundCounter(shared.messages_skipped, service),
            history_recoveries=BoundCounter(shared.resyncs, service, "history_expired"),
            reauth_required=BoundCounter(shared.reauth_required, service),
            watch_calls=BoundCounter(shared.push_channel_operations, service, "watch"),
            watchdog_hints=BoundCounter(shared.watchdog_hints, service),
            provider_calls=BoundCounter(common.provider_calls, service, PROVIDER),
            quota_units=BoundCounter(common.quota_used, service, PROVIDER, "api_units"),
            shared=shared,
        )
