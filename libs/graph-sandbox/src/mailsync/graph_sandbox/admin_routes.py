"""The ``/_admin/`` API: JSON over HTTP for tests and the demo. Not part of Graph; never expose it.

Everything here acts as someone other than the app under test: the tenant admin (mailboxes, app registrations,
revocations, faults), the outside world (inbound mail), the mailbox owner in Outlook (send, reply, forward,
read, delete), or Graph's own operations staff (lifecycle notifications, evicted delta tokens, the clock).
Every mailbox change made here produces the same change notifications and delta entries as a real one.
Errors use Graph's error body. ``{user}`` is a user id or address.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiohttp import web

from mailsync.graph_sandbox import identifiers
from mailsync.graph_sandbox.clock import ManualClock, to_graph_timestamp
from mailsync.graph_sandbox.errors import GraphError, bad_request, not_found
from mailsync.graph_sandbox.identity import AppRegistration, split_scopes
from mailsync.graph_sandbox.mailbox import (
    Draft,
    EmailAddress,
    Mailbox,
    Message,
    OutboundMessage,
    reply_subject,
    threading_headers,
)
from mailsync.graph_sandbox.notifications import DeliveryRecord
from mailsync.graph_sandbox.representation import MESSAGE_PROPERTIES, attachment_json, message_json
from mailsync.graph_sandbox.responses import empty_response, json_body, json_response, sandbox_of

CA_FILE_KEY = web.AppKey("ca_file", str)


def _mailbox(request: web.Request) -> Mailbox:
    mailbox = sandbox_of(request).directory.find(request.match_info["user"])
    if mailbox is None:
        raise GraphError(
            404, "ErrorInvalidUser", f"The requested user '{request.match_info['user']}' is invalid."
        )
    return mailbox


def _message(mailbox: Mailbox, message_id: str) -> Message:
    message = mailbox.messages.get(message_id)
    if message is None:
        raise not_found()
    return message


def _folder_name(mailbox: Mailbox, message: Message) -> str:
    folder = mailbox.folders[message.folder_id]
    return folder.well_known_name or folder.display_name


def admin_message_json(mailbox: Mailbox, message: Message) -> dict[str, Any]:
    """A message with every property, its headers, attachments (metadata) and its folder's well-known name."""
    body = message_json(message, select=[*MESSAGE_PROPERTIES, "internetMessageHeaders"])
    body["attachments"] = [attachment_json(a, include_content=False) for a in message.attachments]
    body["folder"] = _folder_name(mailbox, message)
    return body


