"""Graph v1.0 sending: ``sendMail``, ``reply``/``replyAll``/``forward``, ``createReply``/``createReplyAll``/
``createForward`` and ``send``.

Quirks kept from the API reference (``api/user-sendmail.md``, ``api/message-reply.md``,
``api/message-createreply.md``, ``api/message-send.md``):

* ``sendMail``, ``reply``, ``replyAll``, ``forward`` and ``send`` answer 202 with no body, so the caller never
  learns the sent message's id; ``sendMail`` files the message in Sent Items unless ``saveToSentItems`` is
  false.
* ``createReply``/``createReplyAll``/``createForward`` answer 201 with a draft in the parent's conversation.
  ``reply`` takes ``comment`` or ``message.body``, not both (400).
* Graph builds replies itself: the parent's ``conversationId``, an extended ``conversationIndex``,
  ``In-Reply-To``/``References`` and a single ``RE:``. Clients can add only ``x-`` headers.
* ``sendMail`` also takes a base64 MIME message (``Content-Type: text/plain``), see ``mime``.
* Sending needs ``Mail.Send``; drafting (``createReply``...) needs ``Mail.ReadWrite``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mailsync.graph_sandbox.errors import GraphError, bad_request
from mailsync.graph_sandbox.mailbox import EmailAddress, Mailbox, Message
from mailsync.graph_sandbox.mime import parse_submission
from mailsync.graph_sandbox.representation import (
    message_json,
    parse_draft,
)
from mailsync.graph_sandbox.responses import (
    SEND_SCOPES,
    WRITE_SCOPES,
    action_parameters,
    empty_response,
    json_response,
    mailbox_of,
    message_or_404,
    odata_context,
    require_scope,
    sandbox_of,
)


def _send(request: web.Request, mailbox: Mailbox, message: Message, *, save: bool = True) -> None:
    if not (message.to or message.cc or message.bcc):
        raise GraphError(
            400,
            "ErrorInvalidRecipients",
            "At least one recipient isn't valid., A message can't be sent because it contains no recipients.",
        )
    outbound = mailbox.send(message, save_to_sent_items=save)
    sandbox_of(request).directory.transport(outbound)


async def send_mail(request: web.Request) -> web.Response:
    """``POST /sendMail`` ``{"message", "saveToSentItems"}`` (202, no body)."""
    require_scope(request, SEND_SCOPES)
    sandbox = sandbox_of(request)
    mailbox = mailbox_of(request)
    if request.content_type == "text/plain":
        submission = parse_submission(
            await request.read(), max_attachment_bytes=sandbox.config.inline_attachment_max_bytes
        )
        parent = mailbox.conversation_parent(submission.draft.subject, submission.draft.custom_headers)
        message = mailbox.create_draft(submission.draft, conversation=parent)
        if submission.message_id:
            message.internet_message_id = submission.message_id
        _send(request, mailbox, message)
        return empty_response(202)
    payload = await action_parameters(request)
    if not isinstance(payload.get("message"), dict):
        raise bad_request("Missing required parameter 'message'.", "ErrorInvalidParameter")
    unknown = set(payload) - {"message", "savetosentitems"}
    if unknown:
        raise bad_request(
            f"The parameter '{sorted(unknown)[0]}' in the request payload is not a valid parameter "
            "for the operation 'sendMail'.",
            "RequestBodyRead",
        )
    draft = parse_draft(payload["message"], max_attachment_bytes=sandbox.config.inline_attachment_max_bytes)
    if not (draft.to or draft.cc or draft.bcc):
        raise GraphError(
            400,
            "ErrorInvalidRecipients",
            "At least one recipient isn't valid., A message can't be sent because it contains no recipients.",
        )
    message = mailbox.create_draft(draft)
    _send(request, mailbox, message, save=payload.get("savetosentitems", True) is not False)
    return empty_response(202)


async def _reply_payload(request: web.Request) -> tuple[str, dict[str, Any] | None]:
    payload = await action_parameters(request)
    comment = payload.get("comment")
    message = payload.get("message")
    if comment is not None and isinstance(message, dict) and message.get("body"):
        raise bad_request(
            "Cannot specify both the 'comment' parameter and the 'body' property of the 'message' parameter.",
            "ErrorInvalidRequest",
        )
    return str(comment or ""), message if isinstance(message, dict) else None


def _build_response_draft(
    request: web.Request,
    *,
    action: str,
    parent: Message,
    comment: str,
    overrides: dict[str, Any] | None,
    to: list[EmailAddress] | None = None,
) -> Message:
    sandbox = sandbox_of(request)
    mailbox = mailbox_of(request)
    if action.endswith("orward"):
        draft = mailbox.create_forward(parent, to=to or [], comment=comment)
    else:
        draft = mailbox.create_reply(parent, reply_all=action.endswith("All"), comment=comment)
    if overrides:
        extra = parse_draft(overrides, max_attachment_bytes=sandbox.config.inline_attachment_max_bytes)

        def apply(m: Message) -> None:
            if extra.to:
                m.to = list(extra.to)
            if extra.cc:
                m.cc = list(extra.cc)
            if extra.bcc:
                m.bcc = list(extra.bcc)
            if "body" in overrides:
                m.body, m.body_content_type = extra.body, extra.body_content_type
            m.headers.extend(extra.custom_headers)

        mailbox.update(draft, apply)
        for name, ctype, content in extra.attachments:
            mailbox.add_attachment(draft, name, ctype, content)
    return draft


async def respond(request: web.Request) -> web.Response:
    """``POST /messages/{id}/reply | replyAll | forward`` (202): build the response and send it."""
    require_scope(request, SEND_SCOPES)
    mailbox = mailbox_of(request)
    parent = message_or_404(mailbox, request.match_info["message"])
    action = request.match_info["action"]
    comment, overrides = await _reply_payload(request)
    to = None
    if action == "forward":
        raw = await action_parameters(request)
        to = list(parse_draft({"toRecipients": raw.get("torecipients") or []}, max_attachment_bytes=0).to)
        if not to and not (overrides and overrides.get("toRecipients")):
            raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
    draft = _build_response_draft(
        request, action=action, parent=parent, comment=comment, overrides=overrides, to=to
    )
    _send(request, mailbox, draft)
    return empty_response(202)


async def create_response(request: web.Request) -> web.Response:
    """``POST /messages/{id}/createReply | createReplyAll | createForward`` (201 with the draft)."""
    require_scope(request, WRITE_SCOPES)
    mailbox = mailbox_of(request)
    parent = message_or_404(mailbox, request.match_info["message"])
    action = request.match_info["action"]
    comment, overrides = await _reply_payload(request)
    to = None
    if action == "createForward":
        raw = await action_parameters(request)
        to = list(parse_draft({"toRecipients": raw.get("torecipients") or []}, max_attachment_bytes=0).to)
    draft = _build_response_draft(
        request, action=action, parent=parent, comment=comment, overrides=overrides, to=to
    )
    return json_response(
        {"@odata.context": odata_context(request, mailbox, "messages/$entity"), **message_json(draft)},
        status=201,
    )


async def send_draft(request: web.Request) -> web.Response:
    """``POST /messages/{id}/send`` (202): send a draft and file it in Sent Items."""
    require_scope(request, SEND_SCOPES)
    mailbox = mailbox_of(request)
    message = message_or_404(mailbox, request.match_info["message"])
    if not message.is_draft:
        raise GraphError(400, "ErrorInvalidOperation", "Only draft messages can be sent.")
    _send(request, mailbox, message)
    return empty_response(202)


def add_routes(app: web.Application) -> None:
    """Mount the sending endpoints for both ``/v1.0/me`` and ``/v1.0/users/{user}``."""
    for prefix in ("/v1.0/me", "/v1.0/users/{user}"):
        app.router.add_post(f"{prefix}/sendMail", send_mail)
        app.router.add_post(f"{prefix}/messages/{{message}}/send", send_draft)
        app.router.add_post(f"{prefix}/messages/{{message}}/{{action:reply|replyAll|forward}}", respond)
        app.router.add_post(
            f"{prefix}/messages/{{message}}/{{action:createReply|createReplyAll|createForward}}",
            create_response,
        )
