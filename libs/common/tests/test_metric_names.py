"""Every service serves the agreed metric names, and no service names a shared concept its own way.

The catalog is `mailsync.common.metrics`: what every service exposes, what both ingest services expose, and
FastStream's consume/publish families (events in and out). A service may add families under its own prefix
(`mailsync_sender_...`) only for concepts no other service has: a service-prefixed name that speaks of a
shared concept (rejected webhooks, dead letters, lag, quota used, ...) is a second name for it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from mailsync.common.metrics import COMMON_METRIC_NAMES, SYNC_METRIC_NAMES

pytestmark = [pytest.mark.kafka, pytest.mark.mongodb]

SERVICES = {"ingest_gmail": "gmail", "ingest_outlook": "outlook", "router": "router", "sender": "sender"}
"""Service module -> the prefix of its own families (`mailsync_<prefix>_...`)."""
INGEST = {"ingest_gmail", "ingest_outlook"}
FASTSTREAM_FAMILIES = frozenset(
    {
        "mailsync_received_messages_total",
        "mailsync_received_messages_size_bytes",
        "mailsync_received_messages_in_process",
        "mailsync_received_processed_messages_total",
        "mailsync_received_processed_messages_duration_seconds",
        "mailsync_received_processed_messages_exceptions_total",
        "mailsync_published_messages_total",
        "mailsync_published_messages_duration_seconds",
        "mailsync_published_messages_exceptions_total",
    }
)
SHARED_CONCEPTS = re.compile(
    r"reject|dead|lag|retr|provider_call|quota_used|quota_units|webhook|notification|hint|coalesc|resync|"
    r"recover|reauth|watchdog|watch_call|subscription|connections|ingested|skipped|dropped|published|received"
)
"""Words of the shared concepts; a service's own family must not use them."""


async def families(service: str, settings: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """Family name (as exposed, `_total` included) -> label sets of its samples, from `/metrics`."""
    settings_class: Any = importlib.import_module(f"mailsync.{service}.settings").Settings
    create_app = importlib.import_module(f"mailsync.{service}.app").create_app
    async with TestClient(TestServer(create_app(settings_class(**settings)))) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        text = await response.text()
    exposed: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        name = family.name + ("_total" if family.type == "counter" else "")
        exposed[name] = [dict(sample.labels) for sample in family.samples]
    created = {f"{name.removesuffix('_total')}_created" for name in exposed}  # prometheus_client's series
    return {
        name: labels
        for name, labels in exposed.items()
        if name.startswith("mailsync_") and name not in created
    }


async def test_services_serve_the_agreed_names_and_no_second_name_for_a_shared_concept(
    kafka_bootstrap_servers: str, mongodb_uri: str, unique_name: Callable[[str], str]
) -> None:
    served: dict[str, dict[str, list[dict[str, str]]]] = {}
    for service in SERVICES:
        served[service] = await families(
            service,
            {
                "kafka_bootstrap_servers": kafka_bootstrap_servers,
                "mongodb_uri": mongodb_uri,
                "kafka_topic_prefix": unique_name("t") + ".",
                "mongodb_database": unique_name("db"),
                "kafka_ensure_topics": True,
            },
        )

    agreed = set(COMMON_METRIC_NAMES) | set(SYNC_METRIC_NAMES) | FASTSTREAM_FAMILIES
    for service, exposed in served.items():
        required = set(COMMON_METRIC_NAMES) | (set(SYNC_METRIC_NAMES) if service in INGEST else set())
        assert required <= exposed.keys(), (service, required - exposed.keys())
        own = f"mailsync_{SERVICES[service]}_"
        strays = [name for name in exposed if name not in agreed and not name.startswith(own)]
        assert strays == [], (service, strays)
        second_names = [
            name
            for name in exposed
            if name.startswith(own) and SHARED_CONCEPTS.search(name.removeprefix(own))
        ]
        assert second_names == [], (service, second_names)
        unlabelled = [
            name
            for name, samples in exposed.items()
            if any(labels.get("service") != service.replace("_", "-") for labels in samples)
        ]
        assert unlabelled == [], (service, unlabelled)
    for service in INGEST:
        states = {labels["state"] for labels in served[service]["mailsync_connections"]}
        assert states == {"active", "needs_reauth", "disconnected"}, service
    shared_by_all = set.intersection(*(set(exposed) for exposed in served.values()))
    assert set(COMMON_METRIC_NAMES) <= shared_by_all


def test_a_second_name_for_a_shared_concept_would_be_caught() -> None:
    assert SHARED_CONCEPTS.search("push_rejected_total")
    assert SHARED_CONCEPTS.search("history_recoveries_total")
    assert SHARED_CONCEPTS.search("notifications_total")
    assert not SHARED_CONCEPTS.search("results_total")
    assert not SHARED_CONCEPTS.search("quota_reserve_seconds")
