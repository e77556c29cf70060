"""Settings of the router service (environment variables `MAILSYNC_*`)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from mailsync.common.settings import ServiceSettings
from mailsync.router.domain import AttachmentPolicy

_REFERENCE_TYPES = ("jpg", "jpeg", "png", "mp4", "mpeg", "zip", "rar", "pdf", "doc", "docx", "txt")


class Settings(ServiceSettings):
    """Router settings; see `ServiceSettings` for the shared ones."""

    service_name: str = Field(
        default="router", description="Name used for client ids, consumer groups, logs, metrics."
    )
    http_port: int = Field(
        default=8083, ge=0, le=65535, description="Port of health, metrics and API endpoints."
    )
    message_batch: int = Field(
        default=1000,
        ge=1,
        le=5000,
        description=(
            "Most ingested messages routed together: one set of queries and writes and one offset commit per "
            "batch, messages of a mailbox in order. Smaller batches redo less work after a crash."
        ),
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token required by the read API; unset leaves it open (local use only).",
    )
    outlook_attachment_max_bytes: int | None = Field(
        default=3 * 1024 * 1024,
        ge=0,
        description="Largest Outlook attachment that syncs (O3): reference 3 MB; Graph allows up to 150 MB.",
    )
    outlook_attachment_types: tuple[str, ...] = Field(
        default=_REFERENCE_TYPES,
        description="File extensions of Outlook attachments that sync (O3); empty: any.",
    )

    def outlook_policy(self) -> AttachmentPolicy:
        """The O3 policy these settings describe."""
        return AttachmentPolicy(
            max_bytes=self.outlook_attachment_max_bytes,
            allowed_extensions=frozenset(t.lower().lstrip(".") for t in self.outlook_attachment_types),
        )
