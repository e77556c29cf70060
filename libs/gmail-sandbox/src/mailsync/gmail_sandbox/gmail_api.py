"""The Gmail REST API subset: ``/gmail/v1/users/{userId}/...`` and the media upload endpoints.

Every call goes through the same gate, in the order Google applies it: bearer token (401), ``userId`` (``me``
or the token's own address, otherwise 403 "Delegation denied"), the method's scopes (403), the per-user quota
(403 ``userRateLimitExceeded``) and the per-user concurrency cap (429). Fault injection sits in front of all
of it (see :mod:`mailsync.gmail_sandbox.faults`).

Uploads (``/upload/gmail/v1/users/{userId}/messages/send``, ``/messages`` for insert and ``/messages/import``)
accept ``uploadType=media`` (the message as the body, ``message/rfc822``), ``multipart``
(``multipart/related``: JSON metadata then the message) and ``resumable`` (a session URL in ``Location``, then
``PUT`` chunks answered with 308 and ``Range`` until the last). Caps from the discovery document: 35 MB
(36,700,160 bytes) for send, 150 MB for insert/import.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from typing import Any

from aiohttp import web

from mailsync.gmail_sandbox import scopes as scope_names
from mailsync.gmail_sandbox.errors import (
    GoogleApiError,
    bad_request,
    delegation_denied,
    failed_precondition,
    insufficient_scopes,
    invalid_argument,
    invalid_credentials,
    metadata_scope_forbids,
    not_found,
)
from mailsync.gmail_sandbox.mailbox import (
    HistoryType,
    Mailbox,
    StaleHistoryError,
    StoredMessage,
    UnknownMessageError,
)
from mailsync.gmail_sandbox.mime import b64_decode_lenient, snippet
from mailsync.gmail_sandbox.oauth import AccessToken
from mailsync.gmail_sandbox.quota import METHOD_COSTS
from mailsync.gmail_sandbox.resources import (
    MessageFormat,
    attachment_resource,
    history_resource,
    label_resource,
    message_resource,
    profile_resource,
    thread_resource,
)
from mailsync.gmail_sandbox.sandbox import GmailSandbox
from mailsync.gmail_sandbox.search import compile_query

_SPAM_TRASH = frozenset({"SPAM", "TRASH"})


@dataclass(frozen=True)
class Call:
    """An authenticated, authorised call: the caller's mailbox and token."""

    mailbox: Mailbox
    token: AccessToken


Handler = Callable[[web.Request, Call], Awaitable[web.Response]]


@dataclass
class _UploadSession:
    method_id: str
    mailbox: str
    metadata: dict[str, Any]
    total: int | None
    received: bytearray = field(default_factory=bytearray)


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _int_param(request: web.Request, name: str, default: int, maximum: int) -> int:
    value = request.query.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise invalid_argument(f"Invalid value at '{name}' ({value})") from None
    if number < 1:
        raise invalid_argument(f"Invalid value at '{name}' ({value})")
    return min(number, maximum)


def _page_offset(request: web.Request) -> int:
    token = request.query.get("pageToken")
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode() + b"==").decode())
    except ValueError:
        raise invalid_argument("Invalid pageToken") from None


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"{offset:020d}".encode()).decode().rstrip("=")


