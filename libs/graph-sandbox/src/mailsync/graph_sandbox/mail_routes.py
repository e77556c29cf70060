"""Graph v1.0 mail reading endpoints under ``/v1.0/me`` and ``/v1.0/users/{id | userPrincipalName}``.

Quirks kept from the API reference:

* Lists default to 10 items, newest received first, and page with ``$skip`` in ``@odata.nextLink``;
  ``$top`` is capped at 1000.
* ``DELETE`` moves a message to Deleted Items (a delete there, or ``permanentDelete``, removes it for good).
* Content properties of a sent message can't be patched (``ErrorInvalidPropertyUpdateSentMessage``).
* Permissions: reading needs ``Mail.ReadBasic``/``Mail.Read``/``Mail.ReadWrite`` (the body needs ``Mail.Read``
  or more), drafts ``Mail.ReadWrite`` (403 ``ErrorAccessDenied`` otherwise).
* Moving a message keeps its id in the sandbox (Exchange may assign a new one; clients must not rely on
  either).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from mailsync.graph_sandbox.delta import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, SyncOptions, delta_page
from mailsync.graph_sandbox.errors import GraphError, bad_request
from mailsync.graph_sandbox.mailbox import Message
from mailsync.graph_sandbox.odata_query import matches_all, only_received_after, parse_filter
from mailsync.graph_sandbox.representation import (
    folder_json,
    message_json,
    parse_draft,
)
from mailsync.graph_sandbox.responses import (
    READ_SCOPES,
    WRITE_SCOPES,
    action_parameters,
    body_preference,
    empty_response,
    folder_or_404,
    graph_base,
    int_param,
    json_body,
    json_response,
    mailbox_of,
    message_or_404,
    odata_context,
    origin,
    require_scope,
    sandbox_of,
    selected_properties,
)

MAX_TOP = 1000
_PREFER_PAGE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)", re.IGNORECASE)


# --- users and folders ------------------------------------------------------------------------------------


async def get_user(request: web.Request) -> web.Response:
    """``GET /me``: the signed-in user's profile."""
    mailbox = mailbox_of(request)
    return json_response(
        {
            "@odata.context": f"{graph_base(request)}/$metadata#users/$entity",
            "id": mailbox.user_id,
            "displayName": mailbox.display_name,
            "mail": mailbox.address,
            "userPrincipalName": mailbox.address,
        }
    )


async def list_folders(request: web.Request) -> web.Response:
    """``GET /mailFolders``."""
    require_scope(request, READ_SCOPES)
    mailbox = mailbox_of(request)
    return json_response(
        {
            "@odata.context": odata_context(request, mailbox, "mailFolders"),
            "value": [folder_json(mailbox, f) for f in mailbox.folders.values()],
        }
    )


async def get_folder(request: web.Request) -> web.Response:
    """``GET /mailFolders/{id | well-known name}``."""
    require_scope(request, READ_SCOPES)
    mailbox = mailbox_of(request)
    folder = folder_or_404(mailbox, request.match_info["folder"])
    return json_response(
        {
            "@odata.context": odata_context(request, mailbox, "mailFolders/$entity"),
            **folder_json(mailbox, folder),
        }
    )


# --- messages -------------------------------------------------------------------------------------------


async def list_messages(request: web.Request) -> web.Response:
    """``GET /messages`` and ``GET /mailFolders/{id}/messages`` with ``$select $filter $top $skip``."""
    require_scope(request, READ_SCOPES)
    mailbox = mailbox_of(request)
    folder_ref = request.match_info.get("folder")
    candidates = (
        mailbox.in_folder(folder_or_404(mailbox, folder_ref).id) if folder_ref else mailbox.all_messages()
    )
    select = selected_properties(request)
    clauses = parse_filter(request.query.get("$filter"))
    orderby = request.query.get("$orderby", "receivedDateTime desc").strip()
    if orderby not in {
        "receivedDateTime desc",
        "receivedDateTime DESC",
        "receivedDateTime asc",
        "receivedDateTime",
    }:
        raise bad_request(f"The $orderby '{orderby}' is not supported by the sandbox.")
    if orderby in {"receivedDateTime asc", "receivedDateTime"}:
        candidates = list(reversed(candidates))
    top = min(int_param(request, "$top", DEFAULT_PAGE_SIZE), MAX_TOP)
    skip = int_param(request, "$skip", 0)
    matching = [m for m in candidates if matches_all(clauses, m)]
    page = matching[skip : skip + top]
    expand = request.query.get("$expand", "") == "attachments"
    body_type, preference = body_preference(request)
    body: dict[str, Any] = {
        "@odata.context": odata_context(request, mailbox, "messages"),
        "value": [
            message_json(m, select=select, expand_attachments=expand, body_type=body_type) for m in page
        ],
    }
    if skip + top < len(matching):
        query = {k: v for k, v in request.query.items() if k != "$skip"}
        query["$top"] = str(top)
        query["$skip"] = str(skip + top)
        body["@odata.nextLink"] = f"{origin(request)}{request.path}?{urlencode(query, quote_via=quote)}"
    return json_response(body, headers=preference)


