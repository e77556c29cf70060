"""The Microsoft identity platform through MSAL Python (`ConfidentialClientApplication`).

MSAL is synchronous (it uses `requests`), so every call here runs in a worker thread (`asyncio.to_thread`)
and never blocks the event loop. Quirks:

- `openid`, `profile` and `offline_access` are reserved: MSAL adds them and raises if they are passed.
- MSAL caches an identical failed token request (HTTP 400) for 60 s per application object, and the token
  cache is bound to the application at construction; so each connection's refresh uses a fresh application
  over that connection's deserialised cache.
- `acquire_token_silent` answers None both for a cache miss and a failed refresh; the `_with_error` variant
  is used to tell `invalid_grant` (the user must sign in again, C6) from an outage.
- When a CA file is configured (the Graph sandbox), requests' `REQUESTS_CA_BUNDLE` would override
  `Session.verify`, so the session ignores the environment (`trust_env=False`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import msal
import requests


@dataclass(frozen=True)
class IdentityConfig:
    """The app registration and where the identity platform is."""

    client_id: str
    client_secret: str
    authority: str
    scopes: tuple[str, ...]
    ca_file: str | None = None
    timeout_seconds: float = 30.0


@dataclass(frozen=True)
class TokenResult:
    """What a token call gave: MSAL's result dict (tokens or an error) and the cache to store, if changed."""

    result: dict[str, Any]
    serialized_cache: str | None
    home_account_id: str | None = None
    """The MSAL account the cache holds the grant under (set by `redeem`)."""


class Identity:
    """Auth-code flow with PKCE and silent refresh, one token cache per connection."""

    def __init__(self, config: IdentityConfig) -> None:
        self._config = config

    @property
    def configured(self) -> bool:
        return bool(self._config.client_id)

    async def start_flow(self, redirect_uri: str, login_hint: str | None) -> dict[str, Any]:
        """`initiate_auth_code_flow`: a dict with `auth_uri`, `state`, the PKCE verifier and the nonce."""
        return await asyncio.to_thread(self._start_flow, redirect_uri, login_hint)

    async def redeem(self, flow: dict[str, Any], response: dict[str, str]) -> TokenResult:
        """`acquire_token_by_auth_code_flow` into a fresh cache (checks state, PKCE and nonce)."""
        return await asyncio.to_thread(self._redeem, flow, response)

    async def acquire(
        self, serialized_cache: str, home_account_id: str, *, force_refresh: bool = False
    ) -> TokenResult:
        """An access token from the cache, refreshed with the refresh token when needed."""
        return await asyncio.to_thread(self._acquire, serialized_cache, home_account_id, force_refresh)

    @contextlib.contextmanager
    def _application(self, cache: msal.SerializableTokenCache | None) -> Iterator[Any]:
        session = requests.Session()
        if self._config.ca_file:
            session.verify = self._config.ca_file
            session.trust_env = False
        try:
            yield msal.ConfidentialClientApplication(
                self._config.client_id,
                client_credential=self._config.client_secret,
                authority=self._config.authority,
                instance_discovery=".microsoftonline." in self._config.authority,
                http_client=_TimeoutSession(session, self._config.timeout_seconds),
                token_cache=cache,
            )
        finally:
            session.close()

    def _start_flow(self, redirect_uri: str, login_hint: str | None) -> dict[str, Any]:
        with self._application(None) as app:
            flow: dict[str, Any] = app.initiate_auth_code_flow(
                list(self._config.scopes),
                redirect_uri=redirect_uri,
                login_hint=login_hint,
                response_mode="form_post",  # the code never sits in a URL (RFC 9700 4.3.1)
            )
        return flow

    def _redeem(self, flow: dict[str, Any], response: dict[str, str]) -> TokenResult:
        cache = msal.SerializableTokenCache()
        with self._application(cache) as app:
            result: dict[str, Any] = app.acquire_token_by_auth_code_flow(flow, response)
            if "access_token" not in result:
                return TokenResult(result, None)
            accounts = app.get_accounts()
        home_account_id = str(accounts[0]["home_account_id"]) if len(accounts) == 1 else None
        return TokenResult(result, cache.serialize(), home_account_id)

    def _acquire(self, serialized_cache: str, home_account_id: str, force_refresh: bool) -> TokenResult:
        cache = msal.SerializableTokenCache()
        cache.deserialize(serialized_cache)
        with self._application(cache) as app:
            account = next(
                (a for a in app.get_accounts() if a.get("home_account_id") == home_account_id), None
            )
            if account is None:
                return TokenResult({"error": "invalid_grant", "error_description": "no cached account"}, None)
            result = app.acquire_token_silent_with_error(
                list(self._config.scopes), account, force_refresh=force_refresh
            )
        if result is None:
            result = {"error": "invalid_grant", "error_description": "no refresh token in the cache"}
        return TokenResult(dict(result), cache.serialize() if cache.has_state_changed else None)


class _TimeoutSession:
    """MSAL's http client interface (`get`/`post`) over a session, with a default timeout."""

    def __init__(self, session: requests.Session, timeout: float) -> None:
        self._session = session
        self._timeout = timeout

    def get(self, url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self._timeout)
        return self._session.get(url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self._timeout)
        return self._session.post(url, **kwargs)

    def close(self) -> None:
        self._session.close()


def granted_scopes(result: dict[str, Any]) -> Sequence[str]:
    """The scopes a token response granted."""
    scope = result.get("scope", "")
    return scope.split() if isinstance(scope, str) else list(scope)