def _bool_param(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() == "true"


def split_multipart(content_type: str, body: bytes) -> list[tuple[Message, bytes]]:
    """Split a multipart body into (headers, content) pairs without touching the content bytes."""
    envelope = Message()
    envelope["Content-Type"] = content_type
    boundary = envelope.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise bad_request("Multipart upload without a boundary")
    parts: list[tuple[Message, bytes]] = []
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        segment = chunk.removeprefix(b"\r\n") if chunk.startswith(b"\r\n") else chunk.removeprefix(b"\n")
        segment = segment.removesuffix(b"\r\n") if segment.endswith(b"\r\n") else segment.removesuffix(b"\n")
        separator = re.search(rb"\r?\n\r?\n", segment)
        if separator is None:
            head, content = segment, b""
        else:
            head, content = segment[: separator.start()], segment[separator.end() :]
        parts.append((BytesHeaderParser().parsebytes(head + b"\r\n\r\n"), content))
    return parts


class GmailApi:
    """Route handlers bound to one :class:`GmailSandbox`."""

    def __init__(self, sandbox: GmailSandbox) -> None:
        self.sandbox = sandbox
        self._uploads: dict[str, _UploadSession] = {}

    # -- the gate ------------------------------------------------------------------------------------------

    def authenticate(self, request: web.Request) -> AccessToken:
        """Return the live access token of the request.

        Raises:
            GoogleApiError: 401 when missing, unknown, expired or revoked.
        """
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else request.query.get("access_token", "")
        access = self.sandbox.oauth.validate_access_token(token, self.sandbox.now()) if token else None
        if access is None:
            raise invalid_credentials()
        return access

    def authorize(self, request: web.Request, method_id: str) -> Call:
        """Run the gate for ``method_id`` and return the call context (charges quota).

        Raises:
            GoogleApiError: 401, 403 or 400 as described in the module docstring.
        """
        token = self.authenticate(request)
        user_id = request.match_info.get("userId", "me")
        if user_id != "me" and user_id.lower() != token.user:
            raise delegation_denied(user_id)
        mailbox = self.sandbox.store.find(token.user)
        if mailbox is None:
            raise failed_precondition("Mail service not enabled")
        if not token.scopes & scope_names.METHOD_SCOPES[method_id]:
            raise insufficient_scopes()
        self.sandbox.quota.charge(token.user, METHOD_COSTS[method_id], self.sandbox.now())
        return Call(mailbox, token)

    def _endpoint(self, method_id: str, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def run(request: web.Request) -> web.Response:
            call = self.authorize(request, method_id)
            with self.sandbox.concurrency.hold(call.token.user):
                return await handler(request, call)

        return run

    def routes(self) -> list[web.RouteDef]:
        """All Gmail API routes."""
        base = "/gmail/v1/users/{userId}"
        upload = "/upload/gmail/v1/users/{userId}"
        table: list[tuple[str, str, str, Handler]] = [
            ("GET", f"{base}/profile", "gmail.users.getProfile", self.get_profile),
            ("POST", f"{base}/watch", "gmail.users.watch", self.watch),
            ("POST", f"{base}/stop", "gmail.users.stop", self.stop),
            ("GET", f"{base}/history", "gmail.users.history.list", self.list_history),
            ("GET", f"{base}/labels", "gmail.users.labels.list", self.list_labels),
            ("POST", f"{base}/labels", "gmail.users.labels.create", self.create_label),
            ("GET", f"{base}/labels/{{id}}", "gmail.users.labels.get", self.get_label),
            ("GET", f"{base}/messages", "gmail.users.messages.list", self.list_messages),
            ("POST", f"{base}/messages", "gmail.users.messages.insert", self.insert_message),
            ("POST", f"{base}/messages/import", "gmail.users.messages.import", self.import_message),
            ("POST", f"{base}/messages/send", "gmail.users.messages.send", self.send_message),
            ("GET", f"{base}/messages/{{id}}", "gmail.users.messages.get", self.get_message),
            ("DELETE", f"{base}/messages/{{id}}", "gmail.users.messages.delete", self.delete_message),
            ("POST", f"{base}/messages/{{id}}/modify", "gmail.users.messages.modify", self.modify_message),
            ("POST", f"{base}/messages/{{id}}/trash", "gmail.users.messages.trash", self.trash_message),
            ("POST", f"{base}/messages/{{id}}/untrash", "gmail.users.messages.untrash", self.untrash_message),
            (
                "GET",
                f"{base}/messages/{{messageId}}/attachments/{{id}}",
                "gmail.users.messages.attachments.get",
                self.get_attachment,
            ),
            ("GET", f"{base}/threads", "gmail.users.threads.list", self.list_threads),
            ("GET", f"{base}/threads/{{id}}", "gmail.users.threads.get", self.get_thread),
            ("POST", f"{upload}/messages/send", "gmail.users.messages.send", self.upload_send),
            ("POST", f"{upload}/messages", "gmail.users.messages.insert", self.upload_insert),
            ("POST", f"{upload}/messages/import", "gmail.users.messages.import", self.upload_import),
            ("POST", f"/resumable{upload}/messages/send", "gmail.users.messages.send", self.upload_send),
        ]
        routes = [web.route(m, path, self._endpoint(mid, h)) for m, path, mid, h in table]
        routes.append(web.put("/upload/sessions/{session}", self.resumable_put))
        return routes

    # -- users ---------------------------------------------------------------------------------------------

    async def get_profile(self, _request: web.Request, call: Call) -> web.Response:
        """``users.getProfile``."""
        return _json(profile_resource(call.mailbox))

    async def watch(self, request: web.Request, call: Call) -> web.Response:
        """``users.watch``: ``WatchRequest`` in, ``WatchResponse`` out; ``labelFilterAction`` is the legacy
        name."""
        body = await self._json_body(request)
        behavior = body.get("labelFilterBehavior") or body.get("labelFilterAction")
        result = await self.sandbox.watch(
            call.mailbox, str(body.get("topicName") or ""), list(body.get("labelIds") or []), behavior
        )
        return _json({"historyId": str(result.history_id), "expiration": str(result.expiration_ms)})

    async def stop(self, _request: web.Request, call: Call) -> web.Response:
        """``users.stop``: empty 204 response, as Google answers an empty message."""
        self.sandbox.stop(call.mailbox)
        return web.Response(status=204)

    async def list_history(self, request: web.Request, call: Call) -> web.Response:
        """``users.history.list``: 404 for a ``startHistoryId`` older than the retained history."""
        start = request.query.get("startHistoryId")
        if not start:
            raise invalid_argument("Missing required parameter: startHistoryId")
        if not start.isdigit():
            raise invalid_argument(f"Invalid value at 'start_history_id' ({start})")
        types: set[HistoryType] = set()
        by_name = {t.value.lower(): t for t in HistoryType}
        for value in request.query.getall("historyTypes", []):
            history_type = by_name.get(value.replace("_", "").lower())
            if history_type is None:
                raise invalid_argument(f"Invalid value at 'history_types' ({value})")
            types.add(history_type)
        label_id = request.query.get("labelId")
        max_results = _int_param(request, "maxResults", 100, 500)
        offset = _page_offset(request)
        try:
            records = call.mailbox.history_after(int(start), self.sandbox.now())
        except StaleHistoryError:
            raise not_found() from None
        if types:
            records = [r for r in records if r.type in types]
        if label_id:
            records = [r for r in records if label_id in r.message.label_ids or label_id in r.labels]
        page = records[offset : offset + max_results]
        body: dict[str, Any] = {}
        if page:
            body["history"] = [history_resource(r, types) for r in page]
        if offset + max_results < len(records):
            body["nextPageToken"] = _page_token(offset + max_results)
        body["historyId"] = str(call.mailbox.history_id)
        return _json(body)

    # -- labels --------------------------------------------------------------------------------------------

    async def list_labels(self, _request: web.Request, call: Call) -> web.Response:
        """``users.labels.list``."""
        return _json({"labels": [label_resource(label) for label in call.mailbox.labels.values()]})

    async def get_label(self, request: web.Request, call: Call) -> web.Response:
        """``users.labels.get`` with counts."""
        label = call.mailbox.labels.get(request.match_info["id"])
        if label is None:
            raise not_found()
        return _json(label_resource(label, call.mailbox))

    async def create_label(self, request: web.Request, call: Call) -> web.Response:
        """``users.labels.create``; a name that exists answers 409 like Gmail."""
        body = await self._json_body(request)
        name = str(body.get("name") or "")
        if not name:
            raise invalid_argument("Invalid label name")
        if any(label.name.lower() == name.lower() for label in call.mailbox.labels.values()):
            raise GoogleApiError(409, "Label name exists or conflicts", "failedPrecondition")
        return _json(label_resource(call.mailbox.add_label(name)))

    # -- messages: reading ---------------------------------------------------------------------------------

    def _message(self, call: Call, message_id: str) -> StoredMessage:
        try:
            return call.mailbox.get(message_id)
        except UnknownMessageError:
            if not re.fullmatch(r"[0-9a-fA-F]{1,32}", message_id):
                raise invalid_argument("Invalid id value") from None
            raise not_found() from None

    async def list_messages(self, request: web.Request, call: Call) -> web.Response:
        """``users.messages.list``: newest first; ``labelIds`` must all match; SPAM/TRASH excluded by
        default."""
        query = request.query.get("q")
        if query and scope_names.metadata_only(call.token.scopes):
            raise metadata_scope_forbids("Metadata scope does not support 'q' parameter")
        label_ids = request.query.getall("labelIds", [])
        include_spam_trash = _bool_param(request, "includeSpamTrash")
        predicate = compile_query(query, self.sandbox.now()) if query else None
        max_results = _int_param(request, "maxResults", 100, 500)
        offset = _page_offset(request)
        matches = [
            m
            for m in call.mailbox.messages.values()
            if all(label in m.label_ids for label in label_ids)
            and (
                include_spam_trash
                or "SPAM" in label_ids
                or "TRASH" in label_ids
                or not m.label_ids & _SPAM_TRASH
            )
            and (predicate is None or predicate(m))
        ]
        matches.sort(key=lambda m: (m.internal_date_ms, m.id), reverse=True)
        page = matches[offset : offset + max_results]
        body: dict[str, Any] = {}
        if page:
            body["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
        if offset + max_results < len(matches):
            body["nextPageToken"] = _page_token(offset + max_results)
        body["resultSizeEstimate"] = len(matches)
        return _json(body)

    def _format(self, request: web.Request, call: Call) -> MessageFormat:
        fmt = MessageFormat.parse(request.query.get("format"), MessageFormat.FULL)
        if fmt in {MessageFormat.FULL, MessageFormat.RAW} and scope_names.metadata_only(call.token.scopes):
            raise metadata_scope_forbids(f"Metadata scope doesn't allow format {fmt.value.upper()}")
        return fmt

    async def get_message(self, request: web.Request, call: Call) -> web.Response:
        """``users.messages.get`` in any format."""
        fmt = self._format(request, call)
        message = self._message(call, request.match_info["id"])
        headers = request.query.getall("metadataHeaders", [])
        return _json(message_resource(message, fmt, headers, self.sandbox.config.inline_body_limit))

    async def get_attachment(self, request: web.Request, call: Call) -> web.Response:
        """``users.messages.attachments.get``."""
        message = self._message(call, request.match_info["messageId"])
        body = attachment_resource(message, request.match_info["id"], self.sandbox.config.inline_body_limit)
        if body is None:
            raise invalid_argument("Invalid attachment token")
        return _json(body)

    async def list_threads(self, request: web.Request, call: Call) -> web.Response:
        """``users.threads.list`` (``labelIds`` and paging; newest activity first)."""
        label_ids = request.query.getall("labelIds", [])
        max_results = _int_param(request, "maxResults", 100, 500)
        offset = _page_offset(request)
        rows = []
        for thread_id, ids in call.mailbox.threads.items():
            messages = [call.mailbox.messages[i] for i in ids]
            labels = set().union(*(m.label_ids for m in messages))
            if all(label in labels for label in label_ids):
                latest = max(messages, key=lambda m: m.internal_date_ms)
                rows.append((latest.internal_date_ms, thread_id, messages))
        rows.sort(reverse=True)
        page = rows[offset : offset + max_results]
        body: dict[str, Any] = {}
        if page:
            body["threads"] = [
                {
                    "id": thread_id,
                    "snippet": snippet(messages[-1].parsed),
                    "historyId": str(max(m.history_id for m in messages)),
                }
                for _, thread_id, messages in page
            ]
        if offset + max_results < len(rows):
            body["nextPageToken"] = _page_token(offset + max_results)
        body["resultSizeEstimate"] = len(rows)
        return _json(body)

    async def get_thread(self, request: web.Request, call: Call) -> web.Response:
        """``users.threads.get``."""
        fmt = self._format(request, call)
        thread_id = request.match_info["id"]
        if thread_id not in call.mailbox.threads:
            raise not_found()
        headers = request.query.getall("metadataHeaders", [])
        return _json(
            thread_resource(call.mailbox, thread_id, fmt, headers, self.sandbox.config.inline_body_limit)
        )

    # -- messages: changing --------------------------------------------------------------------------------

    async def modify_message(self, request: web.Request, call: Call) -> web.Response:
        """``users.messages.modify`` (returns the message in minimal form)."""
        body = await self._json_body(request)
        add = list(body.get("addLabelIds") or [])
        remove = list(body.get("removeLabelIds") or [])
        for label in add + remove:
            if label not in call.mailbox.labels:
                raise invalid_argument(f"Invalid label: {label}")
        message = self._message(call, request.match_info["id"])
        call.mailbox.modify_labels(message.id, add, remove, self.sandbox.now())
        return _json(self._minimal(message))

    async def trash_message(self, request: web.Request, call: Call) -> web.Response:
        """``users.messages.trash``: adds TRASH, removes INBOX."""
        message = self._message(call, request.match_info["id"])
        call.mailbox.modify_labels(message.id, ["TRASH"], ["INBOX"], self.sandbox.now())
        return _json(self._minimal(message))

    async def untrash_message(self, request: web.Request, call: Call) -> web.Response:
        """``users.messages.untrash``: removes TRASH."""
        message = self._message(call, request.match_info["id"])
        call.mailbox.modify_labels(message.id, [], ["TRASH"], self.sandbox.now())
        return _json(self._minimal(message))

    async def delete_message(self, request: web.Request, call: Call) -> web.Response:
        """``users.messages.delete``: permanent, answers 204."""
        message = self._message(call, request.match_info["id"])
        call.mailbox.delete_message(message.id, self.sandbox.now())
        return web.Response(status=204)

    def _minimal(self, message: StoredMessage) -> dict[str, Any]:
        return message_resource(message, MessageFormat.MINIMAL, [], self.sandbox.config.inline_body_limit)

    async def send_message(self, request: web.Request, call: Call) -> web.Response:
        """``users.messages.send`` with a JSON ``Message`` (``raw`` + optional ``threadId``)."""
        body = await self._json_body(request)
        raw = self._raw_from_json(body, self.sandbox.config.max_send_upload_bytes)
        return self._send(call, raw, body)

    async def insert_message(self, request: web.Request, call: Call) -> web.Response:
        """``users.messages.insert`` with a JSON ``Message``."""
        body = await self._json_body(request)
        raw = self._raw_from_json(body, self.sandbox.config.max_insert_upload_bytes)
        return self._insert(request, call, raw, body)

    async def import_message(self, request: web.Request, call: Call) -> web.Response:
        """``users.messages.import`` with a JSON ``Message`` (stored like insert; no spam filter here)."""
        return await self.insert_message(request, call)

    def _send(self, call: Call, raw: bytes, metadata: dict[str, Any]) -> web.Response:
        thread_id = metadata.get("threadId")
        message = self.sandbox.send(call.mailbox, raw, str(thread_id) if thread_id else None)
        return _json(self._minimal_ids(message))

    def _insert(self, request: web.Request, call: Call, raw: bytes, metadata: dict[str, Any]) -> web.Response:
        source = request.query.get("internalDateSource", "receivedTime")
        if source not in {"receivedTime", "dateHeader"}:
            raise invalid_argument(f"Invalid value at 'internal_date_source' ({source})")
        thread_id = metadata.get("threadId")
        message = self.sandbox.insert(
            call.mailbox,
            raw,
            list(metadata.get("labelIds") or []),
            str(thread_id) if thread_id else None,
            source,
        )
        return _json(self._minimal_ids(message))

    @staticmethod
    def _minimal_ids(message: StoredMessage) -> dict[str, Any]:
        body: dict[str, Any] = {"id": message.id, "threadId": message.thread_id}
        if message.label_ids:
            body["labelIds"] = sorted(message.label_ids)
        return body

    @staticmethod
    def _raw_from_json(body: dict[str, Any], cap: int) -> bytes:
        encoded = body.get("raw")
        if not encoded:
            raise bad_request(
                "'raw' RFC822 payload message string or uploading message via /upload/* URL required"
            )
        raw = b64_decode_lenient(str(encoded))
        if len(raw) > cap:
            raise bad_request(f"Request payload size exceeds the limit: {cap} bytes.")
        return raw

    @staticmethod
    async def _json_body(request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise invalid_argument("Invalid JSON payload received.") from None
        if not isinstance(body, dict):
            raise invalid_argument("Invalid JSON payload received.")
        return body

    # -- uploads -------------------------------------------------------------------------------------------

    async def upload_send(self, request: web.Request, call: Call) -> web.Response:
        """Media upload for ``messages.send``."""
        return await self._upload(request, call, "gmail.users.messages.send")

    async def upload_insert(self, request: web.Request, call: Call) -> web.Response:
        """Media upload for ``messages.insert``."""
        return await self._upload(request, call, "gmail.users.messages.insert")

    async def upload_import(self, request: web.Request, call: Call) -> web.Response:
        """Media upload for ``messages.import``."""
        return await self._upload(request, call, "gmail.users.messages.import")

    def _cap(self, method_id: str) -> int:
        config = self.sandbox.config
        return config.max_send_upload_bytes if method_id.endswith("send") else config.max_insert_upload_bytes

    async def _upload(self, request: web.Request, call: Call, method_id: str) -> web.Response:
        upload_type = request.query.get("uploadType", "resumable" if "/resumable/" in request.path else "")
        cap = self._cap(method_id)
        if upload_type == "media":
            raw = await request.read()
            metadata: dict[str, Any] = {}
        elif upload_type == "multipart":
            metadata, raw = await self._read_multipart(request)
        elif upload_type == "resumable":
            metadata = await self._json_body(request)
            length = request.headers.get("X-Upload-Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > cap:
                raise bad_request(f"Request payload size exceeds the limit: {cap} bytes.")
            session_id = secrets.token_urlsafe(24)
            self._uploads[session_id] = _UploadSession(method_id, call.mailbox.address, metadata, total)
            origin = self.sandbox.config.public_url or str(request.url.origin())
            location = f"{origin.rstrip('/')}/upload/sessions/{session_id}"
            return web.Response(
                status=200, headers={"Location": location, "X-GUploader-UploadID": session_id}
            )
        else:
            raise invalid_argument(f"Invalid upload type: {upload_type or 'missing uploadType'}")
        if len(raw) > cap:
            raise bad_request(f"Request payload size exceeds the limit: {cap} bytes.")
        return self._complete_upload(request, call, method_id, metadata, raw)

    def _complete_upload(
        self, request: web.Request, call: Call, method_id: str, metadata: dict[str, Any], raw: bytes
    ) -> web.Response:
        if not raw:
            raise bad_request("Media upload requires a message body")
        if method_id.endswith("send"):
            return self._send(call, raw, metadata)
        return self._insert(request, call, raw, metadata)

    @staticmethod
    async def _read_multipart(request: web.Request) -> tuple[dict[str, Any], bytes]:
        """Split a ``multipart/related`` upload into its JSON metadata and the message bytes (kept verbatim).

        Split by hand because clients (googleapiclient among them) may use bare LF line endings, which Google
        accepts, and because the ``message/rfc822`` part must not be re-serialised.
        """
        parts = split_multipart(request.headers.get("Content-Type", ""), await request.read())
        if len(parts) != 2:
            raise bad_request("Multipart upload needs a metadata part and a media part")
        (_, metadata_bytes), (media_headers, raw) = parts
        try:
            metadata = json.loads(metadata_bytes or b"{}")
        except json.JSONDecodeError:
            raise invalid_argument("Invalid JSON payload received.") from None
        if media_headers.get("Content-Transfer-Encoding", "").lower() == "base64":
            raw = b64_decode_lenient(raw.decode("ascii", errors="replace"))
        return (metadata if isinstance(metadata, dict) else {}), raw

    async def resumable_put(self, request: web.Request) -> web.Response:
        """A chunk of a resumable upload: 308 with ``Range`` until the last byte, then the method's
        response."""
        session = self._uploads.get(request.match_info["session"])
        if session is None:
            raise not_found()
        call = self.authorize_upload(request, session)
        chunk = await request.read()
        content_range = request.headers.get("Content-Range", "")
        match = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", content_range.strip())
        total = session.total
        if match and match.group(3) != "*":
            total = int(match.group(3))
        session.received.extend(chunk)
        cap = self._cap(session.method_id)
        if len(session.received) > cap:
            raise bad_request(f"Request payload size exceeds the limit: {cap} bytes.")
        if total is None or len(session.received) < total:
            headers = {"Range": f"bytes=0-{len(session.received) - 1}"} if session.received else {}
            return web.Response(status=308, headers=headers)
        del self._uploads[request.match_info["session"]]
        with self.sandbox.concurrency.hold(call.token.user):
            return self._complete_upload(
                request, call, session.method_id, session.metadata, bytes(session.received)
            )

    def authorize_upload(self, request: web.Request, session: _UploadSession) -> Call:
        """Authenticate a resumable chunk against the session's mailbox (quota was charged when it
        started)."""
        token = self.authenticate(request)
        if token.user != session.mailbox:
            raise delegation_denied(token.user)
        mailbox = self.sandbox.mailbox(session.mailbox)
        return Call(mailbox, token)
