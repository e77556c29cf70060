"""The admin API through its async client: tenant setup, sign-in choices, reset."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from mailsync.graph_sandbox import GraphSandboxAdmin, ManualClock, SandboxServer
from mailsync.graph_sandbox.clock import to_graph_timestamp
from mailsync.graph_sandbox.jose import unverified_claims
from mailsync.graph_sandbox.testing import GraphTestClient, WebhookReceiver

APP_ID = "11111111-2222-3333-4444-555555555555"


async def _authorize_without_hint(server: SandboxServer, graph: GraphTestClient) -> dict[str, str]:
    query = urlencode(
        {
            "client_id": APP_ID,
            "response_type": "code",
            "redirect_uri": "https://app.example/cb",
            "scope": "Mail.Read",
        }
    )
    async with graph.session.get(
        f"{server.authority}/oauth2/v2.0/authorize?{query}", allow_redirects=False, ssl=graph.ssl
    ) as response:
        assert response.status == 302
        return dict(parse_qsl(urlsplit(response.headers["Location"]).query))


async def test_apps_default_login_and_minted_tokens(
    server: SandboxServer, admin: GraphSandboxAdmin, graph: GraphTestClient
) -> None:
    await admin.register_app(APP_ID, "s3cret", ["https://app.example/cb"])
    await admin.create_mailbox("one@contoso.example")
    second = await admin.create_mailbox("two@contoso.example", "Two")
    assert [m["address"] for m in await admin.mailboxes()] == ["one@contoso.example", "two@contoso.example"]
    assert (await _authorize_without_hint(server, graph))["error"] == "invalid_request"
    await admin.set_default_login("two@contoso.example")
    assert "code" in await _authorize_without_hint(server, graph)
    tokens = await admin.mint_tokens("two@contoso.example", ["Mail.Read"], APP_ID)
    claims = unverified_claims(tokens["access_token"])
    assert (claims["oid"], claims["appid"], claims["scp"]) == (second["id"], APP_ID, "Mail.Read")


async def test_reset_empties_the_tenant(
    admin: GraphSandboxAdmin,
    graph: GraphTestClient,
    alice: dict[str, Any],
    receiver: WebhookReceiver,
    clock: ManualClock,
) -> None:
    expiry = to_graph_timestamp(clock.now() + dt.timedelta(hours=2))
    status, _, _ = await graph.call(
        "POST",
        "/v1.0/subscriptions",
        {
            "changeType": "created",
            "notificationUrl": receiver.url,
            "resource": "me/messages",
            "expirationDateTime": expiry,
        },
    )
    assert status == 201
    await admin.add_fault("slow", delay_s=0.01)
    await admin.reset()
    assert await admin.mailboxes() == []
    assert await admin.subscriptions() == []
    assert await admin.faults() == []
    status, _, _ = await graph.call("GET", "/v1.0/me")
    assert status == 401  # the token's user no longer exists
    assert (await admin.advance_clock(60)).endswith("Z")
