"""Offline validation of the Kubernetes manifests, run by `make deploy-check` (and so by CI).

Each kustomization is rendered with the real kustomize binary, then every object is checked:

* built-in kinds against the Kubernetes JSON schemas shipped in the `kubernetes-validate` package, in strict
  mode (an unknown or misspelt field fails);
* KEDA `ScaledObject`s, a CRD whose schema no validator on PyPI ships, by a documented structural check:
  only the fields KEDA's `ScaledObjectSpec` defines, a `scaleTargetRef` naming a Deployment of the same
  render, `1 <= minReplicaCount <= maxReplicaCount`, the HPA `behavior` block against the Kubernetes
  `HorizontalPodAutoscalerBehavior` schema (KEDA hands it to the HPA it creates unchanged), and triggers of
  known types whose metadata values are strings; Kafka triggers must name a contract topic, this
  service's consumer group and the brokers the services are configured with;
* the deployment rules of docs/deploy.md: every Deployment has `/healthz` liveness and `/readyz` readiness
  probes, resource requests and limits, a PodDisruptionBudget and exactly one ScaledObject; a default-deny
  NetworkPolicy exists; every committed Secret value is a `REPLACE` placeholder.

Exit status 0 when every object passes, 1 with one line per problem otherwise.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from kubernetes_validate import utils as k8s_schemas  # type: ignore[import-untyped]

from mailsync.common.contracts import CONTRACTS

KUBERNETES_VERSION = "1.37.0"
KEDA_API_VERSION = "keda.sh/v1alpha1"
SCALED_OBJECT_SPEC_FIELDS = frozenset(
    {
        "scaleTargetRef",
        "pollingInterval",
        "initialCooldownPeriod",
        "cooldownPeriod",
        "idleReplicaCount",
        "minReplicaCount",
        "maxReplicaCount",
        "fallback",
        "advanced",
        "triggers",
    }
)
TRIGGER_FIELDS = frozenset(
    {"type", "name", "metadata", "metricType", "useCachedMetrics", "authenticationRef"}
)
KAFKA_METADATA = frozenset(
    {
        "bootstrapServers",
        "consumerGroup",
        "topic",
        "lagThreshold",
        "activationLagThreshold",
        "offsetResetPolicy",
        "allowIdleConsumers",
        "excludePersistentLag",
        "limitToPartitionsWithLag",
        "scaleToZeroOnInvalidOffset",
        "partitionLimitation",
        "version",
        "sasl",
        "tls",
    }
)
KAFKA_REQUIRED = frozenset({"bootstrapServers", "consumerGroup", "topic", "lagThreshold"})
TRIGGER_TYPES = frozenset({"kafka", "cpu", "memory", "prometheus"})
METRIC_TYPES = frozenset({"AverageValue", "Value", "Utilization"})

Problems = list[str]


def render(kustomize: Path, directory: Path) -> list[dict[str, Any]]:
    """The objects `kustomize build directory` produces."""
    output = subprocess.run(  # noqa: S603 - the pinned kustomize binary on a path of this repository
        [str(kustomize), "build", str(directory)], check=True, capture_output=True, text=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def _name(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def schema_problems(objects: Iterable[Mapping[str, Any]]) -> Problems:
    """Built-in kinds against the shipped Kubernetes schemas (strict); CRDs are left to their own checks."""
    problems: Problems = []
    for obj in objects:
        if obj.get("apiVersion") == KEDA_API_VERSION:
            continue
        try:
            k8s_schemas.validate(dict(obj), KUBERNETES_VERSION, strict=True)
        except k8s_schemas.SchemaNotFoundError as error:
            problems.append(f"{_name(obj)}: {error.message}")
        except jsonschema.ValidationError as error:
            where = "/".join(str(part) for part in error.absolute_path)
            problems.append(f"{_name(obj)}: {where}: {error.message}")
    return problems


def _behavior_validator() -> jsonschema.protocols.Validator:
    definitions = k8s_schemas.schema_contents(
        f"kubernetes-json-schema/v{KUBERNETES_VERSION}-local-strict/_definitions.json", KUBERNETES_VERSION
    )
    schema = {
        **definitions,
        "$ref": "#/$defs/io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerBehavior",
    }
    return jsonschema.Draft202012Validator(schema)


def _kafka_trigger_problems(
    where: str, metadata: Mapping[str, Any], target: str, bootstrap_servers: str | None, prefix: str
) -> Problems:
    problems = [f"{where}: unknown kafka metadata {key!r}" for key in sorted(set(metadata) - KAFKA_METADATA)]
    problems += [f"{where}: kafka metadata needs {key!r}" for key in sorted(KAFKA_REQUIRED - set(metadata))]
    topics = {f"{prefix}{contract.topic}" for contract in CONTRACTS}
    if metadata.get("topic") not in topics:
        problems.append(f"{where}: topic {metadata.get('topic')!r} is not a contract topic")
    group = str(metadata.get("consumerGroup", ""))
    if not group.startswith(f"{prefix}mailsync.{target}."):
        problems.append(f"{where}: consumer group {group!r} is not one of {target}'s (mailsync.{target}.*)")
    if bootstrap_servers is not None and metadata.get("bootstrapServers") != bootstrap_servers:
        problems.append(
            f"{where}: bootstrapServers {metadata.get('bootstrapServers')!r} differs from the services' "
            f"MAILSYNC_KAFKA_BOOTSTRAP_SERVERS {bootstrap_servers!r}"
        )
    return problems


def scaled_object_problems(
    scaled: Mapping[str, Any], deployments: Mapping[str, Mapping[str, Any]], config: Mapping[str, str]
) -> Problems:
    """The structural check of one KEDA ScaledObject described in the module docstring."""
    where = _name(scaled)
    spec = scaled.get("spec")
    if not isinstance(spec, dict):
        return [f"{where}: spec must be an object"]
    problems = [
        f"{where}: unknown spec field {key!r}" for key in sorted(set(spec) - SCALED_OBJECT_SPEC_FIELDS)
    ]
    ref = spec.get("scaleTargetRef") or {}
    target = str(ref.get("name"))
    if ref.get("kind", "Deployment") != "Deployment" or target not in deployments:
        problems.append(f"{where}: scaleTargetRef {ref!r} names no Deployment of this render")
        return problems
    low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    if not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high):
        problems.append(f"{where}: need integers 1 <= minReplicaCount ({low}) <= maxReplicaCount ({high})")
    behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
    if behavior is not None:
        problems += [f"{where}: behavior: {e.message}" for e in _behavior_validator().iter_errors(behavior)]
    triggers = spec.get("triggers") or []
    if not any(t.get("type") == "kafka" for t in triggers):
        problems.append(f"{where}: no kafka trigger (consumers scale on consumer lag)")
    container = deployments[target]["spec"]["template"]["spec"]["containers"][0]
    for index, trigger in enumerate(triggers):
        at = f"{where}: triggers[{index}]"
        problems += [f"{at}: unknown field {key!r}" for key in sorted(set(trigger) - TRIGGER_FIELDS)]
        kind, metadata = trigger.get("type"), trigger.get("metadata") or {}
        if kind not in TRIGGER_TYPES:
            problems.append(f"{at}: unexpected trigger type {kind!r}")
        if "metricType" in trigger and trigger["metricType"] not in METRIC_TYPES:
            problems.append(
                f"{at}: metricType {trigger['metricType']!r} is not one of {sorted(METRIC_TYPES)}"
            )
        problems += [
            f"{at}: metadata {key!r} must be a string"
            for key, v in metadata.items()
            if not isinstance(v, str)
        ]
        if kind == "kafka":
            problems += _kafka_trigger_problems(
                at,
                metadata,
                target,
                config.get("MAILSYNC_KAFKA_BOOTSTRAP_SERVERS"),
                config.get("MAILSYNC_KAFKA_TOPIC_PREFIX", ""),
            )
        if kind in {"cpu", "memory"} and kind not in container.get("resources", {}).get("requests", {}):
            problems.append(f"{at}: a {kind} trigger needs a {kind} request on the container")
    return problems


def _probe_path(container: Mapping[str, Any], probe: str) -> str | None:
    path = container.get(probe, {}).get("httpGet", {}).get("path")
    return str(path) if path is not None else None


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    wanted = selector.get("matchLabels", {})
    return bool(wanted) and all(labels.get(key) == value for key, value in wanted.items())


def _container_problems(name: str, container: Mapping[str, Any]) -> Problems:
    where = f"Deployment/{name} container {container['name']}"
    problems: Problems = []
    if _probe_path(container, "livenessProbe") != "/healthz":
        problems.append(f"{where}: liveness probe must GET /healthz")
    if _probe_path(container, "readinessProbe") != "/readyz":
        problems.append(f"{where}: readiness probe must GET /readyz")
    resources = container.get("resources", {})
    problems += [
        f"{where}: needs cpu and memory {part}"
        for part in ("requests", "limits")
        if not {"cpu", "memory"} <= set(resources.get(part, {}))
    ]
    return problems


def _deployment_problems(
    name: str, deployment: Mapping[str, Any], by_kind: Mapping[str, list[Mapping[str, Any]]]
) -> Problems:
    pod = deployment["spec"]["template"]
    problems = [p for c in pod["spec"]["containers"] for p in _container_problems(name, c)]
    labels = pod["metadata"].get("labels", {})
    budgets = by_kind.get("PodDisruptionBudget", [])
    if not any(_selects(pdb["spec"].get("selector", {}), labels) for pdb in budgets):
        problems.append(f"Deployment/{name}: no PodDisruptionBudget selects its pods")
    scalers = [s for s in by_kind.get("ScaledObject", []) if s["spec"]["scaleTargetRef"].get("name") == name]
    if len(scalers) != 1:
        problems.append(f"Deployment/{name}: needs exactly one ScaledObject, has {len(scalers)}")
    return problems


def _secret_problems(secret: Mapping[str, Any]) -> Problems:
    problems = (
        [f"{_name(secret)}: committed Secrets carry stringData placeholders only"]
        if secret.get("data")
        else []
    )
    problems += [
        f"{_name(secret)}: {key} is not a REPLACE placeholder"
        for key, value in (secret.get("stringData") or {}).items()
        if not str(value).startswith("REPLACE")
    ]
    return problems


def _is_default_deny(policy: Mapping[str, Any]) -> bool:
    spec = policy["spec"]
    return spec.get("podSelector") == {} and {"Ingress", "Egress"} <= set(spec.get("policyTypes", []))


def rule_problems(objects: Sequence[Mapping[str, Any]]) -> Problems:
    """The deployment rules every render must keep (module docstring)."""
    by_kind: dict[str, list[Mapping[str, Any]]] = {}
    for obj in objects:
        by_kind.setdefault(str(obj.get("kind")), []).append(obj)
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    config: dict[str, str] = {}
    for config_map in by_kind.get("ConfigMap", []):
        if config_map["metadata"]["name"].startswith("mailsync-common"):
            config = dict(config_map.get("data") or {})
    problems: Problems = [] if deployments else ["no Deployment rendered"]
    for name, deployment in deployments.items():
        problems += _deployment_problems(name, deployment, by_kind)
    for scaled in by_kind.get("ScaledObject", []):
        problems += scaled_object_problems(scaled, deployments, config)
    if not any(_is_default_deny(policy) for policy in by_kind.get("NetworkPolicy", [])):
        problems.append("no default-deny NetworkPolicy (empty podSelector, Ingress and Egress)")
    for secret in by_kind.get("Secret", []):
        problems += _secret_problems(secret)
    return problems


def check(objects: Sequence[Mapping[str, Any]]) -> Problems:
    """Every problem of one render."""
    return schema_problems(objects) + rule_problems(objects)


def main(argv: Sequence[str] | None = None) -> int:
    """Render and check each kustomization given; print the problems."""
    parser = argparse.ArgumentParser(prog="python deploy/check_manifests.py", description=__doc__)
    parser.add_argument("--kustomize", type=Path, required=True, help="the kustomize binary")
    parser.add_argument("directories", type=Path, nargs="+", help="kustomization directories")
    args = parser.parse_args(argv)
    failed = False
    for directory in args.directories:
        objects = render(args.kustomize, directory)
        problems = check(objects)
        failed = failed or bool(problems)
        for problem in problems:
            sys.stdout.write(f"{directory}: {problem}\n")
        verdict = f"{len(problems)} problem(s)" if problems else "ok"
        sys.stdout.write(f"{directory}: {len(objects)} objects checked, {verdict}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
