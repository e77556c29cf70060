"""Prometheus metrics with one name per concept across every service, registered on the service's registry.

Each `create_app` builds one `CollectorRegistry` (so several apps can live in one test process). Names follow
`mailsync_<subject>_<unit>` and every metric carries the `service` label, so one dashboard or alert covers
every service. A concept two services share is defined here once, never again in a service:

- `CommonMetrics` (every service): retries, dead letters, consumer lag, provider calls, quota used. Events in
  and out are FastStream's consume and publish metrics, added by the broker factory under the same prefix
  with the same `service` label (`mailsync_received_messages_total`, `mailsync_published_messages_total`).
- `SyncMetrics` (the ingest services): webhooks, hints, ingested messages, resyncs, connections by state.

A service's own metrics module binds the `service` label (and any label fixed for a call site) once with
`BoundCounter`/`BoundHistogram`, so call sites pass only the labels that vary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

WEBHOOK_SECONDS_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0)

COMMON_METRIC_NAMES: Final = (
    "mailsync_received_messages_total",
    "mailsync_published_messages_total",
    "mailsync_consumer_lag",
    "mailsync_handler_retries_total",
    "mailsync_dead_lettered_total",
    "mailsync_provider_calls_total",
    "mailsync_quota_used_total",
)
"""Families every service exposes (exposition names)."""

SYNC_METRIC_NAMES: Final = (
    "mailsync_webhook_accepted_total",
    "mailsync_webhook_rejected_total",
    "mailsync_webhook_response_seconds",
    "mailsync_notifications_dropped_total",
    "mailsync_hints_published_total",
    "mailsync_hints_coalesced_total",
    "mailsync_messages_ingested_total",
    "mailsync_messages_skipped_total",
    "mailsync_resyncs_total",
    "mailsync_reauth_required_total",
    "mailsync_watchdog_hints_total",
    "mailsync_push_channel_operations_total",
    "mailsync_connections",
)
"""Families both ingest services expose (exposition names)."""


class BoundCounter:
    """A counter with its leading label values fixed; `labels` takes the rest, `inc` needs none left."""

    def __init__(self, counter: Counter, *values: str) -> None:
        self._counter = counter
        self._values = values

    def labels(self, *values: str) -> Counter:
        return self._counter.labels(*self._values, *values)

    def inc(self, amount: float = 1.0) -> None:
        self._counter.labels(*self._values).inc(amount)


class BoundHistogram:
    """A histogram with its leading label values fixed."""

    def __init__(self, histogram: Histogram, *values: str) -> None:
        self._histogram = histogram
        self._values = values

    def labels(self, *values: str) -> Histogram:
        return self._histogram.labels(*self._values, *values)

    def observe(self, amount: float) -> None:
        self._histogram.labels(*self._values).observe(amount)


@dataclass(frozen=True)
class CommonMetrics:
    """What every consumer, publisher and provider client reports."""

    handler_retries: Counter
    dead_lettered: Counter
    consumer_lag: Gauge
    provider_calls: Counter
    quota_used: Counter

    @classmethod
    def register(cls, registry: CollectorRegistry) -> CommonMetrics:
        """Create the metrics on `registry` (call once per registry)."""
        return cls(
            handler_retries=Counter(
                "mailsync_handler_retries",
                "Transient handler failures that were retried, by topic.",
                ["service", "topic"],
                registry=registry,
            ),
            dead_lettered=Counter(
                "mailsync_dead_lettered",
                "Messages moved to a dead-letter topic, by source topic and reason.",
                ["service", "topic", "reason"],
                registry=registry,
            ),
            consumer_lag=Gauge(
                "mailsync_consumer_lag",
                "Records behind the end of each assigned partition, per consumer group (read at scrape).",
                ["service", "group", "topic", "partition"],
                registry=registry,
            ),
            provider_calls=Counter(
                "mailsync_provider_calls",
                "Calls to a mail provider's API, by operation and outcome (ok, not_found, unauthorized, "
                "rate_limited, client_error, server_error, network_error).",
                ["service", "provider", "operation", "outcome"],
                registry=registry,
            ),
            quota_used=Counter(
                "mailsync_quota_used",
                "Provider quota spent, in the quota's own unit (Gmail API units, Graph requests, sends).",
                ["service", "provider", "quota"],
                registry=registry,
            ),
        )


@dataclass(frozen=True)
class SyncMetrics:
    """What both ingest services report: webhooks in, hints and messages out, mailbox health."""

    webhook_accepted: Counter
    webhook_rejected: Counter
    webhook_response_seconds: Histogram
    notifications_dropped: Counter
    hints_published: Counter
    hints_coalesced: Counter
    messages_ingested: Counter
    messages_skipped: Counter
    resyncs: Counter
    reauth_required: Counter
    watchdog_hints: Counter
    push_channel_operations: Counter
    connections: Gauge

    @classmethod
    def register(cls, registry: CollectorRegistry) -> SyncMetrics:
        """Create the metrics on `registry` (call once per registry)."""
        return cls(
            webhook_accepted=Counter(
                "mailsync_webhook_accepted",
                "Provider notification requests accepted, by endpoint.",
                ["service", "endpoint"],
                registry=registry,
            ),
            webhook_rejected=Counter(
                "mailsync_webhook_rejected",
                "Provider notification requests refused, by endpoint and reason.",
                ["service", "endpoint", "reason"],
                registry=registry,
            ),
            webhook_response_seconds=Histogram(
                "mailsync_webhook_response_seconds",
                "Time to answer a provider notification request (Graph's deadline is 3 s).",
                ["service", "endpoint"],
                buckets=WEBHOOK_SECONDS_BUCKETS,
                registry=registry,
            ),
            notifications_dropped=Counter(
                "mailsync_notifications_dropped",
                "Authentic notifications acknowledged without a hint (unknown mailbox, ...), by reason.",
                ["service", "reason"],
                registry=registry,
            ),
            hints_published=Counter(
                "mailsync_hints_published",
                "MailboxChanged hints published, by source (push, pull, watchdog, ...).",
                ["service", "source"],
                registry=registry,
            ),
            hints_coalesced=Counter(
                "mailsync_hints_coalesced",
                "Hints skipped because a sync already covered them.",
                ["service"],
                registry=registry,
            ),
            messages_ingested=Counter(
                "mailsync_messages_ingested",
                "MessageIngested events published, by direction.",
                ["service", "direction"],
                registry=registry,
            ),
            messages_skipped=Counter(
                "mailsync_messages_skipped",
                "Provider messages that did not become events, by reason.",
                ["service", "reason"],
                registry=registry,
            ),
            resyncs=Counter(
                "mailsync_resyncs",
                "Recoveries after a lost sync cursor or missed notifications, by cause.",
                ["service", "cause"],
                registry=registry,
            ),
            reauth_required=Counter(
                "mailsync_reauth_required",
                "Connections moved to needs_reauth (C6).",
                ["service"],
                registry=registry,
            ),
            watchdog_hints=Counter(
                "mailsync_watchdog_hints",
                "Hints published by the watchdog for mailboxes whose notifications went silent.",
                ["service"],
                registry=registry,
            ),
            push_channel_operations=Counter(
                "mailsync_push_channel_operations",
                "Gmail watches and Graph subscriptions: operations by kind and outcome.",
                ["service", "operation", "outcome"],
                registry=registry,
            ),
            connections=Gauge(
                "mailsync_connections",
                "Mailbox connections by state (active, needs_reauth, disconnected), read at scrape.",
                ["service", "state"],
                registry=registry,
            ),
        )
