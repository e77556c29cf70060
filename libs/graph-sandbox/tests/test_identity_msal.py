"""MSAL Python (the official client) against the identity sandbox over TLS."""

from __future__ import annotations

import asyncio
import warnings
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msal
import requests

from mailsync.graph_sandbox import GraphSandboxAdmin, ManualClock, SandboxServer
from mailsync.graph_sandbox.jose import unverified_claims
from mailsync.graph_sandbox.testing import GraphTestClient

REDIRECT_URI = "http://localhost:8400/auth/callback"


def _trusting_session(server: SandboxServer) -> requests.Session:
    """A session that trusts the sandbox CA. ``trust_env`` is off because requests lets REQUESTS_CA_BUNDLE /
    CURL_CA_BUNDLE override ``Session.verify`` (psf/requests#3829), which would silently drop the CA."""
    session = requests.Session()
    session.verify = server.ca_file
    session.trust_env = False
    return session


def _msal_app(
    server: SandboxServer, cache: msal.SerializableTokenCache | None = None, secret: str | None = None
) -> msal.ConfidentialClientApplication:
    app_config = server.config.default_app
    return msal.ConfidentialClientApplication(
        app_config.client_id,
        client_credential=secret or app_config.client_secret,
        authority=server.authority,
        instance_discovery=False,
        http_client=_trusting_session(server),
        token_cache=cache,
    )