async def get_message(request: web.Request) -> web.Response:
    """``GET /messages/{id}``."""
    require_scope(request, READ_SCOPES)
    mailbox = mailbox_of(request)
    message = message_or_404(mailbox, request.match_info["message"])
    expand = request.query.get("$expand", "") == "attachments"
    body_type, preference = body_preference(request)
    return json_response(
        {
            "@odata.context": odata_context(request, mailbox, "messages/$entity"),
            **message_json(
                message, select=selected_properties(request), expand_attachments=expand, body_type=body_type
            ),
        },
        headers=preference,
    )


async def create_message(request: web.Request) -> web.Response:
    """``POST /messages``: save a draft (201)."""
    require_scope(request, WRITE_SCOPES)
    sandbox = sandbox_of(request)
    mailbox = mailbox_of(request)
    draft = parse_draft(
        await json_body(request), max_attachment_bytes=sandbox.config.inline_attachment_max_bytes
    )
    message = mailbox.create_draft(draft)
    return json_response(
        {"@odata.context": odata_context(request, mailbox, "messages/$entity"), **message_json(message)},
        status=201,
    )


def _apply_patch(message: Message, payload: dict[str, Any], max_attachment_bytes: int) -> None:
    content_fields = {
        "subject",
        "body",
        "toRecipients",
        "ccRecipients",
        "bccRecipients",
        "replyTo",
        "importance",
    }
    if content_fields & payload.keys() and not message.is_draft:
        raise GraphError(
            400,
            "ErrorInvalidPropertyUpdateSentMessage",
            "Update operation is invalid for property of a sent message.",
        )
    draft = parse_draft(
        {k: v for k, v in payload.items() if k not in {"isRead", "categories", "flag"}},
        max_attachment_bytes=max_attachment_bytes,
    )
    if "isRead" in payload:
        message.is_read = bool(payload["isRead"])
    if "categories" in payload:
        message.categories = [str(c) for c in payload["categories"] or []]
    if "subject" in payload:
        message.subject = draft.subject
    if "body" in payload:
        message.body, message.body_content_type = draft.body, draft.body_content_type
    if "toRecipients" in payload:
        message.to = list(draft.to)
    if "ccRecipients" in payload:
        message.cc = list(draft.cc)
    if "bccRecipients" in payload:
        message.bcc = list(draft.bcc)
    if "replyTo" in payload:
        message.reply_to = list(draft.reply_to)
    if "importance" in payload:
        message.importance = draft.importance


async def update_message(request: web.Request) -> web.Response:
    """``PATCH /messages/{id}``: flags on any message, content on drafts only."""
    require_scope(request, WRITE_SCOPES)
    sandbox = sandbox_of(request)
    mailbox = mailbox_of(request)
    message = message_or_404(mailbox, request.match_info["message"])
    payload = await json_body(request)
    if not isinstance(payload, dict):
        raise bad_request("The request body must be a message object.", "RequestBodyRead")
    limit = sandbox.config.inline_attachment_max_bytes
    mailbox.update(message, lambda m: _apply_patch(m, payload, limit))
    return json_response(
        {"@odata.context": odata_context(request, mailbox, "messages/$entity"), **message_json(message)}
    )


async def delete_message(request: web.Request) -> web.Response:
    """``DELETE /messages/{id}``: to Deleted Items, or gone when already there (204)."""
    require_scope(request, WRITE_SCOPES)
    mailbox = mailbox_of(request)
    message = message_or_404(mailbox, request.match_info["message"])
    deleted_items = mailbox.well_known("deleteditems")
    if message.folder_id == deleted_items.id:
        mailbox.delete(message)
    else:
        mailbox.move(message, deleted_items)
    return empty_response(204)


async def permanent_delete(request: web.Request) -> web.Response:
    """``POST /messages/{id}/permanentDelete`` (204)."""
    require_scope(request, WRITE_SCOPES)
    mailbox = mailbox_of(request)
    mailbox.delete(message_or_404(mailbox, request.match_info["message"]))
    return empty_response(204)


