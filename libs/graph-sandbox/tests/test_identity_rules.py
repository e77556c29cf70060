"""Identity platform rules checked over raw HTTP (limits and errors MSAL doesn't reach easily)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from mailsync.graph_sandbox import GraphSandboxAdmin, ManualClock, SandboxServer
from mailsync.graph_sandbox.testing import GraphTestClient

REDIRECT_URI = "http://localhost:8400/callback"


async def _authorize(
    server: SandboxServer, graph: GraphTestClient, **extra: str
) -> tuple[int, str, dict[str, str]]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "client_id": server.config.default_app.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "Mail.Read offline_access openid profile",
        "state": "s1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    async with graph.session.get(
        f"{server.authority}/oauth2/v2.0/authorize?{urlencode(params)}", allow_redirects=False, ssl=graph.ssl
    ) as response:
        text = await response.text()
        location = response.headers.get("Location", "")
        return response.status, text, dict(parse_qsl(urlsplit(location).query)) | {"verifier": verifier}


async def _token(
    server: SandboxServer, graph: GraphTestClient, form: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    app = server.config.default_app
    data = {"client_id": app.client_id, "client_secret": app.client_secret, **form}
    async with graph.session.post(
        f"{server.authority}/oauth2/v2.0/token", data=data, ssl=graph.ssl
    ) as response:
        return response.status, await response.json()


async def _redeem(
    server: SandboxServer, graph: GraphTestClient, params: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    return await _token(
        server,
        graph,
        {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": params["verifier"],
        },
    )


async def test_codes_expire_after_ten_minutes(
    server: SandboxServer, admin: GraphSandboxAdmin, graph: GraphTestClient, clock: ManualClock
) -> None:
    await admin.create_mailbox("a@contoso.example")
    status, _, params = await _authorize(server, graph)
    assert status == 302
    assert params["state"] == "s1"
    clock.advance(601)
    status, body = await _redeem(server, graph, params)
    assert (status, body["error"], body["error_codes"]) == (400, "invalid_grant", [70008])
    assert body["error_uri"] == "https://login.microsoftonline.com/error?code=70008"
    assert "Trace ID:" in body["error_description"]


async def test_refresh_tokens_die_after_ninety_idle_days(
    server: SandboxServer, admin: GraphSandboxAdmin, graph: GraphTestClient, clock: ManualClock
) -> None:
    await admin.create_mailbox("a@contoso.example")
    _, _, params = await _authorize(server, graph)
    _, tokens = await _redeem(server, graph, params)
    clock.advance(89 * 86400)
    status, refreshed = await _token(
        server,
        graph,
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "scope": "Mail.Read"},
    )
    assert status == 200
    clock.advance(90 * 86400 + 1)
    status, body = await _token(
        server, graph, {"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]}
    )
    assert (status, body["error_codes"]) == (400, [700082])


async def test_refresh_cannot_widen_consent(
    server: SandboxServer, admin: GraphSandboxAdmin, graph: GraphTestClient
) -> None:
    await admin.create_mailbox("a@contoso.example")
    _, _, params = await _authorize(server, graph)
    _, tokens = await _redeem(server, graph, params)
    status, body = await _token(
        server,
        graph,
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "scope": "Mail.Send"},
    )
    assert (status, body["error"], body["error_codes"]) == (400, "invalid_grant", [65001])
    status, body = await _token(server, graph, {"grant_type": "password"})
    assert (status, body["error"]) == (400, "unsupported_grant_type")


async def test_authorize_rejects_unknown_clients_redirects_and_scopes(
    server: SandboxServer, admin: GraphSandboxAdmin, graph: GraphTestClient
) -> None:
    await admin.create_mailbox("a@contoso.example")
    status, page, _ = await _authorize(server, graph, client_id="00000000-0000-0000-0000-000000000000")
    assert status == 400
    assert "AADSTS700016" in page
    status, page, _ = await _authorize(server, graph, redirect_uri="https://evil.example/cb")
    assert status == 400
    assert "AADSTS50011" in page
    status, _, params = await _authorize(server, graph, scope="Files.Read")
    assert status == 302
    assert params["error"] == "invalid_scope"
    assert params["state"] == "s1"


async def test_unknown_tenant_is_aadsts90002(server: SandboxServer, graph: GraphTestClient) -> None:
    status, _, body = await graph.call(
        "GET", "/not-a-tenant/v2.0/.well-known/openid-configuration", auth=False
    )
    assert status == 400
    assert body["error_codes"] == [90002]
    status, _, body = await graph.call("GET", "/common/v2.0/.well-known/openid-configuration", auth=False)
    assert body["issuer"].endswith("/{tenantid}/v2.0")
    status, _, body = await graph.call(
        "GET", "/common/discovery/instance?api-version=1.1&authorization_endpoint=x", auth=False
    )
    assert body["metadata"][0]["aliases"] == [urlsplit(server.base_url).netloc]


async def test_access_tokens_outlive_a_revoke_until_they_expire(
    server: SandboxServer, admin: GraphSandboxAdmin, graph: GraphTestClient, clock: ManualClock
) -> None:
    await admin.create_mailbox("a@contoso.example")
    graph.token = (await admin.mint_tokens("a@contoso.example", ["Mail.Read"]))["access_token"]
    await admin.revoke("a@contoso.example")
    assert (await graph.call("GET", "/v1.0/me/messages"))[0] == 200
    clock.advance(3599 + 300 + 1)
    assert (await graph.call("GET", "/v1.0/me/messages"))[0] == 401
