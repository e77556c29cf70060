"""Settings of the ingest-outlook service (environment variables `MAILSYNC_*`).

Secrets are `SecretStr` and never logged: the app's client secret, the token-cache keyring and the API tokens.
Defaults point at Microsoft; tests and the local demo point the authority and Graph at the Graph sandbox.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from mailsync.common.settings import ServiceSettings

_REFERENCE_TYPES = ("jpg", "jpeg", "png", "mp4", "mpeg", "zip", "rar", "pdf", "doc", "docx", "txt")


class Settings(ServiceSettings):
    """Outlook intake settings; see `ServiceSettings` for the shared ones."""

    service_name: str = Field(
        default="ingest-outlook", description="Name used for client ids, consumer groups, logs, metrics."
    )
    http_port: int = Field(
        default=8082, ge=0, le=65535, description="Port of health, metrics and API endpoints."
    )
    client_id: str = Field(default="", description="Application (client) id of mailsync's Entra app.")
    client_secret: SecretStr = Field(default=SecretStr(""), description="The app's client secret.")
    authority: str = Field(
        default="https://login.microsoftonline.com/common",
        description="MSAL authority: `https://<host>/<tenant>` (`common` for multi-tenant apps).",
    )
    graph_url: str = Field(default="https://graph.microsoft.com", description="Root of Microsoft Graph.")
    ca_file: str | None = Field(
        default=None,
        description=(
            "Extra CA bundle trusted for the identity platform and Graph (the sandbox's local CA). When set, "
            "MSAL's session ignores REQUESTS_CA_BUNDLE, which would otherwise override it."
        ),
    )
    graph_timeout_seconds: float = Field(default=30.0, gt=0, description="Timeout of one Graph call.")
    graph_max_concurrency: int = Field(
        default=4, ge=1, le=4, description="Graph requests in flight per mailbox (Outlook allows 4)."
    )
    graph_requests_per_window: int = Field(
        default=10_000,
        ge=2,
        description="Outlook's request limit per app and mailbox in one window; requests are paced under it.",
    )
    graph_window_seconds: float = Field(
        default=600.0, gt=0, description="Length of that sliding window (Outlook: 10 minutes)."
    )
    graph_burst_fraction: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description=(
            "Share of the limit a mailbox may send at once; the rest is spread evenly over the window, so "
            "any window holds at most the limit and a long catch-up runs at >= 1 - this share of it."
        ),
    )
    oauth_redirect_uri: str = Field(
        default="http://localhost:8082/v1/oauth/callback",
        description="This service's OAuth redirect URI, as registered on the Entra app.",
    )
    oauth_state_ttl_seconds: int = Field(
        default=600, gt=0, description="How long a started sign-in may take to complete."
    )
    public_base_url: str = Field(
        default="https://ingest-outlook.example/",
        description="HTTPS origin Graph reaches this service at (change and lifecycle notification URLs).",
    )
    token_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description=(
            "Keyring for MSAL token caches at rest: JSON object of key id -> base64 32-byte AES key. Keep "
            "old ids while records encrypted with them may remain."
        ),
    )
    token_key_id: str | None = Field(
        default=None, description="Id of the key new ciphertexts use; defaults to the only key."
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the lifecycle API (the CRM backend); unset leaves it open (local only).",
    )
    internal_api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the internal API (the sender's access tokens); unset denies every call.",
    )
    daily_send_limit: int = Field(
        default=10_000, gt=0, description="Exchange Online recipients per day, reported to the sender."
    )
    subscription_lifetime_minutes: int = Field(
        default=10_070,
        ge=45,
        le=10_080,
        description="Requested subscription lifetime (Outlook messages allow 10,080 minutes at most).",
    )
    subscription_renew_lead_seconds: int = Field(
        default=86_400, gt=0, description="Subscriptions are renewed this long before they expire."
    )
    subscription_renew_spread_seconds: int = Field(
        default=21_600, ge=0, description="Renewals are spread at random over this extra window."
    )
    maintenance_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often due renewals and missing subscriptions are handled."
    )
    watchdog_silence_seconds: float = Field(
        default=3600.0,
        gt=0,
        description=(
            "A mailbox with no completed sync (so no notification either) for this long gets a watchdog "
            "delta sync anyway."
        ),
    )
    watchdog_spread_seconds: float = Field(
        default=600.0, ge=0, description="Watchdog syncs are spread at random over this extra window."
    )
    watchdog_batch: int = Field(
        default=100, gt=0, description="Most watchdog hints published per maintenance round."
    )
    notification_publish_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        lt=3,
        description="Longest a notification waits for Kafka before answering 503 (Graph's deadline is 3 s).",
    )
    delta_page_size: int = Field(
        default=50, ge=1, le=1000, description="`Prefer: odata.maxpagesize` of delta rounds."
    )
    attachment_max_bytes: int = Field(
        default=3 * 1024 * 1024,
        ge=0,
        description="O3: attachments up to this size are stored (reference 3 MB; Graph allows 150 MB).",
    )
    attachment_types: tuple[str, ...] = Field(
        default=_REFERENCE_TYPES,
        description="O3: file extensions whose content is stored; empty: any.",
    )
