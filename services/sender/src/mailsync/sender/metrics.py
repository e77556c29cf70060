"""The sender's own Prometheus metrics (the shared ones come from `mailsync.common.metrics`)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass(frozen=True)
class SenderMetrics:
    """Results by status/route/reason, and how long the quota reservation takes."""

    results: Counter
    quota_reserve_seconds: Histogram

    @classmethod
    def register(cls, registry: CollectorRegistry) -> SenderMetrics:
        """Create the metrics on `registry`."""
        return cls(
            results=Counter(
                "mailsync_sender_results",
                "Send results published, by status, route and reason.",
                ["status", "route", "reason"],
                registry=registry,
            ),
            quota_reserve_seconds=Histogram(
                "mailsync_sender_quota_reserve_seconds",
                "Time to reserve one send in the quota ledger (S3).",
                buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
                registry=registry,
            ),
        )