async def move_message(request: web.Request) -> web.Response:
    """``POST /messages/{id}/move`` ``{"destinationId"}`` (201 with the moved message)."""
    require_scope(request, WRITE_SCOPES)
    mailbox = mailbox_of(request)
    message = message_or_404(mailbox, request.match_info["message"])
    payload = await action_parameters(request)
    destination = payload.get("destinationid")
    if not isinstance(destination, str):
        raise bad_request("'destinationId' is required.", "ErrorInvalidRequest")
    mailbox.move(message, folder_or_404(mailbox, destination))
    return json_response(
        {"@odata.context": odata_context(request, mailbox, "messages/$entity"), **message_json(message)},
        status=201,
    )


# --- delta --------------------------------------------------------------------------------------------------


def _page_size(request: web.Request) -> tuple[int, dict[str, str]]:
    found = _PREFER_PAGE.search(request.headers.get("Prefer", ""))
    if found:
        size = max(1, min(int(found.group(1)), MAX_PAGE_SIZE))
        return size, {"Preference-Applied": f"odata.maxpagesize={size}"}
    return max(1, min(int_param(request, "$top", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)), {}


async def message_delta(request: web.Request) -> web.Response:
    """``GET /mailFolders/{id}/messages/delta``: see the ``delta`` module for the rules."""
    require_scope(request, READ_SCOPES)
    sandbox = sandbox_of(request)
    mailbox = mailbox_of(request)
    folder = folder_or_404(mailbox, request.match_info["folder"])
    page_size, size_preference = _page_size(request)
    body_type, body_type_preference = body_preference(request)
    applied = [p["Preference-Applied"] for p in (size_preference, body_type_preference) if p]
    headers = {"Preference-Applied": ", ".join(applied)} if applied else {}
    skip_token = request.query.get("$skiptoken")
    delta_token = request.query.get("$deltatoken")
    base = f"{origin(request)}{request.path}"
    try:
        if skip_token:
            page = delta_page(
                sandbox.sync_states,
                mailbox,
                folder.id,
                page_size=page_size,
                skip_token=skip_token,
                body_type=body_type,
            )
        elif delta_token:
            page = delta_page(
                sandbox.sync_states,
                mailbox,
                folder.id,
                page_size=page_size,
                delta_token=delta_token,
                body_type=body_type,
            )
        else:
            clauses = parse_filter(request.query.get("$filter"))
            if not only_received_after(clauses):
                raise bad_request("Delta queries support only $filter=receivedDateTime ge|gt {value}.")
            raw_types = request.query.get("changeType")
            change_types = frozenset({raw_types}) if raw_types else None
            if change_types is not None and not change_types <= {"created", "updated", "deleted"}:
                raise bad_request(f"Invalid changeType '{raw_types}'.")
            options = SyncOptions(
                tuple(selected_properties(request) or ()) or None, tuple(clauses), change_types
            )
            page = delta_page(
                sandbox.sync_states,
                mailbox,
                folder.id,
                page_size=page_size,
                options=options,
                body_type=body_type,
            )
    except GraphError as error:
        if error.code == "resyncRequired":
            error.headers["Location"] = f"{base}?$deltatoken="
        raise
    body: dict[str, Any] = {"@odata.context": f"{graph_base(request)}/$metadata#Collection(message)"}
    body["value"] = page.items
    if page.skip_token is not None:
        body["@odata.nextLink"] = f"{base}?{urlencode({'$skiptoken': page.skip_token})}"
    else:
        body["@odata.deltaLink"] = f"{base}?{urlencode({'$deltatoken': page.delta_token})}"
    return json_response(body, headers=headers)


def add_routes(app: web.Application) -> None:
    """Mount the reading endpoints for both ``/v1.0/me`` and ``/v1.0/users/{user}``."""
    for prefix in ("/v1.0/me", "/v1.0/users/{user}"):
        app.router.add_get(prefix, get_user)
        app.router.add_get(f"{prefix}/mailFolders", list_folders)
        app.router.add_get(f"{prefix}/mailFolders/{{folder}}", get_folder)
        app.router.add_get(f"{prefix}/mailFolders/{{folder}}/messages", list_messages)
        app.router.add_get(f"{prefix}/mailFolders/{{folder}}/messages/delta", message_delta)
        app.router.add_get(f"{prefix}/mailFolders/{{folder}}/messages/delta()", message_delta)
        app.router.add_get(f"{prefix}/messages", list_messages)
        app.router.add_post(f"{prefix}/messages", create_message)
        app.router.add_get(f"{prefix}/messages/{{message}}", get_message)
        app.router.add_patch(f"{prefix}/messages/{{message}}", update_message)
        app.router.add_delete(f"{prefix}/messages/{{message}}", delete_message)
        app.router.add_post(f"{prefix}/messages/{{message}}/permanentDelete", permanent_delete)
        app.router.add_post(f"{prefix}/messages/{{message}}/move", move_message)
