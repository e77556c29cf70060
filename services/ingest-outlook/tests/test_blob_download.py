"""`GET /v1/blobs/{id}` on the running ingest-outlook: the content behind the `BlobRef`s its messages carry.

The end-to-end suite downloads content Outlook sync stored; here the endpoint's contract on the service.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from mailsync.common.blobs import BlobStore
from mailsync.devstack.ports import free_port
from mailsync.graph_sandbox import SandboxConfig, SandboxServer
from mailsync.ingest_outlook.app import create_app
from mailsync.ingest_outlook.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.mongodb]

API_TOKEN = "crm-backend-test-token"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@dataclass
class Service:
    url: str
    database: Any
    http: aiohttp.ClientSession


@pytest.fixture
async def service(
    kafka_bootstrap_servers: str, mongodb_uri: str, unique_name: Callable[[str], str]
) -> AsyncIterator[Service]:
    async with SandboxServer(SandboxConfig(), http_port=0) as sandbox:
        port = free_port()
        settings = Settings(
            kafka_bootstrap_servers=kafka_bootstrap_servers,
            kafka_topic_prefix=unique_name("t") + ".",
            kafka_ensure_topics=True,
            mongodb_uri=SecretStr(mongodb_uri),
            mongodb_database=unique_name("ingest_outlook"),
            client_id=sandbox.config.default_app.client_id,
            client_secret=SecretStr(sandbox.config.default_app.client_secret),
            authority=sandbox.authority,
            graph_url=sandbox.base_url,
            ca_file=str(sandbox.ca_file),
            http_port=port,
            oauth_redirect_uri=f"http://127.0.0.1:{port}/v1/oauth/callback",
            public_base_url=f"http://127.0.0.1:{port}/",
            token_keys={"k1": SecretStr(base64.b64encode(b"o" * 32).decode())},
            api_token=SecretStr(API_TOKEN),
            maintenance_interval_seconds=3600,
            log_format="text",
        )
        server = TestServer(create_app(settings), host="127.0.0.1", port=port)
        await server.start_server()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri, tz_aware=True)
        try:
            async with aiohttp.ClientSession() as http:
                yield Service(f"http://127.0.0.1:{port}", client[settings.mongodb_database], http)
        finally:
            await client.close()
            await server.close()


async def test_stored_content_is_served_with_length_etag_and_type_to_token_holders(service: Service) -> None:
    content = b"\x89PNG\r\n" + bytes(range(256)) * 4_000
    ref = await BlobStore(service.database, "outlook_blobs").put(content, "image/png")
    url = f"{service.url}/v1/blobs/{ref.id}"

    async with service.http.get(url, headers=AUTH) as response:
        assert response.status == 200
        assert await response.read() == content
        assert response.headers["Content-Length"] == str(len(content))
        assert response.headers["ETag"] == f'"{ref.sha256}"'
        assert response.headers["Content-Type"] == "image/png"
    async with service.http.get(url) as response:
        assert (response.status, (await response.json())["error"]) == (401, "unauthorized")
    async with service.http.get(f"{service.url}/v1/blobs/{'f' * 64}", headers=AUTH) as response:
        assert (response.status, (await response.json())["error"]) == (404, "blob_not_found")
