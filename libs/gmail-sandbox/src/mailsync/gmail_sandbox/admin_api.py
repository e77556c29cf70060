"""The admin API (JSON over HTTP under ``/_admin/``) that tests and the demo use to drive the sandbox.

It plays the parts Google's API cannot: creating accounts, mail arriving from outside, the user acting in the
Gmail UI (send, reply, forward, Cc/Bcc), revoking access or changing the password, inspecting a mailbox,
moving a manual clock, and injecting faults. No authentication; bind the sandbox to loopback. Errors answer
``{"error": "<text>"}`` with 400 or 404. The routes are listed in ``docs/sandboxes.md``.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from aiohttp import web

from mailsync.gmail_sandbox import mime
from mailsync.gmail_sandbox.clock import ManualClock
from mailsync.gmail_sandbox.config import DEFAULT_CLIENT, MailboxSpec
from mailsync.gmail_sandbox.errors import GoogleApiError
from mailsync.gmail_sandbox.faults import FaultKind
from mailsync.gmail_sandbox.mailbox import AccountKind, Mailbox, StoredMessage
from mailsync.gmail_sandbox.oauth import ConsentPolicy, OAuthClient
from mailsync.gmail_sandbox.push import PushSubscription
from mailsync.gmail_sandbox.sandbox import GmailSandbox

_REPLY_PREFIX = re.compile(r"^\s*re\s*:", re.IGNORECASE)


class AdminError(Exception):
    """A bad admin request; rendered as ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _str_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key) or []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AdminError(f"{key} must be a list of strings")
    return value


def _attachments(body: dict[str, Any]) -> list[mime.Attachment]:
    result = []
    for item in body.get("attachments") or []:
        try:
            data = base64.b64decode(item["data_base64"])
            result.append(
                mime.Attachment(item["filename"], item.get("mime_type", "application/octet-stream"), data)
            )
        except (KeyError, TypeError, binascii.Error) as exc:
            raise AdminError("attachments need filename and data_base64") from exc
    return result


