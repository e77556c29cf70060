"""The Microsoft Graph calls the sender makes for Outlook mailboxes, over aiohttp.

Graph's `sendMail` and `reply` answer 202 without the sent message's id, and Graph sets its own Message-ID, so
the sender sends through a draft instead, which is what gives it ids to report and to recover by:

1. `POST /me/messages` (a new thread) or `POST /me/messages/{last}/createReply` (S6: a reply to the thread's
   last message, so Exchange keeps the `conversationId`) creates the draft; its `internetMessageId` is known
   from then on.
2. Attachments: up to 3 MB each `POST /me/messages/{id}/attachments`; larger ones (when the O3 setting allows
   them) through `createUploadSession` and `PUT` chunks under 4 MB to the pre-authenticated `uploadUrl`,
   without an `Authorization` header.
3. `POST /me/messages/{id}/send` (202); the sent copy is then found by `internetMessageId`.

Errors (Graph throttling guide): 401 -> `AccessTokenRejectedError`; 429 and 5xx -> `RetryableDeliveryError`
honouring `Retry-After` (for `send`, a 5xx or a timeout leaves the outcome unknown); a connection
that could not be opened -> `RetryableDeliveryError` (not sent); other 4xx -> `DeliveryRejectedError`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from mailsync.common.contracts import SendFailureReason
from mailsync.sender.adapters.delivery_errors import (
    AccessTokenRejectedError,
    DeliveryRejectedError,
    RetryableDeliveryError,
)
from mailsync.sender.adapters.http_session import HttpSession

SIMPLE_ATTACHMENT_MAX_BYTES = 3 * 1024 * 1024
UPLOAD_CHUNK_BYTES = 3 * 1024 * 1024 + 768 * 1024  # under 4 MB and a multiple of 320 KiB


@dataclass(frozen=True)
class GraphMessage:
    """A message's ids as Graph reports them."""

    id: str
    conversation_id: str
    internet_message_id: str
    is_draft: bool


class GraphClient:
    """Graph v1.0 mail client for one API root (Microsoft's, or a sandbox's)."""

    def __init__(self, http: HttpSession, *, api_root: str, timeout_seconds: float = 30.0) -> None:
        self._http = http
        self._root = api_root.rstrip("/") + "/v1.0/me"
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    async def create_draft(self, token: str, message: dict[str, Any]) -> GraphMessage:
        """Save `message` (Graph's message JSON) as a draft."""
        return _message(await self._call("POST", f"{self._root}/messages", token, body=message))

    async def create_reply(self, token: str, parent_id: str, message: dict[str, Any]) -> GraphMessage:
        """A reply draft to `parent_id` in its conversation, with `message`'s body and recipients."""
        url = f"{self._root}/messages/{parent_id}/createReply"
        return _message(await self._call("POST", url, token, body={"message": message}))

    async def attach(self, token: str, draft_id: str, name: str, content_type: str, data: bytes) -> None:
        """Add one attachment to the draft (an upload session above 3 MB)."""
        if len(data) <= SIMPLE_ATTACHMENT_MAX_BYTES:
            body = {
                "@odata.type": "#microsoft.graph.fileAttachment",
                "name": name,
                "contentType": content_type,
                "contentBytes": base64.b64encode(data).decode("ascii"),
            }
            await self._call("POST", f"{self._root}/messages/{draft_id}/attachments", token, body=body)
            return
        item = {"AttachmentItem": {"attachmentType": "file", "name": name, "size": len(data)}}
        url = f"{self._root}/messages/{draft_id}/attachments/createUploadSession"
        session = await self._call("POST", url, token, body=item)
        upload_url = str(session["uploadUrl"])
        for start in range(0, len(data), UPLOAD_CHUNK_BYTES):
            chunk = data[start : start + UPLOAD_CHUNK_BYTES]
            headers = {
                "Content-Range": f"bytes {start}-{start + len(chunk) - 1}/{len(data)}",
                "Content-Type": "application/octet-stream",
            }
            await self._call("PUT", upload_url, None, raw=chunk, headers=headers)

    async def send_draft(self, token: str, draft_id: str) -> None:
        """Send the draft (202)."""
        await self._call("POST", f"{self._root}/messages/{draft_id}/send", token, sends=True)

    async def find(self, token: str, internet_message_id: str) -> GraphMessage | None:
        """The mailbox's sent (non-draft) message with `internet_message_id`, or None."""
        escaped = internet_message_id.replace("'", "''")
        found = await self._list(token, f"internetMessageId eq '{escaped}'", top=10)
        return next((m for m in found if not m.is_draft), None)

    async def draft(self, token: str, internet_message_id: str) -> GraphMessage | None:
        """The draft with `internet_message_id` (not sent yet), or None."""
        escaped = internet_message_id.replace("'", "''")
        found = await self._list(token, f"internetMessageId eq '{escaped}'", top=10)
        return next((m for m in found if m.is_draft), None)

    async def last_in_conversation(self, token: str, conversation_id: str) -> GraphMessage | None:
        """The most recently received non-draft message of the conversation, or None."""
        escaped = conversation_id.replace("'", "''")
        found = await self._list(token, f"conversationId eq '{escaped}'", top=25)
        return next((m for m in found if not m.is_draft), None)

    async def _list(self, token: str, query: str, *, top: int) -> list[GraphMessage]:
        params = {
            "$filter": query,
            "$select": "id,conversationId,internetMessageId,isDraft",
            "$orderby": "receivedDateTime desc",
            "$top": str(top),
        }
        answer = await self._call("GET", f"{self._root}/messages", token, params=params)
        return [_message(item) for item in answer.get("value", []) if isinstance(item, dict)]

    async def _call(
        self,
        method: str,
        url: str,
        token: str | None,
        *,
        body: dict[str, Any] | None = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        sends: bool = False,
    ) -> dict[str, Any]:
        request_headers = dict(headers or {})
        if token is not None:
            request_headers["Authorization"] = f"Bearer {token}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            request_headers["Content-Type"] = "application/json"
        try:
            async with self._http.session.request(
                method, url, headers=request_headers, data=data, params=params, timeout=self._timeout
            ) as response:
                status = response.status
                retry_after = _seconds(response.headers.get("Retry-After"))
                payload = await response.read()
        except aiohttp.ClientConnectorError as error:
            raise RetryableDeliveryError(f"Graph unreachable: {error}", outcome_unknown=False) from error
        except (aiohttp.ClientError, TimeoutError) as error:
            raise RetryableDeliveryError(f"Graph did not answer: {error!r}", outcome_unknown=sends) from error
        answer = _json(payload)
        if 200 <= status < 300:
            return answer
        found = answer.get("error")
        envelope: dict[str, Any] = found if isinstance(found, dict) else {}
        detail = f"Graph answered {status} {envelope.get('code', '')}: {envelope.get('message', '')}".strip()
        if status == 401:
            raise AccessTokenRejectedError(detail)
        if status == 429 or status >= 500:
            raise RetryableDeliveryError(
                detail, retry_after=retry_after, outcome_unknown=sends and status >= 500
            )
        raise DeliveryRejectedError(SendFailureReason.PROVIDER_REJECTED, detail)


def _message(item: dict[str, Any]) -> GraphMessage:
    return GraphMessage(
        id=str(item["id"]),
        conversation_id=str(item.get("conversationId", "")),
        internet_message_id=str(item.get("internetMessageId", "")),
        is_draft=bool(item.get("isDraft", False)),
    )


def _json(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
