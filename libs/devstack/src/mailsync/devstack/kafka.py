"""Apache Kafka (the real broker), run from the jars on Maven Central in KRaft combined mode.

Jars: ``fetch_kafka_jars`` writes a pom depending on ``org.apache.kafka:kafka_2.13`` plus ``slf4j-simple``
(the broker ships no SLF4J binding and would otherwise log nothing) and runs
``mvn dependency:copy-dependencies``
into ``<cache>/kafka/<version>/libs``. Resolution happens once per cache: under a file lock, into a temporary
directory renamed into place only when Maven succeeded, so an interrupted download is never mistaken for a
complete one and concurrent test runs wait for each other instead of racing.

Broker: one node that is both broker and controller, on two free loopback ports, with test-friendly settings
(auto topic creation, replication factor 1 for internal topics, no initial rebalance delay). Its data lives
in the run directory given by the caller, which the caller removes on stop. Ready means the broker answered
an ``ApiVersions`` request on its client listener; a KRaft broker only opens that listener once it has been
unfenced by the controller, so clients can create topics and produce right away.
"""

from __future__ import annotations

import base64
import fcntl
import shutil
import socket
import struct
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailsync.devstack.cache import cache_dir
from mailsync.devstack.errors import DevstackError, ServerStartError
from mailsync.devstack.ports import LOOPBACK, ensure_port_free, free_port
from mailsync.devstack.process import JAVA_HINT, ManagedProcess, log_tail, require_tool

if TYPE_CHECKING:
    import threading
    from collections.abc import Mapping

KAFKA_VERSION = "4.1.1"
SCALA_VERSION = "2.13"
# Same version as the slf4j-api that kafka_2.13 4.1.1 resolves to (`mvn dependency:tree`).
SLF4J_VERSION = "1.7.36"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

_MVN_HINT = (
    "Install Maven 3.8+ (e.g. `apt-get install maven`), or run `mailsync-devstack fetch` once on a machine "
    "that has it and share the cache directory ($MAILSYNC_CACHE_DIR)."
)

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.mailsync</groupId>
  <artifactId>devstack-kafka</artifactId>
  <version>{kafka}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-simple</artifactId>
      <version>{slf4j}</version>
    </dependency>
  </dependencies>
