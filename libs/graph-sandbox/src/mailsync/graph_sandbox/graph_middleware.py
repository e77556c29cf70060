"""The request pipeline in front of the Graph API: authentication, mailbox resolution, throttling, faults.

Order, as the real service behaves: an unauthenticated request is rejected before it counts against any limit
(401 ``InvalidAuthenticationToken`` with a ``WWW-Authenticate`` challenge); a request for a mailbox the
delegated token may not open is 403 ``ErrorAccessDenied``; an unknown user is 404 ``ErrorInvalidUser``; then
the Outlook limits apply per app and mailbox; injected faults act inside the admitted request, so a slow fault
holds a concurrency slot like a slow backend would. Identity endpoints only see ``identity``-scoped faults.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from mailsync.graph_sandbox.errors import GraphError, access_denied
from mailsync.graph_sandbox.faults import FaultRule
from mailsync.graph_sandbox.identity import IdentityError
from mailsync.graph_sandbox.jose import TokenInvalidError
from mailsync.graph_sandbox.responses import GRANT_KEY, MAILBOX_KEY, error_response, request_id, sandbox_of
from mailsync.graph_sandbox.sandbox import Sandbox

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_MAILBOX_PATH = re.compile(r"^/v1\.0/(?:(?P<me>me)(?:/|$)|users/(?P<user>[^/]+))", re.IGNORECASE)
_IDENTITY_PATH = re.compile(r"^/[^/]+/(?:oauth2/|v2\.0/\.well-known/|discovery/)")
_CHALLENGE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
    'client_id="00000003-0000-0000-c000-000000000000"'
)


def _unauthenticated(message: str) -> GraphError:
    return GraphError(401, "InvalidAuthenticationToken", message, headers={"WWW-Authenticate": _CHALLENGE})


async def _apply_fault(rule: FaultRule | None) -> None:
    if rule is None:
        return
    if rule.kind in {"slow", "timeout"}:
        await asyncio.sleep(rule.delay_s)
    if rule.kind != "slow":
        raise rule.as_error()


async def _graph(request: web.Request, handler: Handler, sandbox: Sandbox) -> web.StreamResponse:
    header = request.headers.get("Authorization", "")
    if not header:
        raise _unauthenticated("Access token is empty.")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthenticated("Access token validation failure. Invalid audience.")
    try:
        grant = sandbox.identity.verify_access_token(token.strip())
    except TokenInvalidError as exc:
        raise _unauthenticated(str(exc)) from exc
    request[GRANT_KEY] = grant
    found = _MAILBOX_PATH.match(request.path)
    if found is None:
        await _apply_fault(sandbox.faults.pick("graph", request.method, request.path))
        return await handler(request)
    target = grant.user_id if found["me"] else found["user"]
    mailbox = sandbox.directory.find(target)
    if mailbox is None:
        raise GraphError(404, "ErrorInvalidUser", f"The requested user '{target}' is invalid.")
    if mailbox.user_id != grant.user_id:
        raise access_denied()
    request[MAILBOX_KEY] = mailbox
    sandbox.throttle.acquire(grant.client_id, mailbox.user_id)
    try:
        await _apply_fault(sandbox.faults.pick("graph", request.method, request.path))
        return await handler(request)
    finally:
        sandbox.throttle.release(grant.client_id, mailbox.user_id)


async def _identity(request: web.Request, handler: Handler, sandbox: Sandbox) -> web.StreamResponse:
    rule = sandbox.faults.pick("identity", request.method, request.path)
    if rule is not None:
        if rule.kind in {"slow", "timeout"}:
            await asyncio.sleep(rule.delay_s)
        if rule.kind != "slow":
            error = IdentityError(
                rule.status if rule.kind == "error" else 429, "temporarily_unavailable", 90033
            )
            headers = {"Retry-After": str(rule.retry_after_s)} if rule.retry_after_s is not None else {}
            return web.json_response(error.body(sandbox.now()), status=error.status, headers=headers)
    return await handler(request)


async def _unknown_segments_as_graph_errors(
    pending: Awaitable[web.StreamResponse], request: web.Request
) -> web.StreamResponse:
    try:
        return await pending
    except web.HTTPNotFound as exc:
        segment = request.path.rstrip("/").rsplit("/", 1)[-1]
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.") from exc
    except web.HTTPMethodNotAllowed as exc:
        raise GraphError(
            405, "Request_BadRequest", f"The {request.method} method is not supported for this resource."
        ) from exc


@web.middleware
async def sandbox_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Route a request through the Graph or identity pipeline and render Graph errors."""
    sandbox = sandbox_of(request)
    try:
        if request.path.startswith("/v1.0/"):
            response = await _unknown_segments_as_graph_errors(_graph(request, handler, sandbox), request)
        elif _IDENTITY_PATH.match(request.path):
            response = await _identity(request, handler, sandbox)
        else:
            response = await handler(request)
    except GraphError as error:
        return error_response(error, request, sandbox.now())
    except IdentityError as error:
        return web.json_response(error.body(sandbox.now()), status=error.status)
    if request.path.startswith("/v1.0/") and not response.prepared:
        rid = request_id()
        response.headers.setdefault("request-id", rid)
        response.headers.setdefault("client-request-id", request.headers.get("client-request-id", rid))
    return response
