"""The whole product as separate processes: both provider sandboxes and the four services, on a started stack.

`Product.start` provisions what a deployment provisions by hand (the Pub/Sub topic Gmail's watch publishes
to, the Kafka contract topics, the push subscription that delivers the topic to ingest-gmail with signed
OIDC tokens), starts `mailsync-gmail-sandbox` and `mailsync-graph-sandbox` (HTTPS from a local CA, plus plain
HTTP) and an SMTP sink standing in for the subaccount mail provider, then every service as
`python -m mailsync.<service>` (through `mailsync.devstack.supervisor`) with `MAILSYNC_*` settings pointing
at the sandboxes, and waits until each answers `/readyz`. Nothing else is seeded: connecting mailboxes,
directory events and mail go through the public interfaces (see `mailsync.devstack.crm`,
`mailsync.devstack.connect`).

`make run` uses fixed ports (`ProductPorts.fixed`); the e2e suite uses free ones and a topic prefix and
database prefix of its own, so it shares the test session's stack with other tests.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import functools
import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailsync.common.topics_admin import contract_topic_names, ensure_topics
from mailsync.devstack import supervisor
from mailsync.devstack.ports import LOOPBACK, ensure_port_free, free_port
from mailsync.devstack.process import ManagedProcess
from mailsync.devstack.smtp_sink import SmtpSink
from mailsync.gmail_sandbox import DEFAULT_CLIENT
from mailsync.gmail_sandbox import SandboxConfig as GmailSandboxConfig
from mailsync.graph_sandbox.config import DEFAULT_TENANT_ID, DefaultApp

if TYPE_CHECKING:
    from mailsync.devstack.stack import Stack

GOOGLE_PROJECT = "mailsync-local"
GRAPH_DOMAIN = "sandbox.onmicrosoft.com"
PUSH_SERVICE_ACCOUNT = GmailSandboxConfig().push_service_account
GMAIL_DEFAULT_QUOTA_UNITS_PER_MINUTE = 15_000


@dataclass(frozen=True)
class ProductPorts:
    """The loopback ports of everything the product runs besides the stack."""

    ingest_gmail: int
    ingest_outlook: int
    router: int
    sender: int
    gmail_sandbox: int
    graph_sandbox: int
    graph_sandbox_http: int
    smtp: int

    @classmethod
    def fixed(cls) -> ProductPorts:
        """The ports of `make run`: services on 8081-8084 (their defaults), sandboxes 8085-8087, SMTP 2525."""
        return cls(8081, 8082, 8083, 8084, 8085, 8086, 8087, 2525)

    @classmethod
    def free(cls) -> ProductPorts:
        """Free ports, for test sessions next to a running `make run`."""
        return cls(*(free_port() for _ in dataclasses.fields(cls)))


@dataclass(frozen=True)
class ProductOptions:
    """How to run the product: ports, isolation prefixes and the few knobs tests need."""

    ports: ProductPorts = dataclasses.field(default_factory=ProductPorts.fixed)
    topic_prefix: str = ""
    database_prefix: str = "mailsync_"
    gmail_quota_units_per_minute: int = GMAIL_DEFAULT_QUOTA_UNITS_PER_MINUTE
    log_format: str = "text"
    ready_timeout: float = 60.0


@dataclass(frozen=True)
class ProductEndpoints:
    """Where every public interface of the running product is, and the values a client must agree on."""

    kafka_bootstrap_servers: str
    topic_prefix: str
    ingest_gmail_url: str
    ingest_outlook_url: str
    router_url: str
    sender_url: str
    gmail_sandbox_url: str
    graph_sandbox_url: str
    graph_sandbox_http_url: str
    graph_ca_file: Path
    graph_tenant_id: str
    smtp_port: int
    watch_topic: str

    def topic(self, name: str) -> str:
        """The physical name of a contract topic in this product."""
        return f"{self.topic_prefix}{name}"

    @property
    def service_urls(self) -> dict[str, str]:
        """Service name -> base URL."""
        return {
            "ingest-gmail": self.ingest_gmail_url,
            "ingest-outlook": self.ingest_outlook_url,
            "router": self.router_url,
            "sender": self.sender_url,
        }


class Product:
    """The sandboxes, the SMTP sink and the four services, started on `stack` (which must be started)."""

    def __init__(self, stack: Stack, options: ProductOptions | None = None) -> None:
        """Configure; nothing starts here."""
        self.stack = stack
        self.options = options or ProductOptions()
        ports = self.options.ports
        prefix = self.options.topic_prefix
        self.endpoints = ProductEndpoints(
            kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
            topic_prefix=prefix,
            ingest_gmail_url=_url(ports.ingest_gmail),
            ingest_outlook_url=_url(ports.ingest_outlook),
            router_url=_url(ports.router),
            sender_url=_url(ports.sender),
            gmail_sandbox_url=_url(ports.gmail_sandbox),
            graph_sandbox_url=f"https://{LOOPBACK}:{ports.graph_sandbox}",
            graph_sandbox_http_url=_url(ports.graph_sandbox_http),
            graph_ca_file=stack.run_dir / "graph-sandbox" / "ca.pem",
            graph_tenant_id=DEFAULT_TENANT_ID,
            smtp_port=ports.smtp,
            watch_topic=f"projects/{GOOGLE_PROJECT}/topics/{prefix}gmail-watch",
        )
        self.smtp = SmtpSink(LOOPBACK, ports.smtp)
        self._internal_token = secrets.token_urlsafe(24)
        self._token_keys = json.dumps({"local": base64.b64encode(secrets.token_bytes(32)).decode()})
        self._sandboxes: list[ManagedProcess] = []
        self._services: list[ManagedProcess] = []

    @property
    def services(self) -> tuple[supervisor.ServiceSpec, ...]:
        """The four services on this product's ports."""
        ports = self.options.ports
        by_name = {
            "ingest-gmail": ports.ingest_gmail,
            "ingest-outlook": ports.ingest_outlook,
            "router": ports.router,
            "sender": ports.sender,
        }
        return tuple(dataclasses.replace(s, port=by_name[s.name]) for s in supervisor.SERVICES)

    def processes(self) -> list[ManagedProcess]:
        """Every process the product started (sandboxes, then services)."""
        return [*self._sandboxes, *self._services]

    def start(self) -> None:
        """Provision, start and wait for everything; on failure stop what started and raise.

        Raises `DevstackError` subclasses (a taken port, a process that exited or was not ready in time).
        """
        ports = self.options.ports
        for port, what in (
            (ports.gmail_sandbox, "the Gmail sandbox"),
            (ports.graph_sandbox, "the Graph sandbox"),
            (ports.graph_sandbox_http, "the Graph sandbox (plain HTTP)"),
            (ports.smtp, "the SMTP sink"),
        ):
            ensure_port_free(port, what)
        try:
            _create_pubsub_topic(self.stack.pubsub_emulator_host, self.endpoints.watch_topic)
            asyncio.run(
                ensure_topics(
                    self.stack.kafka_bootstrap_servers,
                    contract_topic_names(self.options.topic_prefix),
                    partitions=3,
                    replication=1,
                )
            )
            self.smtp.start()
            self._start_sandboxes()
            self._services = supervisor.start_services(
                self.stack,
                self.services,
                timeout=self.options.ready_timeout,
                environ=self.service_environ,
            )
            asyncio.run(self._subscribe_push())
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the services (they drain and commit), then the sandboxes and the sink. Idempotent."""
        supervisor.stop_services(self._services)
        self._services = []
        for process in reversed(self._sandboxes):
            process.stop(grace=10.0)
        self._sandboxes = []
        self.smtp.stop()

    def _start_sandboxes(self) -> None:
        ports = self.options.ports
        run_dir = self.stack.run_dir
        bin_dir = Path(sys.executable).parent
        gmail = ManagedProcess(
            "gmail-sandbox",
            [
                str(bin_dir / "mailsync-gmail-sandbox"),
                "--port",
                str(ports.gmail_sandbox),
                "--pubsub-emulator-host",
                self.stack.pubsub_emulator_host,
                "--project-id",
                GOOGLE_PROJECT,
                "--quota-units-per-minute",
                str(self.options.gmail_quota_units_per_minute),
            ],
            log_path=run_dir / "gmail-sandbox.log",
            environ=os.environ,
        )
        self._sandboxes.append(gmail)
        graph = ManagedProcess(
            "graph-sandbox",
            [
                str(bin_dir / "mailsync-graph-sandbox"),
                "--port",
                str(ports.graph_sandbox),
                "--http-port",
                str(ports.graph_sandbox_http),
                "--state-dir",
                str(self.endpoints.graph_ca_file.parent),
            ],
            log_path=run_dir / "graph-sandbox.log",
            environ=os.environ,
        )
        self._sandboxes.append(graph)
        timeout = self.options.ready_timeout
        gmail.wait_ready(
            functools.partial(supervisor.is_ready, f"{self.endpoints.gmail_sandbox_url}/_admin/health"),
            timeout=timeout,
        )
        graph.wait_ready(
            functools.partial(supervisor.is_ready, f"{self.endpoints.graph_sandbox_http_url}/_admin/info"),
            timeout=timeout,
        )

    def service_environ(self, service: supervisor.ServiceSpec) -> dict[str, str]:
        """The `MAILSYNC_*` settings of one service in sandbox mode (on top of the stack's endpoints)."""
        e = self.endpoints
        common = {
            "MAILSYNC_KAFKA_TOPIC_PREFIX": self.options.topic_prefix,
            "MAILSYNC_MONGODB_DATABASE": self.options.database_prefix + service.name.replace("-", "_"),
            "MAILSYNC_LOG_FORMAT": self.options.log_format,
            "MAILSYNC_INTERNAL_API_TOKEN": self._internal_token,
        }
        own_url = _url(service.port)
        app = DefaultApp()
        specific: dict[str, str] = {}
        if service.name == "ingest-gmail":
            specific = {
                "MAILSYNC_GOOGLE_CLIENT_ID": DEFAULT_CLIENT.client_id,
                "MAILSYNC_GOOGLE_CLIENT_SECRET": DEFAULT_CLIENT.client_secret,
                "MAILSYNC_GOOGLE_AUTH_URL": f"{e.gmail_sandbox_url}/o/oauth2/v2/auth",
                "MAILSYNC_GOOGLE_TOKEN_URL": f"{e.gmail_sandbox_url}/token",
                "MAILSYNC_GMAIL_API_URL": e.gmail_sandbox_url,
                "MAILSYNC_OAUTH_REDIRECT_URI": f"{own_url}/v1/oauth/callback",
                "MAILSYNC_TOKEN_KEYS": self._token_keys,
                "MAILSYNC_NOTIFICATION_MODE": "push",
                "MAILSYNC_PUBSUB_WATCH_TOPIC": e.watch_topic,
                "MAILSYNC_PUBSUB_PUSH_AUDIENCE": f"{own_url}/v1/pubsub/push",
                "MAILSYNC_PUBSUB_PUSH_SERVICE_ACCOUNT": PUSH_SERVICE_ACCOUNT,
                "MAILSYNC_PUBSUB_CERTS_URL": f"{e.gmail_sandbox_url}/oauth2/v1/certs",
                "MAILSYNC_GMAIL_USER_QUOTA_UNITS_PER_MINUTE": str(self.options.gmail_quota_units_per_minute),
            }
        elif service.name == "ingest-outlook":
            specific = {
                "MAILSYNC_CLIENT_ID": app.client_id,
                "MAILSYNC_CLIENT_SECRET": app.client_secret,
                "MAILSYNC_AUTHORITY": f"{e.graph_sandbox_url}/{e.graph_tenant_id}",
                "MAILSYNC_GRAPH_URL": e.graph_sandbox_url,
                "MAILSYNC_CA_FILE": str(e.graph_ca_file),
                "MAILSYNC_OAUTH_REDIRECT_URI": f"{own_url}/v1/oauth/callback",
                "MAILSYNC_PUBLIC_BASE_URL": f"{own_url}/",
                "MAILSYNC_TOKEN_KEYS": self._token_keys,
            }
        elif service.name == "sender":
            specific = {
                "MAILSYNC_INGEST_GMAIL_URL": e.ingest_gmail_url,
                "MAILSYNC_INGEST_OUTLOOK_URL": e.ingest_outlook_url,
                "MAILSYNC_GMAIL_API_URL": e.gmail_sandbox_url,
                # The sandbox serves Graph over plain HTTP as well, which spares the sender its CA here.
                "MAILSYNC_GRAPH_API_URL": e.graph_sandbox_http_url,
                "MAILSYNC_SMTP_HOST": LOOPBACK,
                "MAILSYNC_SMTP_PORT": str(e.smtp_port),
                "MAILSYNC_SMTP_FROM_ADDRESS": "crm@mail.mailsync.local",
                "MAILSYNC_SMTP_FROM_NAME": "mailsync CRM",
            }
        return {**common, **specific}

    async def _subscribe_push(self) -> None:
        """The push subscription of the watch topic to ingest-gmail, with Pub/Sub's signed OIDC tokens."""
        from mailsync.gmail_sandbox import GmailSandboxAdmin  # noqa: PLC0415 - only needed here

        endpoint = f"{self.endpoints.ingest_gmail_url}/v1/pubsub/push"
        async with GmailSandboxAdmin(self.endpoints.gmail_sandbox_url) as admin:
            await admin.add_push_subscription(
                self.endpoints.watch_topic,
                endpoint,
                audience=endpoint,
                name=f"projects/{GOOGLE_PROJECT}/subscriptions/{self.options.topic_prefix}gmail-push",
                min_backoff_seconds=1.0,
                max_backoff_seconds=10.0,
            )


def _url(port: int) -> str:
    return f"http://{LOOPBACK}:{port}"


def _create_pubsub_topic(emulator_host: str, topic: str) -> None:
    """Create `topic` on the Pub/Sub emulator (what `gcloud pubsub topics create` does in a project)."""
    import grpc  # type: ignore[import-untyped]  # noqa: PLC0415 - only the product start needs gRPC
    from google.api_core.exceptions import AlreadyExists  # noqa: PLC0415
    from google.cloud import pubsub_v1  # noqa: PLC0415
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport  # noqa: PLC0415

    channel = grpc.insecure_channel(emulator_host)
    try:
        client = pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=channel))
        with contextlib.suppress(AlreadyExists):
            client.create_topic(name=topic, timeout=30)
    finally:
        channel.close()
