"""Google's OAuth 2.0 authorization server, reduced to what a server-side web app uses.

Behaviour reproduced (Google "Using OAuth 2.0 for Web Server Applications", RFC 6749, RFC 7636):

* Authorization codes are single-use and short-lived (10 minutes); reuse answers ``invalid_grant`` "Bad
  Request".
* PKCE: with a ``code_challenge`` the exchange needs the matching ``code_verifier`` ("Missing code verifier."
  / "Invalid code verifier."); sending a verifier for a code without challenge is also ``invalid_grant``.
* A refresh token is returned only with ``access_type=offline``, and only on the first consent of that user to
  that client unless ``prompt=consent`` forces a new one.
* Access tokens live one hour; the token response says ``expires_in: 3599``.
* Users may grant only some of the requested scopes (granular consent); ``scope`` in the responses lists what
  was granted.
* Revoking (``/revoke``), or a password change when the grant has Gmail scopes, kills the refresh token and
  its access tokens: a refresh then answers 400 ``invalid_grant`` "Token has been expired or revoked.".
* Unknown clients get 401 ``invalid_client`` "The OAuth client was not found.", a wrong secret 401
  "Unauthorized".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from mailsync.gmail_sandbox.errors import OAuthError, token_expired_or_revoked
from mailsync.gmail_sandbox.scopes import GMAIL_SCOPES

ACCESS_TOKEN_LIFETIME = 3600
CODE_LIFETIME = 600


@dataclass(frozen=True)
class OAuthClient:
    """A registered OAuth client (a Google Cloud "Web application" client)."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...] = ()

    def allows_redirect(self, redirect_uri: str) -> bool:
        """Whether ``redirect_uri`` is registered (an empty registration allows any, for convenience)."""
        return not self.redirect_uris or redirect_uri in self.redirect_uris


@dataclass
class Grant:
    """A user's consent to a client: the refresh token and the scopes behind it."""

    grant_id: str
    client_id: str
    user: str
    scopes: frozenset[str]
    refresh_token: str | None
    revoked: bool = False


@dataclass(frozen=True)
class AccessToken:
    """A bearer token for the Gmail API."""

    token: str
    grant_id: str
    user: str
    scopes: frozenset[str]
    expires_at: float


@dataclass
class AuthorizationCode:
    """A code issued by the authorize endpoint, waiting to be exchanged."""

    code: str
    client_id: str
    redirect_uri: str
    user: str
    scopes: frozenset[str]
    offline: bool
    force_consent: bool
    code_challenge: str | None
    code_challenge_method: str
    expires_at: float
    used: bool = False


