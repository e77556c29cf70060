"""Service settings, read from the environment in one place.

Every service subclasses `ServiceSettings`; only its composition root instantiates it. Variables are named
`MAILSYNC_<FIELD>` (for example `MAILSYNC_KAFKA_BOOTSTRAP_SERVERS`), so the same names work for `make run`,
the test suite, the compose file and Kubernetes manifests.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """What every mailsync service needs: where Kafka and MongoDB are, and how to serve HTTP and logs."""

    model_config = SettingsConfigDict(env_prefix="MAILSYNC_", extra="ignore", frozen=True)

    service_name: str = Field(
        description="Name used for the Kafka client id, consumer groups, logs and metrics."
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers."
    )
    kafka_topic_prefix: str = Field(
        default="",
        description=(
            "Prepended to every topic and consumer-group name, to run several isolated environments "
            "(or tests) on one cluster. Empty in production."
        ),
    )
    kafka_max_attempts: int = Field(
        default=5,
        ge=1,
        description=(
            "Attempts for a message whose handling fails transiently before the consumer stops acknowledging "
            "it and lets Kafka redeliver it."
        ),
    )
    kafka_linger_ms: int = Field(
        default=0,
        ge=0,
        description=(
            "How long the producer holds a record to send it with the records published just after it, in "
            "one request. Worth a few milliseconds where a service publishes many events at once without "
            "waiting for each; 0 where it publishes one and waits for it before the next."
        ),
    )
    kafka_ensure_topics: bool = Field(
        default=False,
        description=(
            "Create missing contract topics at start-up (local stack and tests). Production topics are "
            "provisioned by operations with their own partition and replication choices."
        ),
    )
    kafka_topic_partitions: int = Field(
        default=3, ge=1, description="Partitions of topics created by `kafka_ensure_topics`."
    )
    mongodb_uri: SecretStr = Field(
        default=SecretStr("mongodb://127.0.0.1:27017/?directConnection=true"),
        description="MongoDB connection string; may carry credentials, so it is never logged.",
    )
    mongodb_database: str = Field(
        default="mailsync", description="Database holding this service's collections."
    )
    http_host: str = Field(default="127.0.0.1", description="Interface the HTTP server binds to.")
    http_port: int = Field(
        default=8080, ge=0, le=65535, description="Port of health, metrics and API endpoints."
    )
    shutdown_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        description="How long a stopping service waits for in-flight work before it exits.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Root log level."
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="`json` for one structured object per line, `text` for a terminal."
    )

    def topic(self, name: str) -> str:
        """The physical topic for a contract topic constant, with this environment's prefix."""
        return f"{self.kafka_topic_prefix}{name}"

    def consumer_group(self, purpose: str) -> str:
        """A stable consumer-group id for one of this service's subscriptions."""
        return f"{self.kafka_topic_prefix}mailsync.{self.service_name}.{purpose}"
