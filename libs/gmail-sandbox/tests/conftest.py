"""Fixtures: a sandbox on a free loopback port, the official Gmail client built offline, a schema validator.

The official client (google-api-python-client over httplib2) is synchronous, so tests call ``execute`` through
``asyncio.to_thread`` while the sandbox serves on the test's event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from google.oauth2.credentials import Credentials
from googleapiclient import discovery, discovery_cache

from mailsync.gmail_sandbox import (
    DEFAULT_CLIENT,
    SANDBOX_KEY,
    GmailSandboxAdmin,
    MailboxSpec,
    ManualClock,
    SandboxConfig,
    create_app,
)
from mailsync.gmail_sandbox.notifications import NotificationPublisher
from mailsync.gmail_sandbox.sandbox import GmailSandbox

ALICE = "alice@example.com"
FULL_SCOPE = "https://mail.google.com/"


class SchemaViolationError(AssertionError):
    """A response does not match the discovery document."""


class DiscoverySchemaValidator:
    """Checks JSON values against the ``schemas`` of a Google discovery document.

    Objects may only carry declared properties (unknown fields fail), strings with format ``int64``/``uint64``
    must hold integers, ``byte`` must be base64 (either alphabet), integers must be ints (``int32`` in range),
    enums must hold a listed value. ``$ref`` and ``additionalProperties`` are followed.
    """

    def __init__(self, document: dict[str, Any]) -> None:
        self.schemas: dict[str, Any] = document["schemas"]

    def validate(self, value: Any, schema_name: str) -> None:
        """Raise :class:`SchemaViolationError` naming the path of the first violation."""
        self._check(value, {"$ref": schema_name}, schema_name)

    def _check(self, value: Any, schema: dict[str, Any], path: str) -> None:  # noqa: PLR0912
        if "$ref" in schema:
            self._check(value, self.schemas[schema["$ref"]], path)
            return
        kind = schema.get("type")
        if kind == "object":
            if not isinstance(value, dict):
                raise SchemaViolationError(f"{path}: expected object, got {type(value).__name__}")
            properties = schema.get("properties", {})
            extra = schema.get("additionalProperties")
            for key, item in value.items():
                if key in properties:
                    self._check(item, properties[key], f"{path}.{key}")
                elif extra is not None:
                    self._check(item, extra, f"{path}[{key}]")
                else:
                    raise SchemaViolationError(f"{path}: unknown field {key!r}")
        elif kind == "array":
            if not isinstance(value, list):
                raise SchemaViolationError(f"{path}: expected array")
            for index, item in enumerate(value):
                self._check(item, schema["items"], f"{path}[{index}]")
        elif kind == "string":
            if not isinstance(value, str):
                raise SchemaViolationError(f"{path}: expected string, got {type(value).__name__}")
            fmt = schema.get("format")
            if fmt in {"int64", "uint64"} and not re.fullmatch(r"-?\d+", value):
                raise SchemaViolationError(f"{path}: {fmt} string expected, got {value!r}")
            if fmt == "byte":
                try:
                    base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
                except binascii.Error as exc:
                    raise SchemaViolationError(f"{path}: not base64") from exc
            if "enum" in schema and value not in schema["enum"]:
                raise SchemaViolationError(f"{path}: {value!r} not in {schema['enum']}")
        elif kind == "integer":
            if not isinstance(value, int) or isinstance(value, bool):
                raise SchemaViolationError(f"{path}: expected integer")
            if schema.get("format") == "int32" and not -(2**31) <= value < 2**31:
                raise SchemaViolationError(f"{path}: int32 out of range")
        elif kind == "boolean":
            if not isinstance(value, bool):
                raise SchemaViolationError(f"{path}: expected boolean")
        elif kind == "number" and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise SchemaViolationError(f"{path}: expected number")


@pytest.fixture(scope="session")
def gmail_discovery() -> dict[str, Any]:
    """The ``gmail.v1.json`` that google-api-python-client ships."""
    path = Path(discovery_cache.DISCOVERY_DOC_DIR) / "gmail.v1.json"
    document: dict[str, Any] = json.loads(path.read_text())
    return document


@pytest.fixture(scope="session")
def gmail_schema(gmail_discovery: dict[str, Any]) -> DiscoverySchemaValidator:
    """Validator for Gmail responses."""
    return DiscoverySchemaValidator(gmail_discovery)


@dataclass
class RunningSandbox:
    """A sandbox served on a loopback port."""

    base_url: str
    sandbox: GmailSandbox
    admin: GmailSandboxAdmin
    clock: ManualClock

    async def token_for(self, address: str = ALICE, scopes: list[str] | None = None) -> dict[str, Any]:
        """Tokens of a consented grant for ``address``."""
        return await self.admin.issue_tokens(address, scopes or [FULL_SCOPE])

    async def auth_headers(self, address: str = ALICE, scopes: list[str] | None = None) -> dict[str, str]:
        """``Authorization`` header with a fresh access token."""
        tokens = await self.token_for(address, scopes)
        return {"Authorization": f"Bearer {tokens['access_token']}"}


SandboxFactory = Callable[..., Any]


@pytest.fixture
async def start_sandbox() -> AsyncIterator[SandboxFactory]:
    """Factory: ``await start_sandbox(**config_overrides, publisher=...)`` -> :class:`RunningSandbox`.

    Alice (consumer) exists unless ``mailboxes`` is overridden. Time is a :class:`ManualClock` starting now.
    """
    servers: list[TestServer] = []
    admins: list[GmailSandboxAdmin] = []

    async def start(publisher: NotificationPublisher | None = None, **overrides: Any) -> RunningSandbox:
        clock = overrides.pop("clock", None) or ManualClock(time.time())
        settings: dict[str, Any] = {"mailboxes": (MailboxSpec(ALICE, display_name="Alice Example"),)}
        settings.update(overrides)
        app = create_app(SandboxConfig(clock=clock, **settings), publisher=publisher)
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server()
        servers.append(server)
        base_url = str(server.make_url("")).rstrip("/")
        admin = GmailSandboxAdmin(base_url)
        admins.append(admin)
        return RunningSandbox(base_url, app[SANDBOX_KEY], admin, clock)

    yield start
    for admin in admins:
        await admin.close()
    for server in servers:
        await server.close()


@pytest.fixture
async def running(start_sandbox: SandboxFactory) -> RunningSandbox:
    """A default sandbox with Alice."""
    result: RunningSandbox = await start_sandbox()
    return result


@pytest.fixture
def gmail_service(gmail_discovery: dict[str, Any]) -> Callable[[RunningSandbox, dict[str, Any]], Any]:
    """Factory building the official client offline against a sandbox, with refreshable credentials."""

    def build(running: RunningSandbox, tokens: dict[str, Any]) -> Any:
        document = dict(gmail_discovery)
        document["rootUrl"] = running.base_url + "/"
        document["baseUrl"] = running.base_url + "/"
        credentials = Credentials(  # type: ignore[no-untyped-call]  # google-auth leaves __init__ unannotated
            token=tokens["access_token"],
            refresh_token=tokens.get("refresh_token"),
            client_id=DEFAULT_CLIENT.client_id,
            client_secret=DEFAULT_CLIENT.client_secret,
            token_uri=running.base_url + "/token",
            scopes=tokens["scope"].split(),
        )
        return discovery.build_from_document(document, credentials=credentials)

    return build


async def execute(request: Any, num_retries: int = 0) -> Any:
    """Run a googleapiclient request in a worker thread (the sandbox serves on this loop)."""
    return await asyncio.to_thread(request.execute, num_retries=num_retries)


@pytest.fixture
def run() -> Callable[..., Any]:
    """``await run(request)``: execute an official-client request off the event loop."""
    return execute
