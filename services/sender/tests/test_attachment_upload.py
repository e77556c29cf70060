"""`POST /v1/attachments` on the running sender: content in, a `BlobRef` out, and that reference sends.

The sender runs on the real Kafka broker and MongoDB-wire server; the upload's reference is put in a
`SendEmail` whose attachment must reach the Gmail sandbox byte for byte (S1, S4).
"""

from __future__ import annotations

import base64
import email
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from email import policy
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from services.sender.tests.conftest import ADA, Sending, send_email

from mailsync.common.blobs import SPOOL_MEMORY_BYTES
from mailsync.common.contracts import AttachmentMeta, BlobRef
from mailsync.sender.app import create_app
from mailsync.sender.domain.policies import GMAIL_MAX_ATTACHMENT_BYTES, MB
from mailsync.sender.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.mongodb]

API_TOKEN = "crm-backend-test-token"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def pdf(size: int) -> bytes:
    """A PDF-looking document of exactly `size` bytes whose bytes are not one repeated pattern."""
    head = b"%PDF-1.7\n"
    body = b"".join(hashlib.sha256(str(n).encode()).digest() for n in range(size // 32 + 1))
    return (head + body)[:size]


Started = Callable[..., Awaitable[str]]


@pytest.fixture
async def start_api(sending: Sending) -> AsyncIterator[Started]:
    """`await start_api(**overrides)`: a sender instance with an API token; its base URL."""
    servers: list[TestServer] = []

    async def start(**overrides: Any) -> str:
        settings = sending.settings.model_copy(update={"api_token": SecretStr(API_TOKEN), **overrides})
        server = TestServer(create_app(settings), host="127.0.0.1", port=0)
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in servers:
        await server.close()


async def upload(
    http: aiohttp.ClientSession, base: str, data: Any, *, headers: dict[str, str] | None = None, **query: str
) -> tuple[int, dict[str, Any]]:
    merged = {**AUTH, "Content-Type": "application/pdf", **(headers or {})}
    async with http.post(f"{base}/v1/attachments", data=data, headers=merged, params=query) as response:
        return response.status, await response.json()


async def test_s1_s4_an_uploaded_attachment_is_stored_once_and_reaches_the_gmail_recipient_intact(
    sending: Sending, start_api: Started
) -> None:
    base = await start_api()
    await sending.connect("conn_ada", ADA)
    content = pdf(SPOOL_MEMORY_BYTES + 300_000)  # beyond what the upload holds in memory

    async with aiohttp.ClientSession() as http:
        first = await upload(http, base, content, filename="quote.pdf")
        again = await upload(http, base, content, filename="quote-copy.pdf")

    assert first[0] == again[0] == 201
    ref = BlobRef.model_validate(first[1])
    assert again[1] == first[1]
    assert ref == BlobRef(
        store="gridfs",
        id=hashlib.sha256(content).hexdigest(),
        size_bytes=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
    )
    assert await sending.database["blobs.files"].count_documents({}) == 1
    stored = await sending.database["blobs.files"].find_one({"_id": ref.id})
    assert stored["metadata"] == {"content_type": "application/pdf"}

    attachment = AttachmentMeta(
        filename="quote.pdf", content_type="application/pdf", size_bytes=ref.size_bytes, blob=ref
    )
    await sending.bus.send(send_email("req-upload", attachments=(attachment,)))
    result = (await sending.bus.wait_for(["req-upload"]))["req-upload"]

    assert (result.status, result.route) == ("sent", "mailbox")
    summary = await sending.gmail.admin.message(ADA, str(result.provider_message_id))
    sent = email.message_from_bytes(base64.b64decode(summary["raw_base64"]), policy=policy.default)
    assert isinstance(sent, email.message.EmailMessage)
    parts = [p for p in sent.iter_attachments() if isinstance(p, email.message.EmailMessage)]
    assert [(p.get_filename(), p.get_content_type()) for p in parts] == [("quote.pdf", "application/pdf")]
    assert parts[0].get_content() == content


async def test_uploads_need_the_api_token(sending: Sending, start_api: Started) -> None:
    base = await start_api()
    async with aiohttp.ClientSession() as http:
        missing = await upload(http, base, b"%PDF", headers={"Authorization": ""})
        wrong = await upload(http, base, b"%PDF", headers={"Authorization": "Bearer not-the-token"})

    assert missing == wrong == (401, {"error": "unauthorized", "message": "a valid bearer token is required"})
    assert await sending.database["blobs.files"].count_documents({}) == 0


async def test_uploads_over_the_limit_empty_or_untyped_are_refused_and_store_nothing(
    sending: Sending, start_api: Started
) -> None:
    base = await start_api(attachment_upload_max_bytes=100_000)

    async def chunked(size: int) -> AsyncIterator[bytes]:
        for start in range(0, size, 16_384):
            yield b"x" * min(16_384, size - start)

    async with aiohttp.ClientSession() as http:
        declared = await upload(http, base, b"x" * 100_001)
        streamed = await upload(http, base, chunked(300_000))
        empty = await upload(http, base, b"")
        untyped = await upload(http, base, b"%PDF", headers={"Content-Type": "pdf"})
        at_limit = await upload(http, base, b"x" * 100_000)

    for status, body in (declared, streamed):
        assert (status, body["error"], body["max_bytes"]) == (413, "content_too_large", 100_000)
    assert (empty[0], empty[1]["error"]) == (400, "empty_content")
    assert (untyped[0], untyped[1]["error"]) == (400, "invalid_content_type")
    assert at_limit[0] == 201
    assert await sending.database["blobs.files"].distinct("_id") == [at_limit[1]["id"]]


def test_s4_o3_the_default_upload_cap_is_the_largest_attachment_a_route_sends() -> None:
    assert Settings().upload_max_bytes() == GMAIL_MAX_ATTACHMENT_BYTES
    assert Settings(outlook_attachment_max_bytes=100 * MB).upload_max_bytes() == 100 * MB
    assert Settings(outlook_attachment_max_bytes=None).upload_max_bytes() == 150 * MB
    assert Settings(attachment_upload_max_bytes=MB).upload_max_bytes() == MB
