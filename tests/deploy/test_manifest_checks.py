"""The offline manifest check (deploy/check_manifests.py) passes the committed manifests and catches the
mistakes it exists for: a misspelt field, a wrong probe, a ScaledObject on the wrong consumer group or
brokers, a Deployment without a disruption budget, a real-looking secret."""

from __future__ import annotations

import copy
import importlib.util
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
KUSTOMIZE_VERSION = "v5.8.1"


def load_checker() -> Any:
    spec = importlib.util.spec_from_file_location("check_manifests", REPO / "deploy" / "check_manifests.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checker = load_checker()


@pytest.fixture(scope="module")
def kustomize() -> Path:
    """The binary `make deploy-check` builds (built here the same way if missing)."""
    binary = REPO / ".tools" / "go" / f"kustomize-{KUSTOMIZE_VERSION}"
    if not binary.exists():
        make = shutil.which("make")
        if make is None or shutil.which("go") is None:
            pytest.fail("make and Go are needed to build kustomize (see the Makefile's deploy-check)")
        subprocess.run(  # noqa: S603 - the Makefile's own rule
            [make, "-C", str(REPO), str(binary.relative_to(REPO))], check=True, capture_output=True
        )
    return binary


@pytest.fixture(scope="module")
def production(kustomize: Path) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = checker.render(
        kustomize, REPO / "deploy" / "k8s" / "overlays" / "production"
    )
    return objects


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


@pytest.mark.parametrize("overlay", ["base", "overlays/production"])
def test_committed_manifests_pass(kustomize: Path, overlay: str) -> None:
    objects = checker.render(kustomize, REPO / "deploy" / "k8s" / overlay)
    assert {o["kind"] for o in objects} >= {
        "Deployment",
        "ScaledObject",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    assert checker.check(objects) == []


def test_a_misspelt_field_fails_the_kubernetes_schema(production: list[dict[str, Any]]) -> None:
    objects = copy.deepcopy(production)
    find(objects, "Deployment", "router")["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    assert any("Deployment/router" in p and "readinessprobe" in p for p in checker.check(objects))


def test_probes_must_hit_the_health_endpoints(production: list[dict[str, Any]]) -> None:
    objects = copy.deepcopy(production)
    container = find(objects, "Deployment", "sender")["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGet"]["path"] = "/healthz"
    assert "Deployment/sender container sender: readiness probe must GET /readyz" in checker.check(objects)


def test_a_scaled_object_must_watch_the_services_own_group_on_the_configured_brokers(
    production: list[dict[str, Any]],
) -> None:
    objects = copy.deepcopy(production)
    metadata = find(objects, "ScaledObject", "router")["spec"]["triggers"][0]["metadata"]
    metadata["consumerGroup"] = "mailsync.sender.commands"
    metadata["bootstrapServers"] = "elsewhere:9092"
    metadata["lagThreshold"] = 50
    problems = checker.check(objects)
    assert any("consumer group 'mailsync.sender.commands' is not one of router's" in p for p in problems)
    assert any("bootstrapServers 'elsewhere:9092' differs" in p for p in problems)
    assert any("metadata 'lagThreshold' must be a string" in p for p in problems)


def test_a_scaled_object_field_keda_does_not_define_fails(production: list[dict[str, Any]]) -> None:
    objects = copy.deepcopy(production)
    spec = find(objects, "ScaledObject", "ingest-gmail")["spec"]
    spec["maxReplicas"] = 5
    spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilisationWindow"] = 1
    problems = checker.check(objects)
    assert "ScaledObject/ingest-gmail: unknown spec field 'maxReplicas'" in problems
    assert any(p.startswith("ScaledObject/ingest-gmail: behavior:") for p in problems)


def test_every_deployment_needs_a_disruption_budget(production: list[dict[str, Any]]) -> None:
    objects = [
        o
        for o in production
        if not (o["kind"] == "PodDisruptionBudget" and o["metadata"]["name"] == "router")
    ]
    assert "Deployment/router: no PodDisruptionBudget selects its pods" in checker.check(objects)


def test_committed_secrets_must_be_placeholders(production: list[dict[str, Any]]) -> None:
    objects = copy.deepcopy(production)
    find(objects, "Secret", "sender-secrets")["stringData"]["MAILSYNC_SMTP_PASSWORD"] = "hunter2"
    assert "Secret/sender-secrets: MAILSYNC_SMTP_PASSWORD is not a REPLACE placeholder" in checker.check(
        objects
    )
