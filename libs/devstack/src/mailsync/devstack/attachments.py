"""Attachment content through the product's HTTP APIs, as the CRM backend moves it.

Outbound, the CRM uploads content to the sender (`POST /v1/attachments`) and puts the answered `BlobRef` in
its `SendEmail`; inbound, it downloads the content of a filed message's `BlobRef` from the ingest service of
the message's provider (`GET /v1/blobs/{id}`). A document generator gives content of any size that is not
one repeated byte, so a truncated or reordered copy cannot compare equal.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from mailsync.common.contracts import AttachmentMeta, BlobRef

if TYPE_CHECKING:
    from collections.abc import Mapping

    import aiohttp

    from mailsync.devstack.product import ProductEndpoints


def pdf_document(size: int, *, seed: str = "") -> bytes:
    """A PDF-looking document of exactly `size` bytes, different for every `seed`."""
    head = b"%PDF-1.7\n"
    body = b"".join(hashlib.sha256(f"{seed}:{n}".encode()).digest() for n in range(size // 32 + 1))
    return (head + body)[:size]


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def upload_attachment(
    http: aiohttp.ClientSession,
    endpoints: ProductEndpoints,
    content: bytes,
    *,
    filename: str,
    content_type: str,
    token: str | None = None,
) -> AttachmentMeta:
    """Upload `content` to the sender; the attachment a `SendEmail` carries for it."""
    async with http.post(
        f"{endpoints.sender_url}/v1/attachments",
        data=content,
        params={"filename": filename},
        headers={"Content-Type": content_type, **_auth(token)},
    ) as response:
        if response.status != 201:
            raise AssertionError(f"upload answered {response.status}: {await response.text()}")
        blob = BlobRef.model_validate(await response.json())
    return AttachmentMeta(filename=filename, content_type=content_type, size_bytes=blob.size_bytes, blob=blob)


async def download_blob(
    http: aiohttp.ClientSession, service_url: str, blob: BlobRef, *, token: str | None = None
) -> tuple[bytes, Mapping[str, str]]:
    """The content of `blob` from the ingest service at `service_url`, and the response's headers."""
    async with http.get(f"{service_url}/v1/blobs/{blob.id}", headers=_auth(token)) as response:
        if response.status != 200:
            raise AssertionError(f"download answered {response.status}: {await response.text()}")
        return await response.read(), response.headers.copy()
