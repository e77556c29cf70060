"""HTTP endpoints of Google's accounts side: authorize, token, revoke, and the certs for push tokens.

Paths mirror Google's hosts folded onto one origin: ``/o/oauth2/v2/auth`` (accounts.google.com), ``/token``
and ``/revoke`` (oauth2.googleapis.com), ``/oauth2/v1/certs`` and ``/oauth2/v3/certs`` (www.googleapis.com).

The consent screen is auto-approved: the user is ``login_hint`` (or the only mailbox, when there is exactly
one), and the admin API decides per user whether all requested scopes are granted, a subset, or access is
denied (``error=access_denied`` on the redirect, as when a user clicks Cancel). Errors that Google shows on
its own page rather than redirecting (unknown client, unregistered redirect URI) are answered with that status
and a short HTML page.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import urlencode

from aiohttp import web

from mailsync.gmail_sandbox.errors import OAuthError
from mailsync.gmail_sandbox.oauth import TokenResponse
from mailsync.gmail_sandbox.sandbox import GmailSandbox


def _error_page(status: int, error: str, description: str) -> web.Response:
    text = f"<html><body><h1>Error {status}: {error}</h1><p>{description}</p></body></html>"
    return web.Response(status=status, text=text, content_type="text/html")


def _redirect(redirect_uri: str, params: dict[str, str]) -> web.Response:
    separator = "&" if "?" in redirect_uri else "?"
    return web.Response(status=302, headers={"Location": f"{redirect_uri}{separator}{urlencode(params)}"})


class OAuthEndpoints:
    """Route handlers for the authorization server and the push-token certs."""

    def __init__(self, sandbox: GmailSandbox) -> None:
        self.sandbox = sandbox

    def routes(self) -> list[web.RouteDef]:
        """All OAuth and certs routes."""
        return [
            web.get("/o/oauth2/v2/auth", self.authorize),
            web.get("/o/oauth2/auth", self.authorize),
            web.post("/token", self.token),
            web.post("/revoke", self.revoke),
            web.post("/o/oauth2/revoke", self.revoke),
            web.get("/oauth2/v1/certs", self.pem_certs),
            web.get("/oauth2/v3/certs", self.jwks),
        ]

    async def authorize(self, request: web.Request) -> web.Response:  # noqa: PLR0911 - one exit per outcome
        """Auto-approving consent: redirects to ``redirect_uri`` with ``code``, ``state`` and granted
        ``scope``."""
        query = request.query
        client = self.sandbox.oauth.clients.get(query.get("client_id", ""))
        if client is None:
            return _error_page(401, "invalid_client", "The OAuth client was not found.")
        redirect_uri = query.get("redirect_uri", "")
        if not redirect_uri or not client.allows_redirect(redirect_uri):
            return _error_page(
                400, "redirect_uri_mismatch", "The redirect URI is not registered for this client."
            )
        state = {"state": query["state"]} if "state" in query else {}
        if query.get("response_type", "code") != "code":
            return _redirect(redirect_uri, {"error": "unsupported_response_type", **state})
        requested = query.get("scope", "").split()
        if not requested:
            return _error_page(400, "invalid_request", "Missing required parameter: scope")
        method = query.get("code_challenge_method", "plain")
        challenge = query.get("code_challenge")
        if challenge is not None and method not in {"S256", "plain"}:
            return _error_page(400, "invalid_request", "Invalid code_challenge_method value.")
        user = self._user(query.get("login_hint"))
        if user is None:
            return _error_page(400, "invalid_request", "No sandbox mailbox matches login_hint.")
        granted = self.sandbox.oauth.granted_scopes(user, requested)
        if granted is None:
            return _redirect(redirect_uri, {"error": "access_denied", **state})
        code = self.sandbox.oauth.issue_code(
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            user=user,
            scopes=granted,
            offline=query.get("access_type") == "offline",
            force_consent="consent" in query.get("prompt", "").split(),
            code_challenge=challenge,
            code_challenge_method=method,
            now=self.sandbox.now(),
        )
        return _redirect(
            redirect_uri,
            {
                **state,
                "code": code.code,
                "scope": " ".join(sorted(granted)),
                "authuser": "0",
                "prompt": "consent",
            },
        )

    def _user(self, login_hint: str | None) -> str | None:
        mailboxes = self.sandbox.store.mailboxes
        if login_hint:
            mailbox = self.sandbox.store.find(login_hint)
            return mailbox.address if mailbox else None
        return next(iter(mailboxes)) if len(mailboxes) == 1 else None

    async def token(self, request: web.Request) -> web.Response:
        """The token endpoint (form-encoded): ``authorization_code`` and ``refresh_token`` grants."""
        form = await request.post()
        fields = {k: str(v) for k, v in form.items()}
        client_id, client_secret = fields.get("client_id", ""), fields.get("client_secret")
        authorization = request.headers.get("Authorization", "")
        if authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:]).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ":"
            client_id, _, client_secret = decoded.partition(":")
        try:
            response = self._grant(fields, client_id, client_secret)
        except OAuthError as error:
            return web.json_response(error.body(), status=error.status)
        return web.json_response(response.body(), headers={"Cache-Control": "no-cache, no-store, max-age=0"})

    def _grant(self, fields: dict[str, str], client_id: str, client_secret: str | None) -> TokenResponse:
        grant_type = fields.get("grant_type", "")
        if grant_type not in {"authorization_code", "refresh_token"}:
            raise OAuthError("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        client = self.sandbox.oauth.authenticate_client(client_id, client_secret)
        now = self.sandbox.now()
        if grant_type == "authorization_code":
            if "code" not in fields:
                raise OAuthError("invalid_request", "Missing required parameter: code")
            return self.sandbox.oauth.exchange_code(
                client, fields["code"], fields.get("redirect_uri", ""), fields.get("code_verifier"), now
            )
        if "refresh_token" not in fields:
            raise OAuthError("invalid_request", "Missing required parameter: refresh_token")
        scope = fields.get("scope")
        return self.sandbox.oauth.refresh(
            client, fields["refresh_token"], scope.split() if scope else None, now
        )

    async def revoke(self, request: web.Request) -> web.Response:
        """``/revoke?token=...`` (or form field): revokes the grant; unknown tokens answer 400
        ``invalid_token``."""
        form = await request.post()
        token = request.query.get("token") or str(form.get("token", ""))
        if not self.sandbox.oauth.revoke_token(token):
            return web.json_response(
                {"error": "invalid_token", "error_description": "Token expired or revoked"}, status=400
            )
        return web.json_response({})

    async def pem_certs(self, _request: web.Request) -> web.Response:
        """``{kid: PEM certificate}`` like ``https://www.googleapis.com/oauth2/v1/certs``."""
        return web.json_response(
            self.sandbox.signer.pem_certs(), headers={"Cache-Control": "public, max-age=300"}
        )

    async def jwks(self, _request: web.Request) -> web.Response:
        """A JWK set like ``https://www.googleapis.com/oauth2/v3/certs``."""
        return web.json_response(self.sandbox.signer.jwks(), headers={"Cache-Control": "public, max-age=300"})