@dataclass(frozen=True)
class TokenResponse:
    """What the token endpoint returns on success."""

    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None = None

    def body(self) -> dict[str, object]:
        """Render Google's token response JSON."""
        body: dict[str, object] = {
            "access_token": self.access_token,
            "expires_in": self.expires_in,
            "scope": self.scope,
            "token_type": "Bearer",
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        return body


@dataclass
class ConsentPolicy:
    """How the auto-approving consent screen answers for one user: grant all, a subset, or deny."""

    granted_scopes: frozenset[str] | None = None
    deny: bool = False


def s256(verifier: str) -> str:
    """Return the RFC 7636 S256 challenge for ``verifier``."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class AuthorizationServer:
    """Clients, codes, grants and tokens. All methods take the current time explicitly."""

    clients: dict[str, OAuthClient] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    access_tokens: dict[str, AccessToken] = field(default_factory=dict)
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    consent: dict[str, ConsentPolicy] = field(default_factory=dict)

    def register_client(self, client: OAuthClient) -> None:
        """Register or replace a client."""
        self.clients[client.client_id] = client

    def authenticate_client(self, client_id: str, client_secret: str | None) -> OAuthClient:
        """Check client credentials.

        Raises:
            OAuthError: 401 ``invalid_client``.
        """
        client = self.clients.get(client_id)
        if client is None:
            raise OAuthError("invalid_client", "The OAuth client was not found.", 401)
        if client_secret is None or not hmac.compare_digest(client.client_secret, client_secret):
            raise OAuthError("invalid_client", "Unauthorized", 401)
        return client

    def granted_scopes(self, user: str, requested: Iterable[str]) -> frozenset[str] | None:
        """Apply the user's consent policy: the granted subset of ``requested``, or ``None`` when denied."""
        policy = self.consent.get(user, ConsentPolicy())
        if policy.deny:
            return None
        wanted = frozenset(requested)
        return wanted if policy.granted_scopes is None else wanted & policy.granted_scopes

    def issue_code(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        user: str,
        scopes: frozenset[str],
        offline: bool,
        force_consent: bool,
        code_challenge: str | None,
        code_challenge_method: str,
        now: float,
    ) -> AuthorizationCode:
        """Issue a single-use authorization code."""
        code = AuthorizationCode(
            code="4/0A" + secrets.token_urlsafe(40),
            client_id=client_id,
            redirect_uri=redirect_uri,
            user=user,
            scopes=scopes,
            offline=offline,
            force_consent=force_consent,
            code_challenge=code_challenge,
            code_challenge_method=code_challenge_method,
            expires_at=now + CODE_LIFETIME,
        )
        self.codes[code.code] = code
        return code

    def exchange_code(
        self, client: OAuthClient, code_value: str, redirect_uri: str, code_verifier: str | None, now: float
    ) -> TokenResponse:
        """The ``authorization_code`` grant.

        Raises:
            OAuthError: ``invalid_grant`` (unknown, used, expired or foreign code; PKCE failures) or
                ``redirect_uri_mismatch``.
        """
        code = self.codes.get(code_value)
        if code is None or code.used or code.expires_at <= now or code.client_id != client.client_id:
            raise OAuthError("invalid_grant", "Bad Request")
        if code.redirect_uri != redirect_uri:
            raise OAuthError("redirect_uri_mismatch", "Bad Request")
        if code.code_challenge is None:
            if code_verifier:
                raise OAuthError("invalid_grant", "code_verifier or verifier is not needed.")
        else:
            if not code_verifier:
                raise OAuthError("invalid_grant", "Missing code verifier.")
            expected = s256(code_verifier) if code.code_challenge_method == "S256" else code_verifier
            if not hmac.compare_digest(expected, code.code_challenge):
                raise OAuthError("invalid_grant", "Invalid code verifier.")
        code.used = True
        existing = self._live_grant(client.client_id, code.user)
        refresh_token: str | None = None
        if code.offline and (existing is None or code.force_consent):
            refresh_token = "1//0" + secrets.token_urlsafe(60)
        if existing is not None and refresh_token is None:
            grant = existing
            grant.scopes = grant.scopes | code.scopes
        else:
            grant = Grant(secrets.token_hex(8), client.client_id, code.user, code.scopes, refresh_token)
            self.grants[grant.grant_id] = grant
        access = self._mint(grant, code.scopes, now)
        return TokenResponse(
            access.token, ACCESS_TOKEN_LIFETIME - 1, " ".join(sorted(code.scopes)), refresh_token
        )

    def refresh(
        self, client: OAuthClient, refresh_token: str, requested_scopes: Iterable[str] | None, now: float
    ) -> TokenResponse:
        """The ``refresh_token`` grant; ``requested_scopes`` may narrow the scopes.

        Raises:
            OAuthError: ``invalid_grant`` "Token has been expired or revoked." for unknown/revoked tokens;
                ``invalid_scope`` when asking for scopes beyond the grant.
        """
        grant = next(
            (
                g
                for g in self.grants.values()
                if g.refresh_token == refresh_token and g.client_id == client.client_id
            ),
            None,
        )
        if grant is None or grant.revoked:
            raise token_expired_or_revoked()
        scopes = grant.scopes
        if requested_scopes is not None:
            wanted = frozenset(requested_scopes)
            if not wanted <= grant.scopes:
                raise OAuthError("invalid_scope", "Bad Request")
            scopes = wanted or grant.scopes
        access = self._mint(grant, scopes, now)
        return TokenResponse(access.token, ACCESS_TOKEN_LIFETIME - 1, " ".join(sorted(scopes)))

    def grant_directly(
        self, client_id: str, user: str, scopes: Iterable[str], now: float
    ) -> tuple[TokenResponse, str]:
        """Create a consented grant without the browser round trip (admin API); returns tokens and refresh
        token."""
        refresh_token = "1//0" + secrets.token_urlsafe(60)
        grant = Grant(secrets.token_hex(8), client_id, user, frozenset(scopes), refresh_token)
        self.grants[grant.grant_id] = grant
        access = self._mint(grant, grant.scopes, now)
        response = TokenResponse(
            access.token, ACCESS_TOKEN_LIFETIME - 1, " ".join(sorted(grant.scopes)), refresh_token
        )
        return response, refresh_token

    def validate_access_token(self, token: str, now: float) -> AccessToken | None:
        """Return the live access token, or ``None`` when unknown, expired or its grant is revoked."""
        access = self.access_tokens.get(token)
        if access is None or access.expires_at <= now:
            return None
        grant = self.grants.get(access.grant_id)
        if grant is None or grant.revoked:
            return None
        return access

    def revoke_token(self, token: str) -> bool:
        """Revoke the grant behind a refresh or access token (``/revoke``); ``False`` if the token is
        unknown."""
        access = self.access_tokens.get(token)
        grant_id = access.grant_id if access else None
        if grant_id is None:
            grant_id = next((g.grant_id for g in self.grants.values() if g.refresh_token == token), None)
        if grant_id is None or self.grants[grant_id].revoked:
            return False
        self.grants[grant_id].revoked = True
        return True

    def revoke_user(self, user: str) -> int:
        """Revoke every grant of ``user`` (the user removed the app's access); returns how many."""
        return self._revoke_where(user, lambda _g: True)

    def password_changed(self, user: str) -> int:
        """Revoke the user's grants that include Gmail scopes, as a password change does; returns how many."""
        return self._revoke_where(user, lambda g: bool(g.scopes & GMAIL_SCOPES))

    def _revoke_where(self, user: str, predicate: Callable[[Grant], bool]) -> int:
        count = 0
        for grant in self.grants.values():
            if grant.user == user and not grant.revoked and predicate(grant):
                grant.revoked = True
                count += 1
        return count

    def _live_grant(self, client_id: str, user: str) -> Grant | None:
        for grant in self.grants.values():
            if grant.client_id == client_id and grant.user == user and not grant.revoked:
                return grant
        return None

    def _mint(self, grant: Grant, scopes: frozenset[str], now: float) -> AccessToken:
        access = AccessToken(
            token="ya29.a0" + secrets.token_urlsafe(90),
            grant_id=grant.grant_id,
            user=grant.user,
            scopes=scopes,
            expires_at=now + ACCESS_TOKEN_LIFETIME,
        )
        self.access_tokens[access.token] = access
        return access

    def reset(self) -> None:
        """Forget every grant, token and code (registered clients stay)."""
        self.grants.clear()
        self.access_tokens.clear()
        self.codes.clear()
        self.consent.clear()