def _addresses(raw: Any, field: str) -> tuple[EmailAddress, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise bad_request(f"'{field}' must be a list")
    result: list[EmailAddress] = []
    for item in raw:
        if isinstance(item, str):
            result.append(EmailAddress(item))
        elif isinstance(item, dict) and isinstance(item.get("address"), str):
            result.append(EmailAddress(item["address"], str(item.get("name", ""))))
        else:
            raise bad_request(f"'{field}' entries are addresses or {{address, name}} objects")
    return tuple(result)


def _attachments(raw: Any) -> tuple[tuple[str, str, bytes], ...]:
    result: list[tuple[str, str, bytes]] = []
    for item in raw or []:
        try:
            content = base64.b64decode(item["content_base64"], validate=True)
        except (KeyError, TypeError, binascii.Error) as exc:
            raise bad_request("attachments need 'name' and base64 'content_base64'") from exc
        result.append((str(item["name"]), str(item.get("content_type", "application/octet-stream")), content))
    return tuple(result)


async def _object(request: web.Request) -> dict[str, Any]:
    payload = await json_body(request)
    if not isinstance(payload, dict):
        raise bad_request("the body must be a JSON object")
    return payload


# --- tenant ------------------------------------------------------------------------------------------------


async def reset(request: web.Request) -> web.Response:
    """``POST /_admin/reset``: empty tenant, no subscriptions, faults, tokens or pending notifications."""
    sandbox_of(request).reset()
    return empty_response(204)


async def info(request: web.Request) -> web.Response:
    """``GET /_admin/info``: tenant, default app and (when serving TLS) the CA file clients must trust."""
    sandbox = sandbox_of(request)
    app = sandbox.config.default_app
    return json_response(
        {
            "tenant_id": sandbox.config.tenant_id,
            "tenant_domain": sandbox.config.tenant_domain,
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "ca_file": request.app.get(CA_FILE_KEY),
            "now": to_graph_timestamp(sandbox.now()),
        }
    )


async def create_mailbox(request: web.Request) -> web.Response:
    """``POST /_admin/mailboxes`` ``{address, display_name?, user_id?}`` (201)."""
    payload = await _object(request)
    address = payload.get("address")
    if not isinstance(address, str) or "@" not in address:
        raise bad_request("'address' is required")
    try:
        mailbox = sandbox_of(request).create_mailbox(
            address, str(payload.get("display_name", "")), payload.get("user_id")
        )
    except ValueError as exc:
        raise GraphError(409, "Conflict", str(exc)) from exc
    return json_response(_mailbox_json(mailbox), status=201)


def _mailbox_json(mailbox: Mailbox) -> dict[str, Any]:
    return {
        "id": mailbox.user_id,
        "address": mailbox.address,
        "display_name": mailbox.display_name,
        "folders": {f.well_known_name or f.display_name: f.id for f in mailbox.folders.values()},
    }


async def list_mailboxes(request: web.Request) -> web.Response:
    """``GET /_admin/mailboxes``."""
    return json_response({"value": [_mailbox_json(m) for m in sandbox_of(request).directory.all()]})


async def register_app(request: web.Request) -> web.Response:
    """``POST /_admin/apps`` ``{client_id, client_secret, redirect_uris?}`` (201)."""
    payload = await _object(request)
    if not isinstance(payload.get("client_id"), str) or not isinstance(payload.get("client_secret"), str):
        raise bad_request("'client_id' and 'client_secret' are required")
    sandbox_of(request).identity.register_app(
        AppRegistration(
            payload["client_id"], payload["client_secret"], tuple(payload.get("redirect_uris", ()))
        )
    )
    return empty_response(201)


async def mint_tokens(request: web.Request) -> web.Response:
    """``POST /_admin/tokens`` ``{user, scopes, client_id?}``: a token response without the browser flow."""
    sandbox = sandbox_of(request)
    payload = await _object(request)
    principal = sandbox.identity.principal(str(payload.get("user", "")))
    if principal is None:
        raise not_found()
    graph, reserved = split_scopes(" ".join(payload.get("scopes", ["Mail.ReadWrite", "Mail.Send"])))
    client_id = str(payload.get("client_id", sandbox.config.default_app.client_id))
    body = sandbox.identity.mint(
        user_id=principal.user_id,
        client_id=client_id,
        scopes=frozenset(graph | reserved),
        issuer_host=request.host,
    )
    return json_response(body)


async def set_default_login(request: web.Request) -> web.Response:
    """``POST /_admin/identity/default-login`` ``{user}``: who signs in when no ``login_hint`` is sent."""
    payload = await _object(request)
    sandbox_of(request).identity.default_login = payload.get("user")
    return empty_response(204)


async def limit_consent(request: web.Request) -> web.Response:
    """``POST /_admin/mailboxes/{user}/consent`` ``{scopes: [...] | null}``: the user grants only these."""
    mailbox = _mailbox(request)
    payload = await _object(request)
    scopes = payload.get("scopes")
    sandbox_of(request).identity.limit_consent(mailbox.user_id, None if scopes is None else frozenset(scopes))
    return empty_response(204)


async def revoke(request: web.Request) -> web.Response:
    """``POST /_admin/mailboxes/{user}/revoke`` (also ``/password-change``): refresh tokens die (AADSTS50173)
    and the user's subscriptions get ``reauthorizationRequired``."""
    mailbox = _mailbox(request)
    affected = sandbox_of(request).revoke_user(mailbox.user_id)
    return json_response({"reauthorization_required": [s.id for s in affected]})


# --- mail as the outside world and as the user --------------------------------------------------------------


async def deliver_inbound(request: web.Request) -> web.Response:
    """``POST /_admin/mailboxes/{user}/inbound``: mail from an outside sender arrives (201 with the message).

    Body: ``from`` (address or object), ``subject``, ``body``, ``content_type`` (text|html), ``to``/``cc``
    (default: the mailbox), ``headers`` (object), ``attachments`` ([{name, content_type, content_base64}]),
    ``in_reply_to`` (a message id in this mailbox: the mail is that message's reply, with In-Reply-To,
    References and an ``RE:`` subject, so Exchange files it in the same conversation),
    ``internet_message_id``.
    """
    sandbox = sandbox_of(request)
    mailbox = _mailbox(request)
    payload = await _object(request)
    sender = _addresses([payload.get("from")], "from")[0]
    headers = [(str(k), str(v)) for k, v in (payload.get("headers") or {}).items()]
    subject = str(payload.get("subject", ""))
    parent_id = payload.get("in_reply_to")
    if parent_id is not None:
        parent = _message(mailbox, str(parent_id))
        headers = [*threading_headers(parent), *headers]
        if "subject" not in payload:
            subject = reply_subject(parent.subject)
    to = _addresses(payload.get("to"), "to") or (mailbox.identity,)
    cc = _addresses(payload.get("cc"), "cc")
    internet_message_id = str(
        payload.get("internet_message_id")
        or identifiers.new_internet_message_id(sender.address.split("@", 1)[-1])
    )
    standard = [
        ("From", sender.address),
        ("To", ", ".join(r.address for r in to)),
        *([("Cc", ", ".join(r.address for r in cc))] if cc else []),
        ("Subject", subject),
        ("Message-ID", internet_message_id),
    ]
    outbound = OutboundMessage(
        sender=sender,
        to=to,
        cc=cc,
        bcc=_addresses(payload.get("bcc"), "bcc"),
        subject=subject,
        body=str(payload.get("body", "")),
        body_content_type=str(payload.get("content_type", "text")),
        internet_message_id=internet_message_id,
        headers=(*standard, *headers),
        attachments=_attachments(payload.get("attachments")),
        conversation_index=b"",
        sent=sandbox.now(),
    )
    message = mailbox.deliver(outbound)
    return json_response(admin_message_json(mailbox, message), status=201)


async def send_as_user(request: web.Request) -> web.Response:
    """``POST /_admin/mailboxes/{user}/send``: the user sends a new mail from Outlook (201 with the sent
    copy).

    Body: ``to``, ``cc``, ``bcc``, ``subject``, ``body``, ``content_type``, ``attachments``.
    """
    sandbox = sandbox_of(request)
    mailbox = _mailbox(request)
    payload = await _object(request)
    draft = Draft(
        subject=str(payload.get("subject", "")),
        body=str(payload.get("body", "")),
        body_content_type=str(payload.get("content_type", "text")),
        to=_addresses(payload.get("to"), "to"),
        cc=_addresses(payload.get("cc"), "cc"),
        bcc=_addresses(payload.get("bcc"), "bcc"),
        attachments=_attachments(payload.get("attachments")),
    )
    if not (draft.to or draft.cc or draft.bcc):
        raise bad_request("a message needs at least one recipient")
    message = mailbox.create_draft(draft)
    sandbox.directory.transport(mailbox.send(message))
    return json_response(admin_message_json(mailbox, message), status=201)


async def respond_as_user(request: web.Request) -> web.Response:
    """``POST /_admin/mailboxes/{user}/messages/{id}/{reply|reply-all|forward}``: the user answers in Outlook.

    Body: ``comment``, and for forward ``to``; ``cc``/``bcc`` add recipients. 201 with the sent copy.
    """
    sandbox = sandbox_of(request)
    mailbox = _mailbox(request)
    parent = _message(mailbox, request.match_info["message"])
    payload = await _object(request)
    action = request.match_info["action"]
    comment = str(payload.get("comment", ""))
    if action == "forward":
        to = _addresses(payload.get("to"), "to")
        if not to:
            raise bad_request("forward needs 'to'")
        draft = mailbox.create_forward(parent, to=to, comment=comment)
    else:
        draft = mailbox.create_reply(parent, reply_all=action == "reply-all", comment=comment)
    cc, bcc = _addresses(payload.get("cc"), "cc"), _addresses(payload.get("bcc"), "bcc")
    if cc or bcc:

        def add_recipients(m: Message) -> None:
            m.cc.extend(cc)
            m.bcc.extend(bcc)

        mailbox.update(draft, add_recipients)
    sandbox.directory.transport(mailbox.send(draft))
    return json_response(admin_message_json(mailbox, draft), status=201)


async def update_as_user(request: web.Request) -> web.Response:
    """``PATCH /_admin/mailboxes/{user}/messages/{id}`` ``{is_read?, move_to?}``: the user reads/files."""
    mailbox = _mailbox(request)
    message = _message(mailbox, request.match_info["message"])
    payload = await _object(request)
    if "is_read" in payload:
        mailbox.update(message, lambda m: setattr(m, "is_read", bool(payload["is_read"])))
    if "move_to" in payload:
        folder = mailbox.folder(str(payload["move_to"]))
        if folder is None:
            raise not_found()
        mailbox.move(message, folder)
    return json_response(admin_message_json(mailbox, message))


async def delete_as_user(request: web.Request) -> web.Response:
    """``DELETE /_admin/mailboxes/{user}/messages/{id}[?hard=true]``: to Deleted Items, or gone for good."""
    mailbox = _mailbox(request)
    message = _message(mailbox, request.match_info["message"])
    if request.query.get("hard") == "true":
        mailbox.delete(message)
    else:
        mailbox.move(message, mailbox.well_known("deleteditems"))
    return empty_response(204)


# --- reading
# --------------------------------------------------------------------------------------------------


async def folder_messages(request: web.Request) -> web.Response:
    """``GET /_admin/mailboxes/{user}/folders/{folder}/messages`` (newest first; e.g. ``sentitems``)."""
    mailbox = _mailbox(request)
    folder = mailbox.folder(request.match_info["folder"])
    if folder is None:
        raise not_found()
    return json_response({"value": [admin_message_json(mailbox, m) for m in mailbox.in_folder(folder.id)]})


async def get_message(request: web.Request) -> web.Response:
    """``GET /_admin/mailboxes/{user}/messages/{id}``."""
    mailbox = _mailbox(request)
    return json_response(admin_message_json(mailbox, _message(mailbox, request.match_info["message"])))


async def conversation(request: web.Request) -> web.Response:
    """``GET /_admin/mailboxes/{user}/conversations/{conversation}`` (oldest first, every folder)."""
    mailbox = _mailbox(request)
    messages = mailbox.conversation(request.match_info["conversation"])
    return json_response({"value": [admin_message_json(mailbox, m) for m in messages]})


async def external_mail(request: web.Request) -> web.Response:
    """``GET /_admin/external``: mail that left the tenant, oldest first."""
    deliveries = sandbox_of(request).directory.external
    return json_response(
        {
            "value": [
                {
                    "recipients": list(d.recipients),
                    "from": d.message.sender.address,
                    "to": [r.address for r in d.message.to],
                    "cc": [r.address for r in d.message.cc],
                    "bcc": [r.address for r in d.message.bcc],
                    "subject": d.message.subject,
                    "body": d.message.body,
                    "internet_message_id": d.message.internet_message_id,
                    "headers": [{"name": k, "value": v} for k, v in d.message.headers],
                }
                for d in deliveries
            ]
        }
    )


# --- subscriptions, notifications, delta
# ---------------------------------------------------------------------


async def list_subscriptions(request: web.Request) -> web.Response:
    """``GET /_admin/subscriptions``: every active subscription, of every app."""
    return json_response({"value": [s.to_json() for s in sandbox_of(request).subscriptions.active()]})


async def lifecycle(request: web.Request) -> web.Response:
    """``POST /_admin/subscriptions/{id}/lifecycle`` ``{event}``: send a lifecycle notification.

    ``subscriptionRemoved`` also removes the subscription, as Graph does.
    """
    sandbox = sandbox_of(request)
    payload = await _object(request)
    event = payload.get("event")
    if event not in {"reauthorizationRequired", "subscriptionRemoved", "missed"}:
        raise bad_request("'event' is reauthorizationRequired, subscriptionRemoved or missed")
    if event == "subscriptionRemoved":
        sandbox.remove_subscription(request.match_info["subscription"])
    else:
        subscription = sandbox.subscriptions.get(request.match_info["subscription"])
        if not sandbox.send_lifecycle(subscription, str(event)):
            raise bad_request("the subscription has no lifecycleNotificationUrl")
    return empty_response(202)


def _record_json(record: DeliveryRecord) -> dict[str, Any]:
    return {
        "delivery_id": record.delivery_id,
        "url": record.url,
        "kind": record.kind,
        "subscription_id": record.subscription_id,
        "attempt": record.attempt,
        "status": record.status,
        "duration_s": record.duration_s,
        "outcome": record.outcome,
        "at": to_graph_timestamp(record.at),
    }


async def notifications(request: web.Request) -> web.Response:
    """``GET /_admin/notifications``: delivery attempts and what is still pending."""
    dispatcher = sandbox_of(request).dispatcher
    return json_response(
        {
            "attempts": [_record_json(r) for r in dispatcher.records],
            "pending": [
                {
                    "delivery_id": p.id,
                    "url": p.url,
                    "kind": p.kind,
                    "attempts": p.attempts,
                    "next_due": to_graph_timestamp(p.next_due),
                    "payload": p.payload,
                }
                for p in dispatcher.pending
            ],
        }
    )


async def flush_notifications(request: web.Request) -> web.Response:
    """``POST /_admin/notifications/flush``: attempt every due delivery now; returns how many."""
    attempted = await sandbox_of(request).dispatcher.deliver_due()
    return json_response({"attempted": attempted})


async def expire_delta(request: web.Request) -> web.Response:
    """``POST /_admin/delta/expire`` ``{token}`` or ``{user}``: evict sync states (next use: 410)."""
    sandbox = sandbox_of(request)
    payload = await _object(request)
    if isinstance(payload.get("token"), str):
        return json_response({"expired": int(sandbox.sync_states.expire(payload["token"]))})
    mailbox = sandbox.directory.find(str(payload.get("user", "")))
    if mailbox is None:
        raise bad_request("give 'token' or a known 'user'")
    return json_response({"expired": sandbox.sync_states.expire_mailbox(mailbox.user_id)})


async def require_resync(request: web.Request) -> web.Response:
    """``POST /_admin/delta/resync`` ``{user}``: maintenance; the user's tokens get 410 resyncRequired."""
    sandbox = sandbox_of(request)
    payload = await _object(request)
    mailbox = sandbox.directory.find(str(payload.get("user", "")))
    if mailbox is None:
        raise bad_request("'user' is required")
    sandbox.sync_states.require_resync(mailbox.user_id)
    return empty_response(204)


# --- faults and time
# -------------------------------------------------------------------------------------------


async def add_fault(request: web.Request) -> web.Response:
    """``POST /_admin/faults``: add a rule (see the ``faults`` module); 201 with the rule."""
    try:
        rule = sandbox_of(request).faults.add(await _object(request))
    except (ValueError, TypeError) as exc:
        raise bad_request(str(exc)) from exc
    return json_response(rule.to_json(), status=201)


async def list_faults(request: web.Request) -> web.Response:
    """``GET /_admin/faults``."""
    return json_response({"value": [r.to_json() for r in sandbox_of(request).faults.rules]})


async def clear_faults(request: web.Request) -> web.Response:
    """``DELETE /_admin/faults``."""
    sandbox_of(request).faults.clear()
    return empty_response(204)


async def advance_clock(request: web.Request) -> web.Response:
    """``POST /_admin/clock/advance`` ``{seconds}``: only when the sandbox runs on a manual clock."""
    clock = sandbox_of(request).clock
    if not isinstance(clock, ManualClock):
        raise GraphError(409, "Conflict", "the sandbox runs on the system clock")
    payload = await _object(request)
    try:
        now = clock.advance(float(payload.get("seconds", 0)))
    except (TypeError, ValueError) as exc:
        raise bad_request(str(exc)) from exc
    return json_response({"now": to_graph_timestamp(now)})


def add_routes(app: web.Application) -> None:
    """Mount the admin API under ``/_admin/``."""
    r = app.router
    r.add_post("/_admin/reset", reset)
    r.add_get("/_admin/info", info)
    r.add_post("/_admin/mailboxes", create_mailbox)
    r.add_get("/_admin/mailboxes", list_mailboxes)
    r.add_post("/_admin/apps", register_app)
    r.add_post("/_admin/tokens", mint_tokens)
    r.add_post("/_admin/identity/default-login", set_default_login)
    r.add_post("/_admin/mailboxes/{user}/consent", limit_consent)
    r.add_post("/_admin/mailboxes/{user}/revoke", revoke)
    r.add_post("/_admin/mailboxes/{user}/password-change", revoke)
    r.add_post("/_admin/mailboxes/{user}/inbound", deliver_inbound)
    r.add_post("/_admin/mailboxes/{user}/send", send_as_user)
    r.add_post(
        "/_admin/mailboxes/{user}/messages/{message}/{action:reply|reply-all|forward}", respond_as_user
    )
    r.add_patch("/_admin/mailboxes/{user}/messages/{message}", update_as_user)
    r.add_delete("/_admin/mailboxes/{user}/messages/{message}", delete_as_user)
    r.add_get("/_admin/mailboxes/{user}/messages/{message}", get_message)
    r.add_get("/_admin/mailboxes/{user}/folders/{folder}/messages", folder_messages)
    r.add_get("/_admin/mailboxes/{user}/conversations/{conversation}", conversation)
    r.add_get("/_admin/external", external_mail)
    r.add_get("/_admin/subscriptions", list_subscriptions)
    r.add_post("/_admin/subscriptions/{subscription}/lifecycle", lifecycle)
    r.add_get("/_admin/notifications", notifications)
    r.add_post("/_admin/notifications/flush", flush_notifications)
    r.add_post("/_admin/delta/expire", expire_delta)
    r.add_post("/_admin/delta/resync", require_resync)
    r.add_post("/_admin/faults", add_fault)
    r.add_get("/_admin/faults", list_faults)
    r.add_delete("/_admin/faults", clear_faults)
    r.add_post("/_admin/clock/advance", advance_clock)