class _FormFields(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = values["action"]
        elif tag == "input":
            self.fields[values["name"]] = values["value"]


def _sign_in(
    server: SandboxServer, app: msal.ConfidentialClientApplication, login_hint: str, scopes: list[str]
) -> dict[str, Any]:
    """The browser part: open auth_uri, let the sandbox auto-consent, collect the form_post fields."""
    flow = app.initiate_auth_code_flow(
        scopes, redirect_uri=REDIRECT_URI, login_hint=login_hint, response_mode="form_post"
    )
    response = requests.get(flow["auth_uri"], allow_redirects=False, verify=server.ca_file, timeout=10)
    assert response.status_code == 200
    form = _FormFields()
    form.feed(response.text)
    assert form.action == REDIRECT_URI
    result: dict[str, Any] = app.acquire_token_by_auth_code_flow(flow, form.fields)
    return result


async def test_auth_code_flow_with_pkce_gives_tokens_graph_accepts(
    server: SandboxServer, admin: GraphSandboxAdmin, graph: GraphTestClient
) -> None:
    mailbox = await admin.create_mailbox("bob@contoso.example", "Bob")
    cache = msal.SerializableTokenCache()
    app = await asyncio.to_thread(_msal_app, server, cache)

    result = await asyncio.to_thread(_sign_in, server, app, "bob@contoso.example", ["Mail.Read", "Mail.Send"])

    assert "error" not in result, result
    assert {"access_token", "refresh_token", "id_token", "expires_in", "token_type"} <= result.keys()
    assert set(result["scope"].split()) >= {"Mail.Read", "Mail.Send"}
    assert result["id_token_claims"]["preferred_username"] == "bob@contoso.example"
    assert result["id_token_claims"]["oid"] == mailbox["id"]
    accounts = app.get_accounts()
    assert [a["home_account_id"] for a in accounts] == [f"{mailbox['id']}.{server.config.tenant_id}"]
    assert set(unverified_claims(result["access_token"])["scp"].split()) == {"Mail.Read", "Mail.Send"}
    graph.token = result["access_token"]
    status, _, me = await graph.call("GET", "/v1.0/me")
    assert status == 200
    assert me["userPrincipalName"] == "bob@contoso.example"


async def test_silent_refresh_then_revocation_surfaces_aadsts50173(
    server: SandboxServer, admin: GraphSandboxAdmin, clock: ManualClock
) -> None:
    await admin.create_mailbox("carol@contoso.example")
    app = await asyncio.to_thread(_msal_app, server, msal.SerializableTokenCache())
    first = await asyncio.to_thread(_sign_in, server, app, "carol@contoso.example", ["Mail.Read"])
    account = app.get_accounts()[0]

    cached = await asyncio.to_thread(app.acquire_token_silent, ["Mail.Read"], account)
    assert cached is not None
    assert cached["access_token"] == first["access_token"]
    assert cached["token_source"] == "cache"

    clock.advance(1)
    refreshed = await asyncio.to_thread(app.acquire_token_silent, ["Mail.Read"], account, force_refresh=True)
    assert refreshed is not None
    assert refreshed["token_source"] == "identity_provider"
    assert refreshed["access_token"] != first["access_token"]

    await admin.revoke("carol@contoso.example")
    failed = await asyncio.to_thread(
        app.acquire_token_silent_with_error, ["Mail.Read"], account, force_refresh=True
    )
    assert failed is not None
    assert "error" in failed, failed
    assert failed["error"] == "invalid_grant"
    assert failed["error_codes"] == [50173]
    assert failed["error_description"].startswith("AADSTS50173:")
    assert {"timestamp", "trace_id", "correlation_id"} <= failed.keys()


async def test_refresh_works_again_after_a_new_sign_in(
    server: SandboxServer, admin: GraphSandboxAdmin
) -> None:
    await admin.create_mailbox("dave@contoso.example")
    await admin.revoke("dave@contoso.example")
    app = await asyncio.to_thread(_msal_app, server, msal.SerializableTokenCache())
    result = await asyncio.to_thread(_sign_in, server, app, "dave@contoso.example", ["Mail.Read"])
    assert "access_token" in result


async def test_consent_can_grant_fewer_scopes(server: SandboxServer, admin: GraphSandboxAdmin) -> None:
    await admin.create_mailbox("erin@contoso.example")
    await admin.limit_consent("erin@contoso.example", ["Mail.Read"])
    app = await asyncio.to_thread(_msal_app, server)
    result = await asyncio.to_thread(
        _sign_in, server, app, "erin@contoso.example", ["Mail.Read", "Mail.Send"]
    )
    assert "Mail.Send" not in result["scope"].split()
    assert "Mail.Read" in result["scope"].split()


async def test_authorization_code_is_single_use_and_checks_pkce(
    server: SandboxServer, admin: GraphSandboxAdmin
) -> None:
    await admin.create_mailbox("frank@contoso.example")
    app = await asyncio.to_thread(_msal_app, server)

    def run() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", UserWarning
            )  # MSAL recommends form_post; this test covers query mode
            flow = app.initiate_auth_code_flow(
                ["Mail.Read"], redirect_uri=REDIRECT_URI, login_hint="frank@contoso.example"
            )
        response = requests.get(flow["auth_uri"], allow_redirects=False, verify=server.ca_file, timeout=10)
        assert response.status_code == 302
        location = urlsplit(response.headers["Location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
        params = dict(parse_qsl(location.query))
        tampered = dict(flow, code_verifier="x" * 43)
        wrong_verifier = app.acquire_token_by_auth_code_flow(tampered, params)
        ok = app.acquire_token_by_auth_code_flow(flow, params)
        again = app.acquire_token_by_auth_code_flow(flow, params)
        return wrong_verifier, ok, again

    wrong_verifier, ok, again = await asyncio.to_thread(run)
    assert wrong_verifier["error_codes"] == [501481]
    assert "access_token" in ok
    assert again["error_codes"] == [54005]


async def test_wrong_client_secret_is_invalid_client(server: SandboxServer, admin: GraphSandboxAdmin) -> None:
    await admin.create_mailbox("gina@contoso.example")
    app = await asyncio.to_thread(_msal_app, server, None, "not-the-secret")
    result = await asyncio.to_thread(_sign_in, server, app, "gina@contoso.example", ["Mail.Read"])
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]


async def test_discovery_and_keys_are_served_over_https(server: SandboxServer) -> None:
    def fetch() -> tuple[dict[str, Any], dict[str, Any]]:
        config = requests.get(
            f"{server.authority}/v2.0/.well-known/openid-configuration", verify=server.ca_file, timeout=10
        ).json()
        keys = requests.get(config["jwks_uri"], verify=server.ca_file, timeout=10).json()
        return config, keys

    config, keys = await asyncio.to_thread(fetch)
    assert config["token_endpoint"].startswith("https://")
    assert config["issuer"] == f"{server.authority}/v2.0"
    assert keys["keys"][0]["kty"] == "RSA"
