"""The shared blob endpoints over a real GridFS bucket: upload (idempotent, limits, auth) and download.

The routes are mounted on a bare application over a `BlobStore` on the MongoDB-wire server, as every service
mounts them; the services' own tests show them wired into each service.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pymongo import AsyncMongoClient

from mailsync.common.blob_api import add_download_route, add_upload_route
from mailsync.common.blobs import CHUNK_BYTES, SPOOL_MEMORY_BYTES, BlobStore, BlobUnavailableError
from mailsync.common.contracts import BlobRef
from mailsync.common.mongo import Document

pytestmark = [pytest.mark.mongodb]

TOKEN = "blob-api-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_BYTES = 3 * 1024 * 1024


@dataclass
class Blobs:
    base: str
    store: BlobStore
    database: Any
    http: aiohttp.ClientSession

    async def upload(self, data: Any, content_type: str = "application/pdf") -> tuple[int, dict[str, Any]]:
        headers = {**AUTH, "Content-Type": content_type}
        async with self.http.post(f"{self.base}/v1/attachments", data=data, headers=headers) as response:
            return response.status, await response.json()


@pytest.fixture
async def blobs(mongodb_uri: str, unique_name: Callable[[str], str]) -> AsyncIterator[Blobs]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongodb_uri, tz_aware=True)
    database = client[unique_name("blobs")]
    store = BlobStore(database, "test_blobs")
    app = web.Application()
    add_upload_route(app, store, api_token=TOKEN, max_bytes=MAX_BYTES)
    add_download_route(app, store, api_token=TOKEN)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        yield Blobs(str(server.make_url("")).rstrip("/"), store, database, http)
    await server.close()
    await client.close()


def content_of(size: int) -> bytes:
    return b"".join(hashlib.sha256(n.to_bytes(4)).digest() for n in range(size // 32 + 1))[:size]


async def test_an_upload_streamed_past_the_memory_spool_is_stored_once_and_reads_back_verified(
    blobs: Blobs,
) -> None:
    content = content_of(SPOOL_MEMORY_BYTES * 2 + 12_345)
    digest = hashlib.sha256(content).hexdigest()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 50_000):
            yield content[start : start + 50_000]

    results = await asyncio.gather(blobs.upload(chunks()), blobs.upload(content), blobs.upload(content))

    expected = BlobRef(store="gridfs", id=digest, size_bytes=len(content), sha256=digest)
    assert [(status, BlobRef.model_validate(body)) for status, body in results] == [(201, expected)] * 3
    assert await blobs.database["test_blobs.files"].distinct("_id") == [digest]
    chunks_stored = await blobs.database["test_blobs.chunks"].count_documents({"files_id": digest})
    assert chunks_stored == -(-len(content) // CHUNK_BYTES)
    assert await blobs.store.read(expected) == content
    with pytest.raises(BlobUnavailableError):
        await blobs.store.read(expected.model_copy(update={"size_bytes": len(content) - 1}))
    assert await blobs.store.put(content, "application/pdf") == expected


async def test_uploads_refuse_missing_tokens_oversized_and_empty_content(blobs: Blobs) -> None:
    async with blobs.http.post(f"{blobs.base}/v1/attachments", data=b"%PDF") as response:
        assert (response.status, (await response.json())["error"]) == (401, "unauthorized")
    over = await blobs.upload(b"x" * (MAX_BYTES + 1))
    assert (over[0], over[1]["error"], over[1]["max_bytes"]) == (413, "content_too_large", MAX_BYTES)
    empty = await blobs.upload(b"")
    assert (empty[0], empty[1]["error"]) == (400, "empty_content")
    assert await blobs.database["test_blobs.files"].count_documents({}) == 0
    assert await blobs.database["test_blobs.chunks"].count_documents({}) == 0


async def test_a_download_streams_the_content_with_length_etag_and_media_type(blobs: Blobs) -> None:
    content = content_of(700_000)
    ref = await blobs.store.put(content, "text/html; charset=utf-8")
    url = f"{blobs.base}/v1/blobs/{ref.id}"

    async with blobs.http.get(url, headers=AUTH) as response:
        body = await response.read()
        headers = response.headers
        assert response.status == 200
    assert body == content
    assert headers["Content-Length"] == str(len(content))
    assert headers["ETag"] == f'"{ref.sha256}"'
    assert headers["Content-Type"] == "text/html; charset=utf-8"

    async with blobs.http.get(url, headers={**AUTH, "If-None-Match": f'"{ref.sha256}"'}) as response:
        assert (response.status, await response.read()) == (304, b"")
    async with blobs.http.head(url, headers=AUTH) as response:
        assert (response.status, response.headers["Content-Length"]) == (200, str(len(content)))
    async with blobs.http.get(url) as response:
        assert (response.status, (await response.json())["error"]) == (401, "unauthorized")


async def test_unknown_or_malformed_blob_ids_are_not_found(blobs: Blobs) -> None:
    for blob_id in ("0" * 64, "not-a-digest", "A" * 64):
        async with blobs.http.get(f"{blobs.base}/v1/blobs/{blob_id}", headers=AUTH) as response:
            assert (response.status, (await response.json())["error"]) == (404, "blob_not_found")


async def test_a_write_interrupted_after_some_chunks_is_completed_by_the_next(blobs: Blobs) -> None:
    content = content_of(CHUNK_BYTES * 3 + 7)
    ref = await blobs.store.put(content, "application/pdf")
    await blobs.database["test_blobs.files"].delete_many({})
    await blobs.database["test_blobs.chunks"].delete_many({"n": {"$gte": 2}})
    assert await blobs.store.open(ref.id) is None

    assert await blobs.store.put(content, "application/pdf") == ref
    assert await blobs.database["test_blobs.chunks"].count_documents({"files_id": ref.id}) == 4
    assert await blobs.store.read(ref) == content