def message_summary(message: StoredMessage) -> dict[str, Any]:
    """A compact JSON view of a stored message, with its main headers."""
    parsed = message.parsed
    headers = {
        name: mime.header_text(parsed, name)
        for name in ("From", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID", "In-Reply-To", "References")
        if parsed.get(name) is not None
    }
    return {
        "id": message.id,
        "threadId": message.thread_id,
        "labelIds": sorted(message.label_ids),
        "historyId": str(message.history_id),
        "internalDate": str(message.internal_date_ms),
        "headers": headers,
        "snippet": mime.snippet(parsed),
    }


def mailbox_summary(mailbox: Mailbox) -> dict[str, Any]:
    """A JSON view of a mailbox's settings and counters."""
    return {
        "address": mailbox.address,
        "kind": mailbox.kind.value,
        "display_name": mailbox.display_name,
        "history_id": str(mailbox.history_id),
        "history_retention_seconds": mailbox.history_retention_seconds,
        "daily_send_limit": mailbox.daily_send_limit,
        "messages": len(mailbox.messages),
        "threads": len(mailbox.threads),
        "watch": None
        if mailbox.watch is None
        else {
            "topic_name": mailbox.watch.topic_name,
            "label_ids": sorted(mailbox.watch.label_ids),
            "label_filter_behavior": mailbox.watch.behavior,
            "expiration": str(mailbox.watch.expiration_ms),
        },
    }


@web.middleware
async def admin_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Render :class:`AdminError` and Gmail errors raised by use cases for ``/_admin`` routes."""
    try:
        response: web.StreamResponse = await handler(request)
    except AdminError as error:
        return web.json_response({"error": str(error)}, status=error.status)
    except GoogleApiError as error:
        if not request.path.startswith("/_admin"):
            raise
        return web.json_response(error.body(), status=error.code, headers=error.headers)
    return response


class AdminApi:
    """Route handlers of the admin API."""

    def __init__(self, sandbox: GmailSandbox) -> None:
        self.sandbox = sandbox

    def routes(self) -> list[web.RouteDef]:
        """All admin routes."""
        mb = "/_admin/mailboxes/{address}"
        return [
            web.get("/_admin/health", self.health),
            web.post("/_admin/reset", self.reset),
            web.get("/_admin/mailboxes", self.list_mailboxes),
            web.post("/_admin/mailboxes", self.create_mailbox),
            web.get(mb, self.get_mailbox),
            web.patch(mb, self.update_mailbox),
            web.post(f"{mb}/inbound", self.deliver_inbound),
            web.post(f"{mb}/send", self.send_as_user),
            web.post(f"{mb}/reply", self.reply_as_user),
            web.post(f"{mb}/forward", self.forward_as_user),
            web.get(f"{mb}/messages", self.list_messages),
            web.get(f"{mb}/messages/{{id}}", self.get_message),
            web.get(f"{mb}/threads", self.list_threads),
            web.post(f"{mb}/tokens", self.issue_tokens),
            web.post(f"{mb}/consent", self.set_consent),
            web.post(f"{mb}/revoke", self.revoke),
            web.post(f"{mb}/password-change", self.change_password),
            web.post(f"{mb}/history/expire", self.expire_history),
            web.post("/_admin/oauth/clients", self.register_client),
            web.get("/_admin/faults", self.list_faults),
            web.post("/_admin/faults", self.add_fault),
            web.delete("/_admin/faults", self.clear_faults),
            web.get("/_admin/notifications", self.list_notifications),
            web.get("/_admin/outbound", self.list_outbound),
            web.post("/_admin/push-subscriptions", self.add_push_subscription),
            web.get("/_admin/push-subscriptions", self.list_push_subscriptions),
            web.post("/_admin/push-token", self.sign_push_token),
            web.post("/_admin/clock/advance", self.advance_clock),
        ]

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        body = await request.json()
        if not isinstance(body, dict):
            raise AdminError("body must be a JSON object")
        return body

    def _mailbox(self, request: web.Request) -> Mailbox:
        mailbox = self.sandbox.store.find(request.match_info["address"])
        if mailbox is None:
            raise AdminError("no such mailbox", 404)
        return mailbox

    def _stored(self, mailbox: Mailbox, message_id: str) -> StoredMessage:
        message = mailbox.messages.get(message_id)
        if message is None:
            raise AdminError("no such message", 404)
        return message

    async def health(self, _request: web.Request) -> web.Response:
        """``GET /_admin/health`` -> ``{"status": "ok"}``."""
        return web.json_response({"status": "ok"})

    async def reset(self, _request: web.Request) -> web.Response:
        """``POST /_admin/reset``: back to the configured start state."""
        self.sandbox.reset()
        return web.json_response({"status": "reset"})

    async def list_mailboxes(self, _request: web.Request) -> web.Response:
        """``GET /_admin/mailboxes``."""
        return web.json_response(
            {"mailboxes": [mailbox_summary(m) for m in self.sandbox.store.mailboxes.values()]}
        )

    async def create_mailbox(self, request: web.Request) -> web.Response:
        """``POST /_admin/mailboxes`` ``{address, kind?, display_name?, history_retention_seconds?,
        daily_send_limit?}`` -> the mailbox (201)."""
        body = await self._body(request)
        address = body.get("address")
        if not isinstance(address, str) or "@" not in address:
            raise AdminError("address must be an email address")
        try:
            kind = AccountKind(str(body.get("kind", "consumer")).lower())
        except ValueError as exc:
            raise AdminError("kind must be consumer or workspace") from exc
        retention = body.get("history_retention_seconds")
        limit = body.get("daily_send_limit")
        mailbox = self.sandbox.create_mailbox(
            MailboxSpec(
                address=address,
                kind=kind,
                display_name=str(body.get("display_name", "")),
                history_retention_seconds=float(retention) if retention is not None else None,
                daily_send_limit=int(limit) if limit is not None else None,
            )
        )
        return web.json_response(mailbox_summary(mailbox), status=201)

    async def get_mailbox(self, request: web.Request) -> web.Response:
        """``GET /_admin/mailboxes/{address}``."""
        return web.json_response(mailbox_summary(self._mailbox(request)))

    async def update_mailbox(self, request: web.Request) -> web.Response:
        """``PATCH /_admin/mailboxes/{address}`` ``{history_retention_seconds?, daily_send_limit?}``."""
        mailbox = self._mailbox(request)
        body = await self._body(request)
        if "history_retention_seconds" in body:
            mailbox.history_retention_seconds = float(body["history_retention_seconds"])
        if "daily_send_limit" in body:
            mailbox.daily_send_limit = int(body["daily_send_limit"])
        return web.json_response(mailbox_summary(mailbox))

    async def deliver_inbound(self, request: web.Request) -> web.Response:
        """``POST /_admin/mailboxes/{address}/inbound``: mail from outside arrives.

        Body: ``raw_base64`` (a complete message) or ``from``, ``subject``, ``text``, optional ``to`` (default
        the mailbox), ``cc``, ``html``, ``message_id``, ``in_reply_to``, ``references``, ``attachments``
        (``[{filename, mime_type, data_base64}]``), ``labels`` (default INBOX, UNREAD). A reply from a contact
        joins the thread of the message it references when the subject matches.
        """
        mailbox = self._mailbox(request)
        body = await self._body(request)
        if body.get("raw_base64"):
            raw = mime.b64_decode_lenient(str(body["raw_base64"]))
        else:
            sender = body.get("from")
            if not isinstance(sender, str):
                raise AdminError("from is required")
            raw = mime.compose(
                sender=sender,
                to=_str_list(body, "to") or [mailbox.address],
                cc=_str_list(body, "cc"),
                subject=str(body.get("subject", "")),
                text=str(body.get("text", "")),
                html_body=body.get("html"),
                message_id=body.get("message_id"),
                in_reply_to=body.get("in_reply_to"),
                references=body.get("references"),
                attachments=_attachments(body),
                now=self.sandbox.now(),
            )
        labels = set(_str_list(body, "labels")) if "labels" in body else None
        message = self.sandbox.deliver(mailbox, raw, labels)
        return web.json_response(message_summary(message), status=201)

    async def send_as_user(self, request: web.Request) -> web.Response:
        """``POST /_admin/mailboxes/{address}/send``: the user sends from the Gmail UI (new thread).

        Body: ``to``, ``cc``, ``bcc``, ``subject``, ``text``, ``html``, ``attachments``. Subject to the daily
        sending limit like any send.
        """
        mailbox = self._mailbox(request)
        body = await self._body(request)
        raw = mime.compose(
            sender=self._from(mailbox),
            to=_str_list(body, "to"),
            cc=_str_list(body, "cc"),
            bcc=_str_list(body, "bcc"),
            subject=str(body.get("subject", "")),
            text=str(body.get("text", "")),
            html_body=body.get("html"),
            attachments=_attachments(body),
            now=self.sandbox.now(),
        )
        message = self.sandbox.send(mailbox, raw, None)
        return web.json_response(message_summary(message), status=201)

    async def reply_as_user(self, request: web.Request) -> web.Response:
        """``POST /_admin/mailboxes/{address}/reply``: the user replies in the UI to ``message_id`` (a Gmail
        id).

        Sets ``Re:``, ``In-Reply-To`` and ``References`` and keeps the thread. Body: ``message_id``, ``text``,
        optional ``reply_all``, extra ``cc``/``bcc``, ``html``, ``attachments``.
        """
        mailbox = self._mailbox(request)
        body = await self._body(request)
        original = self._stored(mailbox, str(body.get("message_id", "")))
        parsed = original.parsed
        author = mime.header_text(parsed, "Reply-To") or mime.header_text(parsed, "From")
        own = mailbox.address
        to = list(mime.addresses(parsed, "To")) if own in mime.addresses(parsed, "From") else [author]
        cc = _str_list(body, "cc")
        if body.get("reply_all"):
            others = [a for a in mime.addresses(parsed, "To", "Cc") if a != own and a not in to]
            cc = [*others, *cc]
        references = " ".join(
            [*mime.message_ids(mime.header_text(parsed, "References")), original.rfc_message_id]
        ).strip()
        subject = original.subject
        if not _REPLY_PREFIX.match(subject):
            subject = f"Re: {subject}"
        raw = mime.compose(
            sender=self._from(mailbox),
            to=to,
            cc=cc,
            bcc=_str_list(body, "bcc"),
            subject=subject,
            text=str(body.get("text", "")),
            html_body=body.get("html"),
            in_reply_to=original.rfc_message_id or None,
            references=references or None,
            attachments=_attachments(body),
            now=self.sandbox.now(),
        )
        message = self.sandbox.send(mailbox, raw, original.thread_id)
        return web.json_response(message_summary(message), status=201)

    async def forward_as_user(self, request: web.Request) -> web.Response:
        """``POST /_admin/mailboxes/{address}/forward``: the user forwards ``message_id`` to ``to``
        (``Fwd:``).

        The original is quoted inline the way Gmail's UI does ("---------- Forwarded message ---------"); the
        forward stays in the original's thread in the sender's mailbox. Body: ``message_id``, ``to``, ``cc``,
        ``bcc``, ``text``.
        """
        mailbox = self._mailbox(request)
        body = await self._body(request)
        original = self._stored(mailbox, str(body.get("message_id", "")))
        parsed = original.parsed
        quoted_body = ""
        for part in parsed.walk():
            if part.get_content_type() == "text/plain" and not part.get_filename():
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    quoted_body = payload.decode(part.get_content_charset() or "utf-8", errors="replace")
                break
        header_lines = "\n".join(
            f"{name}: {mime.header_text(parsed, name)}" for name in ("From", "Date", "Subject", "To")
        )
        separator = "---------- Forwarded message ---------"
        text = f"{body.get('text', '')}\n\n{separator}\n{header_lines}\n\n{quoted_body}"
        references = " ".join(
            [*mime.message_ids(mime.header_text(parsed, "References")), original.rfc_message_id]
        ).strip()
        raw = mime.compose(
            sender=self._from(mailbox),
            to=_str_list(body, "to"),
            cc=_str_list(body, "cc"),
            bcc=_str_list(body, "bcc"),
            subject=f"Fwd: {original.subject}",
            text=text,
            in_reply_to=original.rfc_message_id or None,
            references=references or None,
            now=self.sandbox.now(),
        )
        message = self.sandbox.send(mailbox, raw, original.thread_id)
        return web.json_response(message_summary(message), status=201)

    @staticmethod
    def _from(mailbox: Mailbox) -> str:
        return f"{mailbox.display_name} <{mailbox.address}>" if mailbox.display_name else mailbox.address

    async def list_messages(self, request: web.Request) -> web.Response:
        """``GET /_admin/mailboxes/{address}/messages?label=SENT``: newest first."""
        mailbox = self._mailbox(request)
        label = request.query.get("label")
        messages = [m for m in mailbox.messages.values() if label is None or label in m.label_ids]
        messages.sort(key=lambda m: (m.internal_date_ms, m.id), reverse=True)
        return web.json_response({"messages": [message_summary(m) for m in messages]})

    async def get_message(self, request: web.Request) -> web.Response:
        """``GET /_admin/mailboxes/{address}/messages/{id}``: summary plus ``raw_base64``."""
        message = self._stored(self._mailbox(request), request.match_info["id"])
        return web.json_response(
            {**message_summary(message), "raw_base64": base64.b64encode(message.raw).decode()}
        )

    async def list_threads(self, request: web.Request) -> web.Response:
        """``GET /_admin/mailboxes/{address}/threads``: every thread with its message ids in order."""
        mailbox = self._mailbox(request)
        threads = [
            {"threadId": tid, "subject": mailbox.messages[ids[0]].subject, "messageIds": list(ids)}
            for tid, ids in mailbox.threads.items()
        ]
        return web.json_response({"threads": threads})

    async def issue_tokens(self, request: web.Request) -> web.Response:
        """``POST /_admin/mailboxes/{address}/tokens`` ``{scopes, client_id?}``: consent without a browser.

        Returns Google's token response plus ``refresh_token``; use it with the token endpoint like a real
        grant.
        """
        mailbox = self._mailbox(request)
        body = await self._body(request)
        scopes = _str_list(body, "scopes")
        if not scopes:
            raise AdminError("scopes are required")
        client_id = str(body.get("client_id") or DEFAULT_CLIENT.client_id)
        if client_id not in self.sandbox.oauth.clients:
            raise AdminError("unknown client_id")
        response, _ = self.sandbox.oauth.grant_directly(
            client_id, mailbox.address, scopes, self.sandbox.now()
        )
        return web.json_response(response.body(), status=201)

    async def set_consent(self, request: web.Request) -> web.Response:
        """``POST /_admin/mailboxes/{address}/consent`` ``{granted_scopes?: [...], deny?: bool}``.

        How the auto-approving consent screen answers for this user from now on; ``granted_scopes`` null or
        absent grants whatever is requested.
        """
        mailbox = self._mailbox(request)
        body = await self._body(request)
        granted = body.get("granted_scopes")
        self.sandbox.oauth.consent[mailbox.address] = ConsentPolicy(
            granted_scopes=frozenset(_str_list(body, "granted_scopes")) if granted is not None else None,
            deny=bool(body.get("deny", False)),
        )
        return web.json_response({"status": "ok"})

    async def revoke(self, request: web.Request) -> web.Response:
        """``POST /_admin/mailboxes/{address}/revoke``: the user removes every app's access."""
        count = self.sandbox.oauth.revoke_user(self._mailbox(request).address)
        return web.json_response({"revoked_grants": count})

    async def change_password(self, request: web.Request) -> web.Response:
        """``POST /_admin/mailboxes/{address}/password-change``: revokes grants holding Gmail scopes."""
        mailbox = self._mailbox(request)
        mailbox.password_generation += 1
        count = self.sandbox.oauth.password_changed(mailbox.address)
        return web.json_response({"revoked_grants": count})

    async def expire_history(self, request: web.Request) -> web.Response:
        """``POST /_admin/mailboxes/{address}/history/expire``: every older startHistoryId now answers 404."""
        mailbox = self._mailbox(request)
        mailbox.expire_history()
        return web.json_response(mailbox_summary(mailbox))

    async def register_client(self, request: web.Request) -> web.Response:
        """``POST /_admin/oauth/clients`` ``{client_id, client_secret, redirect_uris?}``."""
        body = await self._body(request)
        try:
            client = OAuthClient(
                str(body["client_id"]), str(body["client_secret"]), tuple(_str_list(body, "redirect_uris"))
            )
        except KeyError as exc:
            raise AdminError("client_id and client_secret are required") from exc
        self.sandbox.oauth.register_client(client)
        return web.json_response({"client_id": client.client_id}, status=201)

    async def list_faults(self, _request: web.Request) -> web.Response:
        """``GET /_admin/faults``."""
        return web.json_response({"faults": [r.describe() for r in self.sandbox.faults.rules]})

    async def add_fault(self, request: web.Request) -> web.Response:
        """``POST /_admin/faults`` ``{kind: error|slow|timeout, status?, rate?, count?, delay_seconds?,
        path_pattern?}`` -> the rule (201). ``count`` means "the next N matching calls"."""
        body = await self._body(request)
        try:
            rule = self.sandbox.faults.add(
                FaultKind(str(body.get("kind", "error"))),
                status=int(body.get("status", 503)),
                rate=float(body.get("rate", 1.0)),
                count=int(body["count"]) if body.get("count") is not None else None,
                delay_seconds=float(body.get("delay_seconds", 0.0)),
                path_pattern=body.get("path_pattern"),
            )
        except (ValueError, TypeError) as exc:
            raise AdminError(str(exc)) from exc
        return web.json_response(rule.describe(), status=201)

    async def clear_faults(self, request: web.Request) -> web.Response:
        """``DELETE /_admin/faults[?seed=N]``: remove all rules and restart the seeded randomness."""
        seed = request.query.get("seed")
        self.sandbox.faults.clear(int(seed) if seed is not None else None)
        return web.json_response({"faults": []})

    async def list_notifications(self, _request: web.Request) -> web.Response:
        """``GET /_admin/notifications``: every notification published, oldest first."""
        notifications = self.sandbox.notifications
        return web.json_response(
            {"notifications": [n.describe() for n in notifications.sent], "failures": notifications.failures}
        )

    async def list_outbound(self, _request: web.Request) -> web.Response:
        """``GET /_admin/outbound``: every sent message that left the sandbox, with envelope and relay
        status."""
        return web.json_response({"messages": [m.describe() for m in self.sandbox.outbound.messages]})

    async def add_push_subscription(self, request: web.Request) -> web.Response:
        """``POST /_admin/push-subscriptions`` ``{topic, endpoint, name?, audience?, min_backoff_seconds?,
        max_backoff_seconds?, max_attempts?}``: deliver the topic's notifications by signed push."""
        body = await self._body(request)
        try:
            topic, endpoint = str(body["topic"]), str(body["endpoint"])
        except KeyError as exc:
            raise AdminError("topic and endpoint are required") from exc
        project = topic.split("/")[1] if topic.startswith("projects/") else self.sandbox.config.project_id
        subscription = PushSubscription(
            name=str(
                body.get("name")
                or f"projects/{project}/subscriptions/gmail-push-{len(self.sandbox.push.subscriptions) + 1}"
            ),
            topic=topic,
            endpoint=endpoint,
            audience=body.get("audience"),
            min_backoff_seconds=float(body.get("min_backoff_seconds", 10.0)),
            max_backoff_seconds=float(body.get("max_backoff_seconds", 600.0)),
            max_attempts=int(body.get("max_attempts", 10)),
        )
        self.sandbox.push.subscriptions.append(subscription)
        return web.json_response(subscription.describe(), status=201)

    async def list_push_subscriptions(self, _request: web.Request) -> web.Response:
        """``GET /_admin/push-subscriptions`` with every delivery attempt."""
        return web.json_response({"subscriptions": [s.describe() for s in self.sandbox.push.subscriptions]})

    async def sign_push_token(self, request: web.Request) -> web.Response:
        """``POST /_admin/push-token`` ``{audience, email?, lifetime_seconds?, issued_at?}`` -> ``{token}``
        signed like Pub/Sub push (verify with ``/oauth2/v1/certs``)."""
        body = await self._body(request)
        audience = body.get("audience")
        if not isinstance(audience, str):
            raise AdminError("audience is required")
        issued_at = body.get("issued_at")
        token = self.sandbox.signer.sign(
            audience,
            issued_at=float(issued_at) if issued_at is not None else None,
            email=body.get("email"),
            lifetime=int(body.get("lifetime_seconds", 3600)),
        )
        return web.json_response({"token": token})

    async def advance_clock(self, request: web.Request) -> web.Response:
        """``POST /_admin/clock/advance`` ``{seconds}``: only when the sandbox runs on a manual clock."""
        clock = self.sandbox.clock
        if not isinstance(clock, ManualClock):
            raise AdminError("the sandbox runs on the system clock")
        body = await self._body(request)
        await clock.advance(float(body.get("seconds", 0)))
        return web.json_response({"now": clock.now()})