</project>
"""

_LOG_SETTINGS = (
    "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
    "-Dorg.slf4j.simpleLogger.showDateTime=true",
    "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.clients=warn",
)


def fetch_kafka_jars(*, cache_root: Path | None = None, environ: Mapping[str, str]) -> Path:
    """Return the directory holding the broker's jars, resolving them with Maven on first use.

    Idempotent and safe to call from concurrent processes. Raises :class:`MissingToolError` if the jars
    are not cached and ``mvn`` or ``java`` is missing, and :class:`DevstackError` (with Maven's log tail)
    if Maven fails, e.g. when Maven Central cannot be reached.
    """
    version_dir = (cache_root or cache_dir()) / "kafka" / KAFKA_VERSION
    libs = version_dir / "libs"
    if libs.is_dir():
        return libs
    version_dir.mkdir(parents=True, exist_ok=True)
    with (version_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if libs.is_dir():
            return libs
        for leftover in version_dir.glob("libs.partial-*"):  # from a run killed mid-download
            shutil.rmtree(leftover, ignore_errors=True)
        require_tool("java", needed_for="Maven (to fetch the Kafka jars)", hint=JAVA_HINT, environ=environ)
        mvn = require_tool("mvn", needed_for="Kafka (to fetch its jars)", hint=_MVN_HINT, environ=environ)
        pom = version_dir / "pom.xml"
        pom.write_text(_POM.format(kafka=KAFKA_VERSION, scala=SCALA_VERSION, slf4j=SLF4J_VERSION))
        staging = Path(tempfile.mkdtemp(prefix="libs.partial-", dir=version_dir))
        mvn_log = version_dir / "mvn.log"
        argv = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom),
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        try:
            with mvn_log.open("wb") as log:
                result = subprocess.run(  # noqa: S603 - fixed argv
                    argv, stdout=log, stderr=subprocess.STDOUT, env=dict(environ), check=False
                )
            if result.returncode != 0 or not any(staging.glob("kafka_*.jar")):
                raise DevstackError(
                    f"Maven could not resolve Kafka {KAFKA_VERSION} (exit code {result.returncode}); "
                    "is Maven "
                    f"Central reachable? Log: {mvn_log}\n--- last lines of the log ---\n{log_tail(mvn_log)}"
                )
            staging.rename(libs)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return libs


@dataclass(frozen=True)
class KafkaSettings:
    """Broker settings a caller may change; the defaults suit tests."""

    num_partitions: int = 3
    port: int | None = None
    controller_port: int | None = None


def new_cluster_id() -> str:
    """Return a random KRaft cluster id (a Kafka ``Uuid``: 22 url-safe base64 characters, no leading '-')."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def server_properties(*, port: int, controller_port: int, data_dir: Path, num_partitions: int) -> str:
    """Return the ``server.properties`` of a single-node combined broker and controller."""
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{LOOPBACK}:{controller_port}",
        "listeners": f"PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{controller_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": str(num_partitions),
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "share.coordinator.state.topic.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        chunks.extend(chunk)
    return bytes(chunks)


def answers_api_versions(host: str, port: int, *, timeout: float = 1.0) -> bool:
    """Return True if a Kafka broker at ``host:port`` answers an ``ApiVersions`` (v0) request, error-free."""
    client_id = b"mailsync-devstack"
    correlation_id = 7
    request = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            response = _recv_exact(sock, size)
    except OSError:
        return False
    answered_id, error_code = struct.unpack(">ih", response[:6])
    return bool(answered_id == correlation_id and error_code == 0)


def start_kafka(
    run_dir: Path,
    *,
    settings: KafkaSettings,
    environ: Mapping[str, str],
    timeout: float,
    cancelled: threading.Event | None = None,
    cache_root: Path | None = None,
) -> tuple[ManagedProcess, str]:
    """Start a broker with its data and log under ``run_dir``; return it and its bootstrap servers.

    Raises :class:`MissingToolError` (java, or mvn on first use), :class:`PortInUseError` for an explicit
    port that is taken, and :class:`ServerStartError` with the log tail if formatting the storage fails or
    the broker exits or is not ready within ``timeout`` seconds (it is then stopped).
    """
    java = require_tool("java", needed_for=f"Kafka {KAFKA_VERSION}", hint=JAVA_HINT, environ=environ)
    libs = fetch_kafka_jars(cache_root=cache_root, environ=environ)
    for explicit in (settings.port, settings.controller_port):
        if explicit is not None:
            ensure_port_free(explicit, "Kafka")
    port = settings.port or free_port()
    controller_port = settings.controller_port or free_port()
    kafka_dir = run_dir / "kafka"
    data_dir = kafka_dir / "data"
    kafka_dir.mkdir(parents=True, exist_ok=True)
    properties = kafka_dir / "server.properties"
    properties.write_text(
        server_properties(
            port=port,
            controller_port=controller_port,
            data_dir=data_dir,
            num_partitions=settings.num_partitions,
        )
    )
    classpath = f"{libs}/*"
    log_path = kafka_dir / "kafka.log"
    format_argv = [
        java,
        "-Xmx256m",
        "-XX:TieredStopAtLevel=1",
        "-cp",
        classpath,
        "kafka.tools.StorageTool",
        "format",
        "--standalone",
        "-t",
        new_cluster_id(),
        "-c",
        str(properties),
    ]
    with log_path.open("ab") as log:
        formatted = subprocess.run(  # noqa: S603 - fixed argv
            format_argv, stdout=log, stderr=subprocess.STDOUT, env=dict(environ), check=False, timeout=timeout
        )
    if formatted.returncode != 0:
        raise ServerStartError(
            f"formatting Kafka's storage failed (exit code {formatted.returncode}). Log: {log_path}\n"
            f"--- last lines of the log ---\n{log_tail(log_path)}"
        )
    broker = ManagedProcess(
        "kafka",
        [
            java,
            "-Xms256m",
            "-Xmx512m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={kafka_dir}",
            *_LOG_SETTINGS,
            "-cp",
            classpath,
            "kafka.Kafka",
            str(properties),
        ],
        log_path=log_path,
        environ=environ,
        cwd=kafka_dir,
    )
    broker.wait_ready(lambda: answers_api_versions(LOOPBACK, port), timeout=timeout, cancelled=cancelled)
    return broker, f"{LOOPBACK}:{port}"
