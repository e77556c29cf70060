"""deploy/compose.yaml speaks the services' configuration language and starts things in a working order.

No Docker engine runs here, so the file is checked as data: every `MAILSYNC_*` variable given to a service
is a field of that service's settings model (a misspelt name would be silently ignored by pydantic-settings),
every service image is built from the one service Dockerfile with its own package and port, the
services wait for the one-shot topic creation, and the services that use Outlook reach the Graph sandbox by
its compose name over TLS, trusting the CA it writes to the volume they share.
"""

from __future__ import annotations

import importlib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from mailsync.common.settings import ServiceSettings
from mailsync.graph_sandbox import cli as graph_sandbox_cli
from mailsync.graph_sandbox.config import DEFAULT_TENANT_ID

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy" / "compose.yaml"
SERVICES = {"ingest-gmail": 8081, "ingest-outlook": 8082, "router": 8083, "sender": 8084}
# The variable through which each Outlook-using service trusts an extra CA; the sender has no setting of its
# own, so OpenSSL's default bundle (which its aiohttp session verifies against) is pointed at the sandbox CA.
GRAPH_CA_VARIABLES = {"ingest-outlook": "MAILSYNC_CA_FILE", "sender": "MAILSYNC_CA_FILE"}
GRAPH_URL_VARIABLES = {
    "ingest-outlook": ("MAILSYNC_AUTHORITY", "MAILSYNC_GRAPH_URL"),
    "sender": ("MAILSYNC_GRAPH_API_URL",),
}


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


def graph_sandbox_options(compose: dict[str, Any]) -> Any:
    return graph_sandbox_cli.parse_args(compose["services"]["graph-sandbox"]["command"])


def volume_mounts(definition: dict[str, Any]) -> dict[str, tuple[PurePosixPath, str]]:
    """Named volume -> (mount point, mode) of one service's short-syntax volume entries."""
    mounts: dict[str, tuple[PurePosixPath, str]] = {}
    for entry in definition.get("volumes", []):
        name, target, *mode = entry.split(":")
        mounts[name] = (PurePosixPath(target), mode[0] if mode else "rw")
    return mounts


def test_the_graph_sandbox_certificate_names_its_compose_host(compose: dict[str, Any]) -> None:
    sandbox = compose["services"]["graph-sandbox"]
    options = graph_sandbox_options(compose)
    assert "graph-sandbox" in options.tls_hostnames
    assert not options.no_tls
    assert f"{options.port}:{options.port}" in sandbox["ports"]
    state_volumes = [
        name
        for name, (target, _) in volume_mounts(sandbox).items()
        if target == PurePosixPath(options.state_dir)
    ]
    assert state_volumes, "the state directory holding ca.pem is not a named volume"
    assert set(state_volumes) <= set(compose["volumes"])
    probe = " ".join(sandbox["healthcheck"]["test"])
    assert f"https://graph-sandbox:{options.port}/" in probe
    assert f"cafile='{PurePosixPath(options.state_dir) / 'ca.pem'}'" in probe


@pytest.mark.parametrize("service", sorted(GRAPH_CA_VARIABLES))
def test_outlook_services_call_the_graph_sandbox_by_name_and_trust_its_ca(
    compose: dict[str, Any], service: str
) -> None:
    sandbox = compose["services"]["graph-sandbox"]
    options = graph_sandbox_options(compose)
    definition = compose["services"][service]
    environment: dict[str, str] = definition["environment"]

    for variable in GRAPH_URL_VARIABLES[service]:
        url = urlsplit(environment[variable])
        assert (url.scheme, url.hostname, url.port) == ("https", "graph-sandbox", options.port), variable
    if service == "ingest-outlook":
        assert urlsplit(environment["MAILSYNC_AUTHORITY"]).path == f"/{DEFAULT_TENANT_ID}"
        assert "MAILSYNC_CA_FILE" in settings_fields(service)

    ca_file = PurePosixPath(environment[GRAPH_CA_VARIABLES[service]])
    assert ca_file.name == "ca.pem"
    shared = {name: mount for name, mount in volume_mounts(definition).items() if mount[0] == ca_file.parent}
    assert len(shared) == 1, f"{ca_file} is not on a mounted volume"
    ((volume, (_, mode)),) = shared.items()
    assert volume_mounts(sandbox)[volume][0] == PurePosixPath(options.state_dir)
    assert mode == "ro"
    assert definition["depends_on"]["graph-sandbox"] == {"condition": "service_healthy"}
