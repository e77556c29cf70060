"""Settings of one sandbox instance. Only the composition root (:func:`mailsync.gmail_sandbox.app.create_app`)
and the CLI read them; nothing reads the environment implicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailsync.gmail_sandbox.clock import Clock, SystemClock
from mailsync.gmail_sandbox.mailbox import WEEK_SECONDS, AccountKind
from mailsync.gmail_sandbox.oauth import OAuthClient

DEFAULT_CLIENT = OAuthClient("sandbox-client.apps.googleusercontent.com", "sandbox-client-secret")

MAX_SEND_UPLOAD_BYTES = 36_700_160
MAX_INSERT_UPLOAD_BYTES = 157_286_400
MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024


@dataclass(frozen=True)
class MailboxSpec:
    """A mailbox to create at start-up (``None`` limits take the account kind's / sandbox's defaults)."""

    address: str
    kind: AccountKind = AccountKind.CONSUMER
    display_name: str = ""
    history_retention_seconds: float | None = None
    daily_send_limit: int | None = None


@dataclass(frozen=True)
class SandboxConfig:
    """Everything that varies between sandbox instances.

    ``pubsub_emulator_host`` (``host:port``) turns on publishing to Google's Pub/Sub emulator; without it
    notifications are kept in memory (visible through the admin API). ``public_url`` is the base URL clients
    use to reach the sandbox (defaults to ``http://{host}:{port}``). ``smtp_relay`` (``host:port``) receives,
    by SMTP, the copies of sent mail addressed outside the sandbox.
    """

    host: str = "127.0.0.1"
    port: int = 8085
    public_url: str | None = None
    pubsub_emulator_host: str | None = None
    project_id: str = "mailsync-local"
    seed: int = 0
    clock: Clock = field(default_factory=SystemClock)
    history_retention_seconds: float = WEEK_SECONDS
    quota_units_per_user_per_minute: int = 15_000
    max_concurrent_requests_per_user: int | None = None
    notification_interval_seconds: float = 1.0
    numeric_history_id_in_notifications: bool = True
    inline_body_limit: int = 1024 * 1024
    max_send_upload_bytes: int = MAX_SEND_UPLOAD_BYTES
    max_insert_upload_bytes: int = MAX_INSERT_UPLOAD_BYTES
    max_attachment_bytes: int = MAX_ATTACHMENT_BYTES
    oauth_clients: tuple[OAuthClient, ...] = (DEFAULT_CLIENT,)
    mailboxes: tuple[MailboxSpec, ...] = ()
    push_service_account: str = "gmail-push@mailsync-local.iam.gserviceaccount.com"
    smtp_relay: str | None = None

    @property
    def base_url(self) -> str:
        """The URL clients reach the sandbox at, without a trailing slash."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
