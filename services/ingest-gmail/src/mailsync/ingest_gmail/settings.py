"""Settings of the ingest-gmail service (environment variables `MAILSYNC_*`)."""

from __future__ import annotations

from pydantic import Field

from mailsync.common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Gmail intake settings; see `ServiceSettings` for the shared ones."""

    service_name: str = Field(
        default="ingest-gmail", description="Name used for client ids, consumer groups, logs, metrics."
    )
    http_port: int = Field(
        default=8081, ge=0, le=65535, description="Port of health, metrics and API endpoints."
    )
