"""`GET /v1/blobs/{id}` on the running ingest-gmail: the content behind the `BlobRef`s its messages carry."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from mailsync.common.blobs import BlobStore

pytestmark = [pytest.mark.kafka, pytest.mark.mongodb]

ALICE = "alice@example.com"
CONTACT = "dora@contact.example"
API_TOKEN = "crm-backend-test-token"

Harness = Any  # the conftest's harness (test modules cannot import the conftest under importlib mode)


async def test_an_ingested_attachment_is_downloadable_by_its_blob_ref(harness: Harness) -> None:
    await harness.connect("sub-1", "user-1", ALICE)
    content = b"%PDF-1.7\n" + bytes(range(256)) * 2_000
    attachment = {
        "filename": "signed.pdf",
        "mime_type": "application/pdf",
        "data_base64": base64.b64encode(content).decode(),
    }
    await harness.admin.deliver_inbound(
        ALICE, sender=CONTACT, subject="Signed", text="Attached.", attachments=[attachment]
    )
    await harness.tap.wait_until(lambda: len(harness.tap.messages()) == 1)
    (message,) = harness.tap.messages()
    blob = message.attachments[0].blob
    assert blob is not None
    assert blob.sha256 == hashlib.sha256(content).hexdigest()

    async with harness.http.get(f"{harness.service_url}/v1/blobs/{blob.id}") as response:
        assert response.status == 200
        assert await response.read() == content
        assert response.headers["Content-Length"] == str(blob.size_bytes)
        assert response.headers["ETag"] == f'"{blob.sha256}"'
        assert response.headers["Content-Type"] == "application/pdf"


async def test_downloads_need_the_api_token_and_unknown_ids_are_not_found(start_harness: Any) -> None:
    harness = await start_harness(push=False, api_token=API_TOKEN)
    ref = await BlobStore(harness.database, "gmail_blobs").put(b"stored body", "text/plain; charset=utf-8")
    url = f"{harness.service_url}/v1/blobs/{ref.id}"
    auth = {"Authorization": f"Bearer {API_TOKEN}"}

    async with harness.http.get(url) as response:
        assert (response.status, (await response.json())["error"]) == (401, "unauthorized")
    async with harness.http.get(url, headers=auth) as response:
        assert (response.status, await response.read()) == (200, b"stored body")
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    async with harness.http.get(f"{harness.service_url}/v1/blobs/{'0' * 64}", headers=auth) as response:
        assert (response.status, (await response.json())["error"]) == (404, "blob_not_found")
