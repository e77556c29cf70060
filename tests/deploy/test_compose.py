"""deploy/compose.yaml speaks the services' configuration language and starts things in a working order.

No Docker engine runs here, so the file is checked as data: every `MAILSYNC_*` variable given to a service
is a field of that service's settings model (a misspelt name would be silently ignored by pydantic-settings),
every service image is built from the one service Dockerfile with its own package and port, and the
services wait for the one-shot topic creation.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailsync.common.settings import ServiceSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy" / "compose.yaml"
SERVICES = {"ingest-gmail": 8081, "ingest-outlook": 8082, "router": 8083, "sender": 8084}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def settings_fields(service: str) -> set[str]:
    model: type[ServiceSettings] = importlib.import_module(
        f"mailsync.{service.replace('-', '_')}.settings"
    ).Settings
    return {f"MAILSYNC_{name.upper()}" for name in model.model_fields}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_mailsync_variable_is_a_setting_of_that_service(compose: dict[str, Any], service: str) -> None:
    environment: dict[str, str] = compose["services"][service]["environment"]
    given = {name for name in environment if name.startswith("MAILSYNC_")}
    assert given - settings_fields(service) == set()
    assert environment["MAILSYNC_HTTP_PORT"] == str(SERVICES[service])
    assert environment["MAILSYNC_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_each_service_image_installs_its_own_package_and_waits_for_the_topics(
    compose: dict[str, Any], service: str
) -> None:
    definition = compose["services"][service]
    assert definition["build"]["dockerfile"] == "deploy/docker/service.Dockerfile"
    assert definition["build"]["args"] == {"SERVICE": service, "PORT": str(SERVICES[service])}
    assert definition["depends_on"]["topics"] == {"condition": "service_completed_successfully"}
    assert f"{SERVICES[service]}:{SERVICES[service]}" in definition["ports"]


def test_the_topic_step_runs_the_topics_admin_against_the_compose_broker(compose: dict[str, Any]) -> None:
    topics = compose["services"]["topics"]
    assert topics["entrypoint"][:3] == ["python", "-m", "mailsync.common.topics_admin"]
    assert topics["environment"]["MAILSYNC_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert topics["depends_on"]["kafka"] == {"condition": "service_healthy"}
    assert {"kafka", "mongodb", "pubsub", "gmail-sandbox", "graph-sandbox"} <= set(compose["services"])
