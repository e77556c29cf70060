"""Settings of the ingest-gmail service (environment variables `MAILSYNC_*`).

Secrets are `SecretStr` and never logged: the OAuth client secret, the token keyring and the internal API
token. Defaults point at Google; tests and the local demo point the URLs at the Gmail sandbox.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from mailsync.common.settings import ServiceSettings
from mailsync.ingest_gmail.domain.connections import CONSUMER_DAILY_SEND_LIMIT


class Settings(ServiceSettings):
    """Gmail intake settings; see `ServiceSettings` for the shared ones."""

    service_name: str = Field(
        default="ingest-gmail", description="Name used for client ids, consumer groups, logs, metrics."
    )
    http_port: int = Field(
        default=8081, ge=0, le=65535, description="Port of health, metrics and API endpoints."
    )
    google_client_id: str = Field(default="", description="OAuth client id of mailsync's Google project.")
    google_client_secret: SecretStr = Field(default=SecretStr(""), description="OAuth client secret.")
    google_auth_url: str = Field(
        default="https://accounts.google.com/o/oauth2/v2/auth", description="Google's authorization endpoint."
    )
    google_token_url: str = Field(
        default="https://oauth2.googleapis.com/token", description="Google's token endpoint."
    )
    gmail_api_url: str = Field(default="https://gmail.googleapis.com", description="Root of the Gmail API.")
    gmail_timeout_seconds: float = Field(default=30.0, gt=0, description="Timeout of one Gmail/OAuth call.")
    oauth_redirect_uri: str = Field(
        default="http://127.0.0.1:8081/v1/oauth/callback",
        description="This service's OAuth callback URL, as registered with Google.",
    )
    oauth_state_ttl_seconds: int = Field(
        default=600, gt=0, description="How long a started OAuth flow may take to complete."
    )
    token_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description=(
            "Keyring for tokens at rest: JSON object of key id -> base64 32-byte AES key. Keep old ids while "
            "records encrypted with them may remain."
        ),
    )
    token_key_id: str | None = Field(
        default=None, description="Id of the key new ciphertexts use; defaults to the only key."
    )
    token_refresh_margin_seconds: int = Field(
        default=300, ge=0, description="An access token is refreshed when it expires within this margin."
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the lifecycle API (the CRM backend); unset leaves it open (local only).",
    )
    internal_api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the internal API (the sender's access tokens); unset denies every call.",
    )
    default_daily_send_limit: int = Field(
        default=CONSUMER_DAILY_SEND_LIMIT, description="S3 limit of a new connection (500 or 2000)."
    )
    notification_mode: Literal["push", "pull", "none"] = Field(
        default="push", description="How Gmail notifications arrive: Pub/Sub push, streaming pull, or none."
    )
    pubsub_watch_topic: str = Field(
        default="projects/mailsync/topics/gmail-watch",
        description="Topic `users.watch` publishes to (`projects/{project}/topics/{topic}`).",
    )
    pubsub_push_audience: str | None = Field(
        default=None, description="Expected `aud` of push tokens (the push endpoint URL by default in GCP)."
    )
    pubsub_push_service_account: str | None = Field(
        default=None, description="Expected `email` of push tokens (the subscription's service account)."
    )
    pubsub_certs_url: str = Field(
        default="https://www.googleapis.com/oauth2/v1/certs", description="Certs verifying push tokens."
    )
    pubsub_subscription: str | None = Field(
        default=None, description="Pull mode: `projects/{project}/subscriptions/{name}`."
    )
    pubsub_emulator_host: str | None = Field(
        default=None, description="Pull mode against the Pub/Sub emulator (`host:port`)."
    )
    watch_renew_interval_seconds: int = Field(
        default=86_400, gt=0, description="Watches are renewed daily (they lapse after 7 days)."
    )
    watch_renew_spread_seconds: int = Field(
        default=14_400, ge=0, description="Renewals are spread over this window, per mailbox."
    )
    maintenance_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often renewals and the watchdog run."
    )
    watchdog_stale_after_seconds: int = Field(
        default=3_600, gt=0, description="A watched mailbox silent this long is synced anyway."
    )
    sync_consumers: int = Field(
        default=4,
        ge=1,
        description="Consumers of the hint topic per process (concurrency across partitions, never within).",
    )
    gmail_user_quota_units_per_minute: int = Field(
        default=15_000, gt=0, description="Gmail's per-user quota the worker paces itself under."
    )
    gmail_quota_fraction: float = Field(
        default=0.95, gt=0, lt=1, description="Share of the per-user quota a mailbox's sync may use."
    )
    gmail_prefetch: int = Field(
        default=8,
        ge=1,
        le=50,
        description="messages.get calls a sync keeps in flight (events stay in order).",
    )
    recovery_overlap_seconds: int = Field(
        default=3_600,
        ge=0,
        description="Gap recovery after a stale cursor starts this long before the last sync.",
    )
    recovery_max_messages: int = Field(
        default=10_000, gt=0, description="Upper bound of messages one gap recovery fetches."
    )
