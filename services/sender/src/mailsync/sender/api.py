"""HTTP API of the sender: attachment content in, so a `SendEmail` can reference it.

Commands arrive on Kafka, but their attachments' content must already be in the sender's blob store. Other
platform teams put it there with `POST /v1/attachments` (`mailsync.common.blob_api`, the same mechanism the
ingest services serve content with) and put the answered `BlobRef` in `SendEmail.attachments[].blob`.
"""

from __future__ import annotations

from aiohttp import web

from mailsync.common.blob_api import add_upload_route
from mailsync.common.blobs import BlobStore


def add_routes(
    app: web.Application, blobs: BlobStore, *, api_token: str | None, max_upload_bytes: int
) -> None:
    """Mount ``POST /v1/attachments``."""
    add_upload_route(app, blobs, api_token=api_token, max_bytes=max_upload_bytes)
