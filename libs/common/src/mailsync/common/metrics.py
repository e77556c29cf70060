"""Prometheus metrics shared by every service, registered on the service's own registry.

Each `create_app` builds one `CollectorRegistry` (so several apps can live in one test process) and one
`CommonMetrics` on it. Names follow `mailsync_<subject>_<unit>`, with `service` as a label, so dashboards and
alerts work the same across services. FastStream's own consume/publish metrics are added to the same registry
by the broker factory under the `mailsync` prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter


@dataclass(frozen=True)
class CommonMetrics:
    """Counters every consumer and publisher updates."""

    handler_retries: Counter
    dead_lettered: Counter
    events_published: Counter

    @classmethod
    def register(cls, registry: CollectorRegistry) -> CommonMetrics:
        """Create the counters on `registry` (call once per registry)."""
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
            events_published=Counter(
                "mailsync_events_published",
                "Events and commands published, by topic.",
                ["service", "topic"],
                registry=registry,
            ),
        )
