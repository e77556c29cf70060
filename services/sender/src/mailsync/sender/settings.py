"""Settings of the sender service (environment variables `MAILSYNC_*`)."""

from __future__ import annotations

from pydantic import Field

from mailsync.common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Sender settings; see `ServiceSettings` for the shared ones."""

    service_name: str = Field(
        default="sender", description="Name used for client ids, consumer groups, logs, metrics."
    )
    http_port: int = Field(
        default=8084, ge=0, le=65535, description="Port of health, metrics and API endpoints."
    )
