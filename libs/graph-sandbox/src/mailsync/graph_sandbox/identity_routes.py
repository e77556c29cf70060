"""HTTP endpoints of the identity platform, at the paths of ``login.microsoftonline.com``.

* ``GET /{tenant}/v2.0/.well-known/openid-configuration``: OIDC discovery. MSAL reads
  ``authorization_endpoint``, ``token_endpoint`` and ``issuer``; every URL in it is absolute and on the origin
  the request came to, so it stays https when the sandbox serves TLS (MSAL re-checks the token endpoint).
  For ``common``/``organizations`` the issuer holds the literal ``{tenantid}`` placeholder, as Entra's does.
* ``GET /{tenant}/discovery/v2.0/keys``: the JWKS.
* ``GET /common/discovery/instance``: instance metadata. MSAL only asks ``login.microsoftonline.com`` for it,
  so with a loopback authority clients pass ``instance_discovery=False`` (MSAL's documented switch); the
  endpoint exists for clients that route that host here.
* ``GET /{tenant}/oauth2/v2.0/authorize``: the consent screen, auto-approved. The user is the ``login_hint``,
  else the admin-chosen default, else the only user. Errors about the client or redirect URI are shown as a
  page (never redirected, as Entra does); other errors redirect with ``error``/``error_description``.
  ``response_mode=form_post`` answers an auto-submitting HTML form instead of a 302.
* ``POST /{tenant}/oauth2/v2.0/token``: ``authorization_code`` and ``refresh_token`` grants.
"""

from __future__ import annotations

import html
import json
import secrets
from urllib.parse import urlencode

from aiohttp import web

from mailsync.graph_sandbox.identity import AppRegistration, IdentityError
from mailsync.graph_sandbox.jose import b64url
from mailsync.graph_sandbox.responses import origin, sandbox_of
from mailsync.graph_sandbox.sandbox import Sandbox

_MULTI_TENANT = frozenset({"common", "organizations"})


def _check_tenant(sandbox: Sandbox, tenant: str) -> None:
    known = {sandbox.config.tenant_id, sandbox.config.tenant_domain.casefold(), *_MULTI_TENANT}
    if tenant.casefold() not in known and tenant not in known:
        raise IdentityError(400, "invalid_tenant", 90002, tenant=tenant)


async def openid_configuration(request: web.Request) -> web.Response:
    """The OpenID Connect discovery document of a tenant."""
    sandbox = sandbox_of(request)
    tenant = request.match_info["tenant"]
    _check_tenant(sandbox, tenant)
    base = f"{origin(request)}/{tenant}"
    issuer_tenant = "{tenantid}" if tenant.casefold() in _MULTI_TENANT else sandbox.config.tenant_id
    return web.json_response(
        {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{origin(request)}/{issuer_tenant}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{origin(request)}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }
    )


async def keys(request: web.Request) -> web.Response:
    """The signing keys (JWKS)."""
    sandbox = sandbox_of(request)
    _check_tenant(sandbox, request.match_info["tenant"])
    return web.json_response({"keys": [sandbox.identity.signing_key.jwk()]})


async def instance_discovery(request: web.Request) -> web.Response:
    """Instance metadata in the shape MSAL expects (``tenant_discovery_endpoint`` plus aliases)."""
    sandbox = sandbox_of(request)
    host = request.host
    return web.json_response(
        {
            "tenant_discovery_endpoint": f"{origin(request)}/{sandbox.config.tenant_id}/v2.0/.well-known/"
            "openid-configuration",
            "api-version": request.query.get("api-version", "1.1"),
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        }
    )


def _error_page(error: IdentityError) -> web.Response:
    text = f"<html><body><h1>Sign in</h1><p>{html.escape(error.description)}</p></body></html>"
    return web.Response(status=error.status, text=text, content_type="text/html")


def _deliver(redirect_uri: str, params: dict[str, str], response_mode: str) -> web.Response:
    if response_mode == "form_post":
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}"/>'
            for k, v in params.items()
        )
        page = (
            f'<html><body onload="document.forms[0].submit()"><form method="POST" '
            f'action="{html.escape(redirect_uri)}">{inputs}</form></body></html>'
        )
        return web.Response(text=page, content_type="text/html")
    separator = "&" if "?" in redirect_uri else "?"
    raise web.HTTPFound(f"{redirect_uri}{separator}{urlencode(params)}")


def _client_and_redirect(sandbox: Sandbox, request: web.Request) -> tuple[AppRegistration, str]:
    _check_tenant(sandbox, request.match_info["tenant"])
    app = sandbox.identity.app(request.query.get("client_id", ""))
    redirect_uri = request.query.get("redirect_uri", "")
    if not app.allows_redirect(redirect_uri):
        raise IdentityError(400, "invalid_request", 50011, redirect_uri=redirect_uri, client_id=app.client_id)
    return app, redirect_uri


def _consent(
    sandbox: Sandbox, request: web.Request, app: AppRegistration, redirect_uri: str
) -> dict[str, str]:
    query = request.query
    if query.get("response_type") != "code":
        raise IdentityError(400, "invalid_request", 9002313)
    code, principal = sandbox.identity.authorize(
        client_id=app.client_id,
        redirect_uri=redirect_uri,
        scope=query.get("scope", ""),
        login_hint=query.get("login_hint"),
        nonce=query.get("nonce"),
        code_challenge=query.get("code_challenge"),
        code_challenge_method=query.get("code_challenge_method"),
    )
    params = {"code": code}
    if query.get("client_info") == "1":
        client_info = {"uid": principal.user_id, "utid": sandbox.config.tenant_id}
        params["client_info"] = b64url(json.dumps(client_info).encode())
    return params


async def authorize(request: web.Request) -> web.Response:
    """The authorize endpoint (auto-consent)."""
    sandbox = sandbox_of(request)
    try:
        app, redirect_uri = _client_and_redirect(sandbox, request)
    except IdentityError as error:
        return _error_page(error)
    response_mode = request.query.get("response_mode", "query")
    state = request.query.get("state")
    try:
        params = _consent(sandbox, request, app, redirect_uri)
    except IdentityError as error:
        params = {"error": error.error, "error_description": error.description}
    if state is not None:
        params["state"] = state
    if "code" in params:
        params["session_state"] = secrets.token_hex(16)
    return _deliver(redirect_uri, params, response_mode)


async def token(request: web.Request) -> web.Response:
    """The token endpoint."""
    sandbox = sandbox_of(request)
    _check_tenant(sandbox, request.match_info["tenant"])
    form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    grant_type = form.get("grant_type", "")
    issuer_host = request.host
    if grant_type == "authorization_code":
        body = sandbox.identity.redeem_code(form, issuer_host=issuer_host)
    elif grant_type == "refresh_token":
        body = sandbox.identity.redeem_refresh_token(form, issuer_host=issuer_host)
    elif not grant_type:
        raise IdentityError(400, "invalid_request", 900144, parameter="grant_type")
    else:
        raise IdentityError(400, "unsupported_grant_type", 70003, grant_type=grant_type)
    return web.json_response(body, headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})


def add_routes(app: web.Application) -> None:
    """Mount the identity endpoints."""
    app.router.add_get("/common/discovery/instance", instance_discovery)
    app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration)
    app.router.add_get("/{tenant}/discovery/v2.0/keys", keys)
    app.router.add_get("/{tenant}/oauth2/v2.0/authorize", authorize)
    app.router.add_post("/{tenant}/oauth2/v2.0/token", token)
