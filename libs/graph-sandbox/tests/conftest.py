"""Fixtures: a sandbox on a free loopback port (HTTPS with its own CA), on a manual clock."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from mailsync.graph_sandbox import GraphSandboxAdmin, ManualClock, SandboxConfig, SandboxServer
from mailsync.graph_sandbox.testing import GraphTestClient, WebhookReceiver


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def config(request: pytest.FixtureRequest, clock: ManualClock) -> SandboxConfig:
    """Settings on the manual clock; override fields with ``@pytest.mark.parametrize("config", [{...}],
    indirect=True)``."""
    overrides: dict[str, Any] = getattr(request, "param", {})
    return SandboxConfig(clock=clock, **overrides)


@pytest.fixture
async def server(config: SandboxConfig) -> AsyncIterator[SandboxServer]:
    async with SandboxServer(config, http_port=0) as running:
        yield running


@pytest.fixture
async def admin(server: SandboxServer) -> AsyncIterator[GraphSandboxAdmin]:
    async with GraphSandboxAdmin(server.base_url, ca_file=server.ca_file) as client:
        yield client


@pytest.fixture
async def graph(server: SandboxServer) -> AsyncIterator[GraphTestClient]:
    async with aiohttp.ClientSession() as session:
        yield GraphTestClient(session, server.base_url, ssl.create_default_context(cafile=server.ca_file))


@pytest.fixture
async def alice(admin: GraphSandboxAdmin, graph: GraphTestClient) -> dict[str, Any]:
    """A mailbox whose tokens (all mail scopes) are loaded into ``graph``."""
    mailbox = await admin.create_mailbox("alice@contoso.example", "Alice Example")
    tokens = await admin.mint_tokens(mailbox["address"], ["Mail.ReadWrite", "Mail.Send", "User.Read"])
    graph.token = tokens["access_token"]
    return mailbox


def _unknown_fields(value: Any, path: str = "$") -> list[str]:
    """Property names a kiota model put into ``additional_data`` (OData annotations like ``@odata.etag`` are
    allowed: the SDK keeps those there by design)."""
    found: list[str] = []
    extra = getattr(value, "additional_data", None)
    if isinstance(extra, dict):
        found += [f"{path}.{key}" for key in extra if not key.startswith("@")]
    if isinstance(value, list):
        for index, item in enumerate(value):
            found += _unknown_fields(item, f"{path}[{index}]")
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            if name != "additional_data":
                found += _unknown_fields(getattr(value, name), f"{path}.{name}")
    return found


SdkParse = Callable[[type[Any], Any], Any]


@pytest.fixture
def sdk_parse() -> SdkParse:
    """Parse a JSON payload into the msgraph-sdk model class given, failing on properties it doesn't know."""
    from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory  # noqa: PLC0415

    def parse(model: type[Any], payload: Any) -> Any:
        node = JsonParseNodeFactory().get_root_parse_node("application/json", json.dumps(payload).encode())
        factory: Any = model  # a kiota Parsable class is its own factory
        parsed: Any = node.get_object_value(factory)
        unknown = _unknown_fields(parsed)
        assert not unknown, f"properties unknown to msgraph-sdk: {unknown}"
        return parsed

    return parse


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    endpoint = WebhookReceiver()
    await endpoint.start()
    yield endpoint
    await endpoint.stop()
