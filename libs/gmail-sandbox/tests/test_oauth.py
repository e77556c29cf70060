"""Google OAuth: the authorize/token endpoints with PKCE, and google-auth's own credential refresh."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import google.auth.transport.requests
import pytest
from google.auth.exceptions import RefreshError
from google.oauth2.credentials import Credentials

from mailsync.gmail_sandbox import DEFAULT_CLIENT

ALICE = "alice@example.com"
REDIRECT = "http://127.0.0.1:9/callback"
SCOPES = ["https://www.googleapis.com/auth/gmail.readonly", "https://www.googleapis.com/auth/gmail.send"]


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def _authorize(
    session: aiohttp.ClientSession, base_url: str, challenge: str | None, **extra: str
) -> dict[str, list[str]]:
    params = {
        "client_id": DEFAULT_CLIENT.client_id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": " ".join(SCOPES),
        "state": "xyz",
        "access_type": "offline",
        "login_hint": ALICE,
        **extra,
    }
    if challenge:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    async with session.get(f"{base_url}/o/oauth2/v2/auth", params=params, allow_redirects=False) as response:
        assert response.status == 302
        location = response.headers["Location"]
    assert location.startswith(REDIRECT)
    return parse_qs(urlsplit(location).query)


async def _token(session: aiohttp.ClientSession, base_url: str, **form: str) -> tuple[int, dict[str, Any]]:
    fields = {"client_id": DEFAULT_CLIENT.client_id, "client_secret": DEFAULT_CLIENT.client_secret, **form}
    async with session.post(f"{base_url}/token", data=fields) as response:
        return response.status, await response.json()


async def test_authorization_code_flow_with_pkce(running: Any) -> None:
    verifier, challenge = _pkce()
    async with aiohttp.ClientSession() as session:
        query = await _authorize(session, running.base_url, challenge, prompt="consent")
        assert query["state"] == ["xyz"]
        code = query["code"][0]
        status, body = await _token(
            session,
            running.base_url,
            grant_type="authorization_code",
            code=code,
            redirect_uri=REDIRECT,
            code_verifier=verifier,
        )
        assert status == 200
        assert body["expires_in"] == 3599
        assert body["token_type"] == "Bearer"
        assert set(body["scope"].split()) == set(SCOPES)
        assert body["refresh_token"]

        status, reused = await _token(
            session,
            running.base_url,
            grant_type="authorization_code",
            code=code,
            redirect_uri=REDIRECT,
            code_verifier=verifier,
        )
        assert (status, reused) == (400, {"error": "invalid_grant", "error_description": "Bad Request"})

        headers = {"Authorization": f"Bearer {body['access_token']}"}
        async with session.get(f"{running.base_url}/gmail/v1/users/me/profile", headers=headers) as response:
            assert response.status == 200

        # A second consent without prompt=consent gives no new refresh token, as Google does.
        again = await _authorize(session, running.base_url, None)
        status, second = await _token(
            session,
            running.base_url,
            grant_type="authorization_code",
            code=again["code"][0],
            redirect_uri=REDIRECT,
        )
        assert status == 200
        assert "refresh_token" not in second


@pytest.mark.parametrize(
    ("verifier", "description"),
    [(None, "Missing code verifier."), ("wrong-verifier-" + "a" * 40, "Invalid code verifier.")],
)
async def test_pkce_failures(running: Any, verifier: str | None, description: str) -> None:
    _, challenge = _pkce()
    async with aiohttp.ClientSession() as session:
        query = await _authorize(session, running.base_url, challenge)
        form = {"grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": REDIRECT}
        if verifier:
            form["code_verifier"] = verifier
        status, body = await _token(session, running.base_url, **form)
    assert status == 400
    assert body == {"error": "invalid_grant", "error_description": description}


async def test_client_and_grant_errors(running: Any) -> None:
    async with aiohttp.ClientSession() as session:
        status, body = await _token(session, running.base_url, grant_type="password")
        assert (status, body["error"]) == (400, "unsupported_grant_type")
        status, body = await _token(
            session, running.base_url, grant_type="refresh_token", refresh_token="x", client_secret="nope"
        )
        assert (status, body) == (401, {"error": "invalid_client", "error_description": "Unauthorized"})
        status, body = await _token(
            session, running.base_url, grant_type="refresh_token", refresh_token="1//unknown"
        )
        assert (status, body["error"]) == (400, "invalid_grant")
        async with session.get(
            f"{running.base_url}/o/oauth2/v2/auth",
            params={"client_id": "unknown", "redirect_uri": REDIRECT, "scope": "x"},
            allow_redirects=False,
        ) as response:
            assert response.status == 401


async def test_partial_consent_then_missing_scope(running: Any) -> None:
    await running.admin.set_consent(ALICE, granted_scopes=[SCOPES[0]])
    async with aiohttp.ClientSession() as session:
        query = await _authorize(session, running.base_url, None)
        assert query["scope"] == [SCOPES[0]]
        status, body = await _token(
            session,
            running.base_url,
            grant_type="authorization_code",
            code=query["code"][0],
            redirect_uri=REDIRECT,
        )
        assert status == 200
        headers = {"Authorization": f"Bearer {body['access_token']}"}
        url = f"{running.base_url}/gmail/v1/users/me/messages/send"
        async with session.post(url, headers=headers, json={"raw": "eA"}) as response:
            assert response.status == 403
            error = (await response.json())["error"]
        assert error["errors"][0]["reason"] == "insufficientPermissions"
        assert error["status"] == "PERMISSION_DENIED"

    await running.admin.set_consent(ALICE, deny=True)
    async with aiohttp.ClientSession() as session:
        denied = await _authorize(session, running.base_url, None)
    assert denied == {"error": ["access_denied"], "state": ["xyz"]}


def _credentials(running: Any, tokens: dict[str, Any]) -> Credentials:
    return Credentials(  # type: ignore[no-untyped-call]  # google-auth leaves __init__ unannotated
        token=None,
        refresh_token=tokens["refresh_token"],
        client_id=DEFAULT_CLIENT.client_id,
        client_secret=DEFAULT_CLIENT.client_secret,
        token_uri=f"{running.base_url}/token",
    )


def _refresh(credentials: Credentials) -> None:
    credentials.refresh(google.auth.transport.requests.Request())  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("how", ["revoke", "password-change"])
async def test_google_auth_refresh_and_invalid_grant(running: Any, how: str) -> None:
    tokens = await running.token_for(scopes=["https://www.googleapis.com/auth/gmail.modify"])
    credentials = _credentials(running, tokens)
    await asyncio.to_thread(_refresh, credentials)
    assert credentials.valid
    assert credentials.token != tokens["access_token"]

    if how == "revoke":
        assert await running.admin.revoke(ALICE) == 1
    else:
        assert await running.admin.change_password(ALICE) == 1
    with pytest.raises(RefreshError) as error:
        await asyncio.to_thread(_refresh, credentials)
    assert error.value.args[0] == "invalid_grant: Token has been expired or revoked."
    assert error.value.retryable is False

    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {credentials.token}"}
        async with session.get(f"{running.base_url}/gmail/v1/users/me/profile", headers=headers) as response:
            assert response.status == 401
            body = await response.json()
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert body["error"]["errors"][0]["reason"] == "authError"
    assert body["error"]["status"] == "UNAUTHENTICATED"


async def test_revoke_endpoint_and_access_token_expiry(running: Any) -> None:
    tokens = await running.token_for()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    profile = f"{running.base_url}/gmail/v1/users/me/profile"
    async with aiohttp.ClientSession() as session:
        await running.clock.advance(3599)
        async with session.get(profile, headers=headers) as response:
            assert response.status == 200
        await running.clock.advance(2)
        async with session.get(profile, headers=headers) as response:
            assert response.status == 401

        async with session.post(
            f"{running.base_url}/revoke", params={"token": tokens["refresh_token"]}
        ) as response:
            assert response.status == 200
        status, body = await _token(
            session, running.base_url, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
        )
        assert (status, body["error_description"]) == (400, "Token has been expired or revoked.")


async def test_password_change_keeps_grants_without_gmail_scopes(running: Any) -> None:
    await running.token_for(scopes=["openid", "email"])
    await running.token_for(scopes=["https://www.googleapis.com/auth/gmail.readonly"])
    assert await running.admin.change_password(ALICE) == 1
