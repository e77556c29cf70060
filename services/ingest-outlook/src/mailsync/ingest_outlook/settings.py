"""Settings of the ingest-outlook service (environment variables `MAILSYNC_*`)."""

from __future__ import annotations

from pydantic import Field

from mailsync.common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Outlook intake settings; see `ServiceSettings` for the shared ones."""

    service_name: str = Field(
        default="ingest-outlook", description="Name used for client ids, consumer groups, logs, metrics."
    )
    http_port: int = Field(
        default=8082, ge=0, le=65535, description="Port of health, metrics and API endpoints."
    )
