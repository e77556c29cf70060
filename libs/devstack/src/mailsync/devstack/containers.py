"""Optional: the same servers as Docker containers, through testcontainers.

Used only when ``MAILSYNC_DEVSTACK=testcontainers`` is set *and* the ``testcontainers`` package (not a
dependency of this package: install it yourself, e.g.
``uv pip install 'testcontainers[kafka,mongodb,google]'``)
and a Docker engine are available. The default needs no Docker. This path is not exercised by the test
suite (the development machines have no Docker engine); keep it small.

Images: ``apache/kafka:4.1.1`` (KRaft), ``mongo:7``, and the Cloud SDK emulators image for Pub/Sub.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

MODE_VARIABLE = "MAILSYNC_DEVSTACK"
MODE = "testcontainers"


def requested(environ: Mapping[str, str]) -> bool:
    """Return True if the environment asks for containers."""
    return environ.get(MODE_VARIABLE, "") == MODE


def available() -> bool:
    """Return True if testcontainers is importable and a Docker engine answers."""
    try:
        docker = importlib.import_module("docker")
        client: Any = docker.from_env()
        client.ping()
    except Exception:  # noqa: BLE001 - any failure means "no usable Docker", reported by the caller
        return False
    try:
        importlib.import_module("testcontainers.core.container")
    except ImportError:
        return False
    return True


def start(component: str) -> tuple[str, Callable[[], None]]:
    """Start one server as a container; return its endpoint and a function that stops it.

    Raises whatever testcontainers raises (image pull failures, Docker errors).
    """
    container: Any
    if component == "kafka":
        container = importlib.import_module("testcontainers.kafka").KafkaContainer("apache/kafka:4.1.1")
        container.start()
        endpoint = str(container.get_bootstrap_server())
    elif component == "mongodb":
        container = importlib.import_module("testcontainers.mongodb").MongoDbContainer("mongo:7")
        container.start()
        endpoint = str(container.get_connection_url())
    else:
        container = importlib.import_module("testcontainers.google").PubSubContainer()
        container.start()
        endpoint = str(container.get_pubsub_emulator_host())
    return endpoint, container.stop
