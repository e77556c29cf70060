"""The sender's own Prometheus metrics (the shared ones come from `mailsync.common.metrics`).

Like every mailsync metric they carry the `service` label, bound here so call sites pass only their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from mailsync.common.metrics import BoundCounter, BoundHistogram, CommonMetrics


@dataclass(frozen=True)
class SenderMetrics:
    """Results by status/route/reason, how long the quota reservation takes, and sends counted (S3)."""

    results: BoundCounter
    quota_reserve_seconds: BoundHistogram
    quota_used: BoundCounter
    """The shared `mailsync_quota_used_total`; labels: provider, quota."""

    @classmethod
    def register(
        cls, registry: CollectorRegistry, common: CommonMetrics, service: str = "sender"
    ) -> SenderMetrics:
        """Create the metrics on `registry`; `common` holds the shared ones."""
        return cls(
            quota_used=BoundCounter(common.quota_used, service),
            results=BoundCounter(
                Counter(
                    "mailsync_sender_results",
                    "Send results published, by status, route and reason.",
                    ["service", "status", "route", "reason"],
                    registry=registry,
                ),
                service,
            ),
            quota_reserve_seconds=BoundHistogram(
                Histogram(
                    "mailsync_sender_quota_reserve_seconds",
                    "Time to reserve one send in the quota ledger (S3).",
                    ["service"],
                    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
                    registry=registry,
                ),
                service,
            ),
        )
