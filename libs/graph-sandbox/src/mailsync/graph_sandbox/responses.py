"""HTTP plumbing shared by the route modules: the app key for the sandbox, URLs and Graph JSON responses.

Absolute URLs in responses (``@odata.context``, ``@odata.nextLink``, discovery documents, upload URLs) are
built
from the origin the request arrived on, so a client talking to ``https://127.0.0.1:PORT`` is sent back there.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any
from urllib.parse import quote

from aiohttp import web

from mailsync.graph_sandbox.errors import GraphError, access_denied, bad_request, error_body, not_found
from mailsync.graph_sandbox.identity import AccessGrant
from mailsync.graph_sandbox.mailbox import Folder, Mailbox, Message
from mailsync.graph_sandbox.representation import parse_select
from mailsync.graph_sandbox.sandbox import Sandbox

SANDBOX_KEY = web.AppKey("sandbox", Sandbox)
GRANT_KEY = web.RequestKey("grant", AccessGrant)
MAILBOX_KEY = web.RequestKey("mailbox", Mailbox)

READ_SCOPES = frozenset({"Mail.ReadBasic", "Mail.Read", "Mail.ReadWrite"})
BODY_READ_SCOPES = frozenset({"Mail.Read", "Mail.ReadWrite"})
WRITE_SCOPES = frozenset({"Mail.ReadWrite"})
SEND_SCOPES = frozenset({"Mail.Send"})


def error_response(error: GraphError, request: web.Request, now: dt.datetime) -> web.Response:
    """Render ``error`` for ``request`` with the request-id headers Graph always returns."""
    request_id = str(uuid.uuid4())
    client_request_id = request.headers.get("client-request-id", request_id)
    body = error_body(
        error.code, error.message, request_id=request_id, client_request_id=client_request_id, now=now
    )
    headers = {"request-id": request_id, "client-request-id": client_request_id, **error.headers}
    return web.Response(
        status=error.status,
        text=json.dumps(body),
        content_type="application/json",
        headers=headers,
    )


def sandbox_of(request: web.Request) -> Sandbox:
    """The sandbox serving ``request``."""
    return request.app[SANDBOX_KEY]


def origin(request: web.Request) -> str:
    """``scheme://host:port`` of the request."""
    return f"{request.scheme}://{request.host}"


def graph_base(request: web.Request) -> str:
    """The Graph v1.0 root on this origin."""
    return f"{origin(request)}/v1.0"


def grant_of(request: web.Request) -> AccessGrant:
    """The verified access token of a Graph request (set by the middleware)."""
    try:
        return request[GRANT_KEY]
    except KeyError as exc:
        raise RuntimeError("no access grant on a Graph request") from exc


def mailbox_of(request: web.Request) -> Mailbox:
    """The mailbox a ``/me`` or ``/users/{id}`` request targets (set by the middleware)."""
    try:
        return request[MAILBOX_KEY]
    except KeyError as exc:
        raise RuntimeError("no mailbox on this request") from exc


def require_scope(request: web.Request, accepted: frozenset[str]) -> None:
    """403 ``ErrorAccessDenied`` unless the token has one of ``accepted``."""
    if not grant_of(request).scopes & accepted:
        raise access_denied()


def json_response(
    body: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A Graph JSON response."""
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        charset="utf-8",
        headers={"OData-Version": "4.0", **(headers or {})},
    )


def empty_response(status: int, headers: dict[str, str] | None = None) -> web.Response:
    """A response without a body (202 for sendMail and friends, 204 for deletes)."""
    return web.Response(status=status, headers=headers)


async def json_body(request: web.Request) -> Any:
    """The parsed JSON body; a malformed one is Graph's 400 ``BadRequest``."""
    raw = await request.read()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from exc


async def action_parameters(request: web.Request) -> dict[str, Any]:
    """The body of an OData action (``sendMail``, ``reply``, ``move``...), keys lower-cased.

    Graph matches action parameter names case-insensitively: the SDKs send ``Message``/``SaveToSentItems`` and
    ``AttachmentItem`` where the docs write ``message``/``saveToSentItems``. Entity properties inside the
    parameters stay case-sensitive.
    """
    payload = await json_body(request)
    if not isinstance(payload, dict):
        raise GraphError(400, "RequestBodyRead", "The request body must be a JSON object.")
    return {str(key).lower(): value for key, value in payload.items()}


def request_id() -> str:
    """A new request id."""
    return str(uuid.uuid4())


def odata_context(request: web.Request, mailbox: Mailbox, tail: str) -> str:
    """``@odata.context`` for a resource under the mailbox's user."""
    return f"{graph_base(request)}/$metadata#users('{quote(mailbox.user_id)}')/{tail}"


def folder_or_404(mailbox: Mailbox, ref: str) -> Folder:
    """A folder by id or well-known name; ``ErrorItemNotFound`` otherwise."""
    folder = mailbox.folder(ref)
    if folder is None:
        raise not_found()
    return folder


def message_or_404(mailbox: Mailbox, message_id: str) -> Message:
    """A message by id; ``ErrorItemNotFound`` otherwise."""
    message = mailbox.messages.get(message_id)
    if message is None:
        raise not_found()
    return message


def int_param(request: web.Request, name: str, default: int) -> int:
    """A non-negative integer query option (``$top``, ``$skip``); 400 when malformed."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise bad_request(f"Invalid value '{raw}' for query option {name}.")
    return int(raw)


def selected_properties(request: web.Request) -> list[str] | None:
    """``$select`` of a message request; naming the body needs a permission that can read bodies."""
    select = parse_select(request.query.get("$select"))
    if select is not None and ("body" in select or "uniqueBody" in select):
        require_scope(request, BODY_READ_SCOPES)
    return select


_BODY_PREFERENCE = re.compile(r'outlook\.body-content-type\s*=\s*"?(text|html)"?', re.IGNORECASE)


def body_preference(request: web.Request) -> tuple[str | None, dict[str, str]]:
    """``Prefer: outlook.body-content-type="text|html"``: the type and the ``Preference-Applied`` header."""
    found = _BODY_PREFERENCE.search(request.headers.get("Prefer", ""))
    if found is None:
        return None, {}
    body_type = found.group(1).lower()
    return body_type, {"Preference-Applied": f'outlook.body-content-type="{body_type}"'}
