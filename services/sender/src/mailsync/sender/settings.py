"""Settings of the sender service (environment variables `MAILSYNC_*`)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from mailsync.common.settings import ServiceSettings
from mailsync.sender.domain import OUTLOOK_REFERENCE_TYPES, AttachmentPolicy
from mailsync.sender.domain.policies import GMAIL_MAX_ATTACHMENT_BYTES, MB

GRAPH_MAX_ATTACHMENT_BYTES = 150 * MB
"""Largest attachment Graph upload sessions take: what an uncapped Outlook route can send."""


class Settings(ServiceSettings):
    """Sender settings; see `ServiceSettings` for the shared ones."""

    service_name: str = Field(
        default="sender", description="Name used for client ids, consumer groups, logs, metrics."
    )
    kafka_linger_ms: int = Field(
        default=5,
        ge=0,
        description=(
            "How long the producer holds a result to send it with the results decided just after it, in one "
            "request: the commands of a batch are answered concurrently."
        ),
    )
    http_port: int = Field(
        default=8084, ge=0, le=65535, description="Port of health, metrics and API endpoints."
    )
    ingest_gmail_url: str = Field(
        default="http://127.0.0.1:8081",
        description="Base URL of ingest-gmail's internal API (access tokens).",
    )
    ingest_outlook_url: str = Field(
        default="http://127.0.0.1:8082",
        description="Base URL of ingest-outlook's internal API (access tokens).",
    )
    internal_api_token: SecretStr = Field(
        default=SecretStr(""), description="Bearer token of the ingest services' internal API."
    )
    gmail_api_url: str = Field(
        default="https://gmail.googleapis.com", description="Root of the Gmail API (a sandbox's URL locally)."
    )
    gmail_simple_upload_max_bytes: int = Field(
        default=5 * 1024 * 1024,
        ge=1,
        description="Largest message sent as JSON `raw`; larger ones use the upload endpoint.",
    )
    graph_api_url: str = Field(
        default="https://graph.microsoft.com",
        description="Root of Microsoft Graph (a sandbox's URL locally).",
    )
    ca_file: str | None = Field(
        default=None,
        description="Extra CA bundle trusted besides the system's for provider APIs (a sandbox's local CA).",
    )
    outlook_attachment_max_bytes: int | None = Field(
        default=3 * 1024 * 1024,
        ge=0,
        description=(
            "Largest Outlook attachment sent (O3, S5): the reference 3 MB; up to 150 MB through Graph upload "
            "sessions; null: no cap."
        ),
    )
    outlook_attachment_types: tuple[str, ...] = Field(
        default=OUTLOOK_REFERENCE_TYPES,
        description="File extensions of attachments Outlook mailboxes send (O3, S5); empty: any.",
    )
    provider_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout of one Gmail or SMTP call."
    )
    send_max_attempts: int = Field(
        default=4,
        ge=1,
        description=(
            "Attempts of one provider send while it fails transiently (backoff with jitter, honouring "
            "Retry-After) before the command fails with `provider_unavailable`."
        ),
    )
    send_retry_initial_seconds: float = Field(default=0.5, gt=0, description="First backoff delay.")
    send_retry_max_seconds: float = Field(
        default=30.0, gt=0, description="Longest wait between attempts; a longer Retry-After gives up."
    )
    send_outcome_settle_seconds: float = Field(
        default=5.0,
        ge=0,
        description=(
            "Least wait after a send whose outcome is unknown (timeout after the request was written) before "
            "the Sent folder is searched for it and the send retried."
        ),
    )
    send_attempt_lease_seconds: float = Field(
        default=300.0,
        gt=0,
        description=(
            "How long one instance owns a request's provider attempt. Another instance (after a rebalance, "
            "or a restart after a crash) waits this long before it takes an unfinished attempt over; it must "
            "outlast the retries of one attempt (`send_max_attempts` x (`provider_timeout_seconds` + "
            "`send_retry_max_seconds`))."
        ),
    )
    send_batch_max_records: int = Field(
        default=100,
        ge=1,
        description=(
            "Most send commands consumed as one batch; a batch's offsets are committed once all of its "
            "commands are answered."
        ),
    )
    send_concurrency: int = Field(
        default=16,
        ge=1,
        description="Most commands of a batch decided (and sent) at the same time by one instance.",
    )
    message_id_domain: str = Field(
        default="send.mailsync.local",
        description="Right-hand side of the Message-IDs the sender mints (`<uuid@domain>`).",
    )
    smtp_host: str = Field(default="127.0.0.1", description="Subaccount provider's SMTP server (S2, C5).")
    smtp_port: int = Field(default=25, ge=1, le=65535, description="Its port.")
    smtp_username: str | None = Field(default=None, description="SMTP AUTH user, if the server needs one.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP AUTH password.")
    smtp_use_tls: bool = Field(default=False, description="Implicit TLS (port 465 style).")
    smtp_start_tls: bool | None = Field(
        default=None, description="STARTTLS: true requires it, false never, null when the server offers it."
    )
    smtp_from_address: str = Field(
        default="no-reply@mailsync.local", description="From address of mail sent by the subaccount provider."
    )
    smtp_from_name: str | None = Field(default=None, description="Its display name.")
    smtp_max_message_bytes: int | None = Field(
        default=None, ge=1, description="Largest encoded message the SMTP provider accepts; null: no cap."
    )
    blob_bucket: str = Field(
        default="blobs",
        description="GridFS bucket (in `mongodb_database`) holding stored bodies/attachments.",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer token of the attachment upload API (the CRM backend); unset leaves it open (local only)."
        ),
    )
    attachment_upload_max_bytes: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Largest upload `POST /v1/attachments` takes (413 above it); null: the largest attachment a "
            "route can send, Gmail's 25 MB or the Outlook cap if larger (150 MB when that is null)."
        ),
    )

    def upload_max_bytes(self) -> int:
        """The upload cap these settings describe."""
        if self.attachment_upload_max_bytes is not None:
            return self.attachment_upload_max_bytes
        outlook = self.outlook_attachment_max_bytes
        return max(GMAIL_MAX_ATTACHMENT_BYTES, GRAPH_MAX_ATTACHMENT_BYTES if outlook is None else outlook)

    def outlook_policy(self) -> AttachmentPolicy:
        """The O3/S5 policy these settings describe."""
        return AttachmentPolicy(
            "Outlook",
            max_bytes_each=self.outlook_attachment_max_bytes,
            allowed_extensions=frozenset(t.lower().lstrip(".") for t in self.outlook_attachment_types),
        )
