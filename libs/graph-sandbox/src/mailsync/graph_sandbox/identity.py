"""The Microsoft identity platform (v2.0 endpoints) as far as MSAL's auth-code and refresh flows need it.

Rules from the identity platform docs and MSAL Python 1.39's source:

* ``authorize`` issues a single-use code bound to client, redirect URI, scopes, nonce and the PKCE challenge
  (S256 or plain). Codes live 10 minutes (AADSTS70008 after that; AADSTS54005 when redeemed twice;
  AADSTS501481 for a wrong ``code_verifier``).
* The token response carries ``token_type, scope, expires_in, ext_expires_in, access_token, refresh_token``
  (only with ``offline_access``), ``id_token`` (RS256, ``nonce`` echoed from the authorize request; MSAL sends
  the SHA-256 hex of its own nonce and compares), and ``client_info`` (base64url ``{"uid", "utid"}``, from
  which
  MSAL builds ``home_account_id``). ``openid``, ``profile``, ``offline_access`` are reserved scopes.
* Graph scopes may arrive as ``https://graph.microsoft.com/Mail.Read`` or bare ``Mail.Read``.
* Refresh tokens survive rotation (an older one stays usable) but die when the user's password changes or
  their sessions are revoked: ``invalid_grant`` AADSTS50173 (and AADSTS700082 after 90 days of inactivity).
* Errors use Entra's JSON: ``error, error_description`` (with Trace ID / Correlation ID / Timestamp lines),
  ``error_codes, timestamp, trace_id, correlation_id, error_uri``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import secrets
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from mailsync.graph_sandbox.jose import SigningKey, TokenInvalidError, b64url

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
GRAPH_SCOPES = frozenset({"Mail.Read", "Mail.ReadBasic", "Mail.ReadWrite", "Mail.Send", "User.Read"})
CODE_LIFETIME = dt.timedelta(minutes=10)
REFRESH_INACTIVITY_LIMIT = dt.timedelta(days=90)

_AAD_MESSAGES: dict[int, str] = {
    50173: "AADSTS50173: The provided grant has expired due to it being revoked, a fresh auth token is "
    "needed. "
    "The user might have changed or reset their password. The grant was issued on '{issued}' and the "
    "TokensValidFrom date (before which tokens are not valid) for this user is '{valid_from}'.",
    700082: "AADSTS700082: The refresh token has expired due to inactivity. The token was issued on "
    "'{issued}' and was inactive for 90.00:00:00.",
    70008: "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity. "
    "Send a new interactive authorization request for this user and resource.",
    54005: "AADSTS54005: OAuth2 Authorization code was already redeemed, please retry with a new valid code "
    "or use an existing refresh token.",
    70000: "AADSTS70000: The provided value for the 'code' parameter is not valid.",
    9002313: "AADSTS9002313: Invalid request. Request is malformed or invalid.",
    501481: "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization "
    "request.",
    7000215: "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is "
    "the client secret value, not the client secret ID, for a secret added to app '{client_id}'.",
    7000218: "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or "
    "'client_secret'.",
    700016: "AADSTS700016: Application with identifier '{client_id}' was not found in the directory "
    "'{tenant}'.",
    50011: "AADSTS50011: The redirect URI '{redirect_uri}' specified in the request does not match the "
    "redirect URIs configured for the application '{client_id}'.",
    70011: "AADSTS70011: The provided request must include a 'scope' input parameter. The provided value for "
    "the input parameter 'scope' is not valid. The scope {scope} is not valid.",
    65001: "AADSTS65001: The user or administrator has not consented to use the application with ID "
    "'{client_id}'. Send an interactive authorization request for this user and resource.",
    900144: "AADSTS900144: The request body must contain the following parameter: '{parameter}'.",
    70003: "AADSTS70003: The app requested an unsupported grant type '{grant_type}'.",
    90002: "AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
    "and are "
    "signing into the correct cloud.",
    900561: "AADSTS900561: The endpoint only accepts {method} requests. Received a {received} request.",
    90033: "AADSTS90033: A transient error has occurred. Please try again.",
    50126: "AADSTS50126: Error validating credentials due to invalid username or password.",
}


class IdentityError(Exception):
    """An OAuth error answered in Entra's JSON shape."""

    def __init__(self, status: int, error: str, code: int, **details: str) -> None:
        self.status = status
        self.error = error
        self.code = code
        self.description = _AAD_MESSAGES[code].format(**details)
        super().__init__(self.description)

    def body(self, now: dt.datetime) -> dict[str, Any]:
        """The JSON body, with fresh trace and correlation ids."""
        trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = now.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return {
            "error": self.error,
            "error_description": f"{self.description}\r\nTrace ID: {trace_id}\r\nCorrelation ID: "
            f"{correlation_id}\r\nTimestamp: {stamp}",
            "error_codes": [self.code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
        }


@dataclasses.dataclass(frozen=True)
class AppRegistration:
    """A confidential client. Empty ``redirect_uris`` allows any localhost / loopback redirect URI."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...] = ()
    display_name: str = "mailsync"

    def allows_redirect(self, uri: str) -> bool:
        """Whether ``uri`` is registered (loopback URIs match regardless of port, as Entra allows)."""
        if self.redirect_uris:
            return uri in self.redirect_uris
        parts = urlsplit(uri)
        return parts.scheme in {"http", "https"} and parts.hostname in {"localhost", "127.0.0.1", "::1"}


@dataclasses.dataclass(frozen=True)
class Principal:
    """A user as the identity platform knows them."""

    user_id: str
    upn: str
    display_name: str


@dataclasses.dataclass
class _UserCredentials:
    tokens_valid_from: dt.datetime
    generation: int = 0
    consent_limit: frozenset[str] | None = None


@dataclasses.dataclass(frozen=True)
class _AuthorizationCode:
    client_id: str
    redirect_uri: str
    user_id: str
    scopes: frozenset[str]
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str
    issued: dt.datetime


@dataclasses.dataclass
class _RefreshGrant:
    client_id: str
    user_id: str
    scopes: frozenset[str]
    issued: dt.datetime
    last_used: dt.datetime
    generation: int


@dataclasses.dataclass(frozen=True)
class AccessGrant:
    """What a verified Graph access token says."""

    user_id: str
    client_id: str
    scopes: frozenset[str]
    expires: dt.datetime


def split_scopes(raw: str) -> tuple[set[str], set[str]]:
    """Split a scope parameter into (Graph permission names, reserved OIDC scopes).

    Raises ``IdentityError`` AADSTS70011 for an unknown scope.
    """
    graph: set[str] = set()
    reserved: set[str] = set()
    for scope in raw.split():
        name = scope.removeprefix(GRAPH_RESOURCE + "/")
        if name in RESERVED_SCOPES:
            reserved.add(name)
        elif name == ".default":
            graph |= GRAPH_SCOPES
        else:
            match = next((s for s in GRAPH_SCOPES if s.casefold() == name.casefold()), None)
            if match is None:
                raise IdentityError(400, "invalid_scope", 70011, scope=scope)
            graph.add(match)
    return graph, reserved


class IdentityPlatform:
    """Apps, users' credentials, codes, refresh tokens, and token minting for one tenant."""

    def __init__(
        self,
        *,
        tenant_id: str,
        clock: Callable[[], dt.datetime],
        signing_key: SigningKey,
        access_token_lifetime: dt.timedelta,
        token_clock_skew: dt.timedelta,
    ) -> None:
        self.tenant_id = tenant_id
        self._clock = clock
        self.signing_key = signing_key
        self._lifetime = access_token_lifetime
        self._skew = token_clock_skew
        self._apps: dict[str, AppRegistration] = {}
        self._principals: dict[str, Principal] = {}
        self._credentials: dict[str, _UserCredentials] = {}
        self._codes: dict[str, _AuthorizationCode] = {}
        self._redeemed: set[str] = set()
        self._refresh: dict[str, _RefreshGrant] = {}
        self.default_login: str | None = None

    # --- registrations ------------------------------------------------------------------------------

    def register_app(self, app: AppRegistration) -> None:
        """Register (or replace) a confidential client."""
        self._apps[app.client_id] = app

    def app(self, client_id: str) -> AppRegistration:
        """A registered app; AADSTS700016 otherwise."""
        app = self._apps.get(client_id)
        if app is None:
            raise IdentityError(
                400, "unauthorized_client", 700016, client_id=client_id, tenant=self.tenant_id
            )
        return app

    def add_user(self, principal: Principal) -> None:
        """Make a user able to sign in."""
        self._principals[principal.user_id] = principal
        self._credentials[principal.user_id] = _UserCredentials(self._clock() - dt.timedelta(days=1))

    def principal(self, id_or_upn: str) -> Principal | None:
        """A user by object id or UPN (case-insensitive)."""
        if id_or_upn in self._principals:
            return self._principals[id_or_upn]
        wanted = id_or_upn.casefold()
        return next((p for p in self._principals.values() if p.upn.casefold() == wanted), None)

    def revoke_sessions(self, user_id: str) -> None:
        """``revokeSignInSessions`` / a password change: refresh tokens issued until now stop working.

        Access tokens already issued stay valid until they expire, as with the real service (without CAE).
        """
        credentials = self._credentials[user_id]
        credentials.tokens_valid_from = self._clock()
        credentials.generation += 1

    def limit_consent(self, user_id: str, scopes: frozenset[str] | None) -> None:
        """Make the user's consent screen grant only ``scopes`` (None: grant whatever is asked)."""
        self._credentials[user_id].consent_limit = scopes

    def reset_tokens(self) -> None:
        """Forget every code and refresh token."""
        self._codes.clear()
        self._redeemed.clear()
        self._refresh.clear()

    # --- authorize ----------------------------------------------------------------------------------

    def authorize(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        scope: str,
        login_hint: str | None,
        nonce: str | None,
        code_challenge: str | None,
        code_challenge_method: str | None,
    ) -> tuple[str, Principal]:
        """Auto-approve the consent screen and return (authorization code, signed-in user)."""
        app = self.app(client_id)
        if not app.allows_redirect(redirect_uri):
            raise IdentityError(400, "invalid_request", 50011, redirect_uri=redirect_uri, client_id=client_id)
        graph, reserved = split_scopes(scope)
        hint = login_hint or self.default_login
        principal = (
            self.principal(hint)
            if hint
            else (next(iter(self._principals.values())) if len(self._principals) == 1 else None)
        )
        if principal is None:
            raise IdentityError(400, "invalid_request", 50126)
        limit = self._credentials[principal.user_id].consent_limit
        granted = graph if limit is None else graph & limit
        code = b64url(secrets.token_bytes(48))
        self._codes[code] = _AuthorizationCode(
            client_id,
            redirect_uri,
            principal.user_id,
            frozenset(granted | reserved),
            nonce,
            code_challenge,
            (code_challenge_method or "plain") if code_challenge else "plain",
            self._clock(),
        )
        return code, principal

    # --- token ----------------------------------------------------------------------------------------

    def _authenticate_client(self, client_id: str | None, client_secret: str | None) -> AppRegistration:
        if not client_id:
            raise IdentityError(400, "invalid_request", 900144, parameter="client_id")
        app = self.app(client_id)
        if not client_secret:
            raise IdentityError(401, "invalid_client", 7000218)
        if not secrets.compare_digest(client_secret, app.client_secret):
            raise IdentityError(401, "invalid_client", 7000215, client_id=client_id)
        return app

    def redeem_code(self, form: dict[str, str], *, issuer_host: str) -> dict[str, Any]:
        """The ``authorization_code`` grant."""
        app = self._authenticate_client(form.get("client_id"), form.get("client_secret"))
        raw_code = form.get("code")
        if not raw_code:
            raise IdentityError(400, "invalid_request", 900144, parameter="code")
        if raw_code in self._redeemed:
            raise IdentityError(400, "invalid_grant", 54005)
        code = self._codes.get(raw_code)
        if code is None or code.client_id != app.client_id or code.redirect_uri != form.get("redirect_uri"):
            raise IdentityError(400, "invalid_grant", 70000)
        if self._clock() - code.issued > CODE_LIFETIME:
            raise IdentityError(400, "invalid_grant", 70008)
        if code.code_challenge is not None:
            verifier = form.get("code_verifier", "")
            expected = (
                b64url(hashlib.sha256(verifier.encode("ascii")).digest())
                if code.code_challenge_method == "S256"
                else verifier
            )
            if not secrets.compare_digest(expected, code.code_challenge):
                raise IdentityError(400, "invalid_grant", 501481)
        del self._codes[raw_code]
        self._redeemed.add(raw_code)
        return self._token_response(app, code.user_id, code.scopes, nonce=code.nonce, issuer_host=issuer_host)

    def redeem_refresh_token(self, form: dict[str, str], *, issuer_host: str) -> dict[str, Any]:
        """The ``refresh_token`` grant."""
        app = self._authenticate_client(form.get("client_id"), form.get("client_secret"))
        raw = form.get("refresh_token")
        if not raw:
            raise IdentityError(400, "invalid_request", 900144, parameter="refresh_token")
        grant = self._refresh.get(raw)
        if grant is None or grant.client_id != app.client_id:
            raise IdentityError(400, "invalid_grant", 9002313)
        now = self._clock()
        credentials = self._credentials[grant.user_id]
        if grant.generation != credentials.generation:
            valid_from = credentials.tokens_valid_from
            raise IdentityError(
                400, "invalid_grant", 50173, issued=_aad_time(grant.issued), valid_from=_aad_time(valid_from)
            )
        if now - grant.last_used > REFRESH_INACTIVITY_LIMIT:
            raise IdentityError(400, "invalid_grant", 700082, issued=_aad_time(grant.issued))
        grant.last_used = now
        graph, reserved = split_scopes(form.get("scope", ""))
        if not graph <= grant.scopes:
            raise IdentityError(400, "invalid_grant", 65001, client_id=app.client_id)
        scopes = frozenset(
            (graph or (grant.scopes - RESERVED_SCOPES)) | reserved | (grant.scopes & {"offline_access"})
        )
        return self._token_response(app, grant.user_id, scopes, nonce=None, issuer_host=issuer_host)

    def _token_response(
        self,
        app: AppRegistration,
        user_id: str,
        scopes: frozenset[str],
        *,
        nonce: str | None,
        issuer_host: str,
    ) -> dict[str, Any]:
        principal = self._principals[user_id]
        now = self._clock()
        lifetime = int(self._lifetime.total_seconds())
        graph_scopes = sorted(scopes - RESERVED_SCOPES)
        access = self.signing_key.sign(
            {
                "aud": GRAPH_RESOURCE,
                "iss": f"https://sts.windows.net/{self.tenant_id}/",
                "iat": int(now.timestamp()),
                "nbf": int(now.timestamp()),
                "exp": int(now.timestamp()) + lifetime,
                "appid": app.client_id,
                "app_displayname": app.display_name,
                "idtyp": "user",
                "name": principal.display_name,
                "oid": principal.user_id,
                "scp": " ".join(graph_scopes),
                "sub": b64url(hashlib.sha256(f"{principal.user_id}:{app.client_id}".encode()).digest()),
                "tid": self.tenant_id,
                "unique_name": principal.upn,
                "upn": principal.upn,
                "uti": b64url(secrets.token_bytes(16)),
                "ver": "1.0",
            }
        )
        id_claims: dict[str, Any] = {
            "aud": app.client_id,
            "iss": f"https://{issuer_host}/{self.tenant_id}/v2.0",
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int(now.timestamp()) + lifetime,
            "name": principal.display_name,
            "oid": principal.user_id,
            "preferred_username": principal.upn,
            "sub": b64url(hashlib.sha256(f"{principal.user_id}:{app.client_id}:sub".encode()).digest()),
            "tid": self.tenant_id,
            "ver": "2.0",
        }
        if nonce is not None:
            id_claims["nonce"] = nonce
        response: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join([*graph_scopes, *sorted(scopes & RESERVED_SCOPES - {"offline_access"})]),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access,
            "client_info": b64url(json.dumps({"uid": principal.user_id, "utid": self.tenant_id}).encode()),
        }
        if "openid" in scopes:
            response["id_token"] = self.signing_key.sign(id_claims)
        if "offline_access" in scopes:
            refresh = b64url(secrets.token_bytes(64))
            generation = self._credentials[user_id].generation
            self._refresh[refresh] = _RefreshGrant(app.client_id, user_id, scopes, now, now, generation)
            response["refresh_token"] = refresh
        return response

    def mint(
        self, *, user_id: str, client_id: str, scopes: frozenset[str], issuer_host: str
    ) -> dict[str, Any]:
        """Issue tokens without the browser flow (admin API convenience for tests and the demo)."""
        return self._token_response(
            self.app(client_id),
            user_id,
            scopes | {"openid", "profile", "offline_access"},
            nonce=None,
            issuer_host=issuer_host,
        )

    # --- Graph's side -------------------------------------------------------------------------------

    def verify_access_token(self, token: str) -> AccessGrant:
        """Validate a Graph access token: signature, audience, lifetime. Raises ``TokenInvalidError``."""
        claims = self.signing_key.verify(token)
        if claims.get("aud") not in {GRAPH_RESOURCE, GRAPH_RESOURCE + "/", GRAPH_APP_ID}:
            raise TokenInvalidError("Access token validation failure. Invalid audience.")
        now = self._clock()
        expires = dt.datetime.fromtimestamp(int(claims.get("exp", 0)), dt.UTC)
        if now > expires + self._skew:
            raise TokenInvalidError("Lifetime validation failed, the token is expired.")
        if claims.get("tid") != self.tenant_id or claims.get("oid") not in self._principals:
            raise TokenInvalidError("Access token validation failure.")
        return AccessGrant(
            user_id=str(claims["oid"]),
            client_id=str(claims.get("appid", "")),
            scopes=frozenset(str(claims.get("scp", "")).split()),
            expires=expires,
        )


def _aad_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
