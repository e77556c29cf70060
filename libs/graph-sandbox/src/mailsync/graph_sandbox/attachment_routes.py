"""Graph v1.0 message attachments and upload sessions (the upload URL lives on this origin too).

Inline ``fileAttachment`` POSTs are limited to 3 MB; larger files (up to 150 MB) go through
``createUploadSession`` and chunked PUTs to the pre-authenticated upload URL (see ``uploads`` for the rules,
from ``concepts/outlook-large-attachments.md``). Reading needs a read permission, adding ``Mail.ReadWrite``.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from mailsync.graph_sandbox.clock import to_graph_precise_timestamp
from mailsync.graph_sandbox.errors import GraphError, not_found
from mailsync.graph_sandbox.representation import (
    attachment_json,
    parse_file_attachment,
)
from mailsync.graph_sandbox.responses import (
    READ_SCOPES,
    WRITE_SCOPES,
    action_parameters,
    empty_response,
    graph_base,
    json_body,
    json_response,
    mailbox_of,
    message_or_404,
    odata_context,
    origin,
    require_scope,
    sandbox_of,
)


async def list_attachments(request: web.Request) -> web.Response:
    """``GET /messages/{id}/attachments``."""
    require_scope(request, READ_SCOPES)
    mailbox = mailbox_of(request)
    message = message_or_404(mailbox, request.match_info["message"])
    return json_response(
        {
            "@odata.context": odata_context(request, mailbox, f"messages('{quote(message.id)}')/attachments"),
            "value": [attachment_json(a) for a in message.attachments],
        }
    )


async def get_attachment(request: web.Request) -> web.Response:
    """``GET /messages/{id}/attachments/{aid}`` (and ``/$value`` for the raw bytes)."""
    require_scope(request, READ_SCOPES)
    mailbox = mailbox_of(request)
    message = message_or_404(mailbox, request.match_info["message"])
    attachment = next((a for a in message.attachments if a.id == request.match_info["attachment"]), None)
    if attachment is None:
        raise not_found()
    if request.match_info.get("raw"):
        return web.Response(body=attachment.content, content_type=attachment.content_type)
    return json_response(
        {
            "@odata.context": odata_context(
                request, mailbox, f"messages('{quote(message.id)}')/attachments/$entity"
            ),
            **attachment_json(attachment),
        }
    )


async def add_attachment(request: web.Request) -> web.Response:
    """``POST /messages/{id}/attachments`` with a fileAttachment of at most 3 MB (201)."""
    require_scope(request, WRITE_SCOPES)
    sandbox = sandbox_of(request)
    mailbox = mailbox_of(request)
    message = message_or_404(mailbox, request.match_info["message"])
    name, content_type, content = parse_file_attachment(
        await json_body(request), max_bytes=sandbox.config.inline_attachment_max_bytes
    )
    attachment = mailbox.add_attachment(message, name, content_type, content)
    return json_response(
        {
            "@odata.context": odata_context(
                request, mailbox, f"messages('{quote(message.id)}')/attachments/$entity"
            ),
            **attachment_json(attachment),
        },
        status=201,
    )


async def create_upload_session(request: web.Request) -> web.Response:
    """``POST /messages/{id}/attachments/createUploadSession`` (201 with the session)."""
    require_scope(request, WRITE_SCOPES)
    sandbox = sandbox_of(request)
    mailbox = mailbox_of(request)
    message = message_or_404(mailbox, request.match_info["message"])
    payload = await action_parameters(request)
    session = sandbox.uploads.create(
        mailbox_id=mailbox.user_id,
        message_id=message.id,
        item=payload.get("attachmentitem"),
    )
    return json_response(
        {
            "@odata.context": f"{graph_base(request)}/$metadata#microsoft.graph.uploadSession",
            "uploadUrl": f"{origin(request)}/api/v2.0/AttachmentSessions/{session.token}",
            "expirationDateTime": to_graph_precise_timestamp(session.expiration),
            "nextExpectedRanges": ["0-"],
        },
        status=201,
    )


async def upload_chunk(request: web.Request) -> web.Response:
    """``PUT {uploadUrl}``: one chunk, no Authorization header (the URL is pre-authenticated)."""
    sandbox = sandbox_of(request)
    if "Authorization" in request.headers:
        raise GraphError(
            401,
            "InvalidAuthenticationToken",
            "The upload URL is pre-authenticated; do not send an Authorization header.",
        )
    token = request.match_info["session"]
    result = sandbox.uploads.put(token, request.headers.get("Content-Range"), await request.read())
    session = result.session
    if not result.complete:
        return json_response(
            {
                "@odata.context": f"{origin(request)}/api/v2.0/$metadata#AttachmentSessions/$entity",
                "expirationDateTime": to_graph_precise_timestamp(session.expiration),
                "nextExpectedRanges": [session.next_expected],
            }
        )
    mailbox = sandbox.directory.find(session.mailbox_id)
    message = mailbox.messages.get(session.message_id) if mailbox else None
    if mailbox is None or message is None:
        raise not_found()
    attachment = mailbox.add_attachment(message, session.name, session.content_type, bytes(session.received))
    location = (
        f"{origin(request)}/api/v2.0/Users('{mailbox.user_id}@{sandbox.config.tenant_id}')/"
        f"Messages('{message.id}')/Attachments('{attachment.id}')"
    )
    return empty_response(201, {"Location": location})


async def cancel_upload(request: web.Request) -> web.Response:
    """``DELETE {uploadUrl}``: cancel the session (204)."""
    sandbox_of(request).uploads.cancel(request.match_info["session"])
    return empty_response(204)


def add_routes(app: web.Application) -> None:
    """Mount the attachment endpoints and the upload URL."""
    for prefix in ("/v1.0/me", "/v1.0/users/{user}"):
        app.router.add_get(f"{prefix}/messages/{{message}}/attachments", list_attachments)
        app.router.add_post(f"{prefix}/messages/{{message}}/attachments", add_attachment)
        app.router.add_post(
            f"{prefix}/messages/{{message}}/attachments/createUploadSession", create_upload_session
        )
        app.router.add_get(f"{prefix}/messages/{{message}}/attachments/{{attachment}}", get_attachment)
        app.router.add_get(
            f"{prefix}/messages/{{message}}/attachments/{{attachment}}/{{raw:\\$value}}", get_attachment
        )
    app.router.add_put("/api/v2.0/AttachmentSessions/{session}", upload_chunk)
    app.router.add_delete("/api/v2.0/AttachmentSessions/{session}", cancel_upload)
