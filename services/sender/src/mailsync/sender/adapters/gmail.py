"""The Gmail API calls the sender makes, over aiohttp: `users.messages.send` and `users.messages.list`.

* Messages up to `simple_upload_max_bytes` (default 5 MB, the uploads guide's advice for simple requests) go
  as JSON `{"raw": base64url, "threadId"}`; larger ones through the upload endpoint
  (`/upload/gmail/v1/users/me/messages/send?uploadType=multipart`: a JSON metadata part with the `threadId`,
  then the `message/rfc822` part), up to Gmail's 35 MB send cap.
* `find` runs `messages.list` with `q=rfc822msgid:<id>`, which finds a message by its own Message-ID; the
  sender uses it to learn whether a send with an unknown outcome went out, and to find the thread of the
  message a reply answers.

Errors (handle-errors guide):

* 401 -> `AccessTokenRejectedError`;
* 429 "... (Mail sending)" (the daily sending limit) -> `SendingLimitError` with Gmail's retry time;
* other 429s and 403 `userRateLimitExceeded` / `rateLimitExceeded` -> `RetryableDeliveryError` honouring
  `Retry-After` (nothing was sent);
* 5xx, timeouts and connections dropped after the request was written ->
  `RetryableDeliveryError(outcome_unknown=True)`;
* a connection that could not be opened -> `RetryableDeliveryError` (not sent);
* any other 4xx -> `DeliveryRejectedError`.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from mailsync.common.contracts import SendFailureReason
from mailsync.sender.adapters.delivery_errors import (
    AccessTokenRejectedError,
    DeliveryRejectedError,
    RetryableDeliveryError,
    SendingLimitError,
)
from mailsync.sender.adapters.http_session import HttpSession
from mailsync.sender.domain import ProviderReceipt

_RETRY_AT = re.compile(r"Retry after (\S+)")
_RATE_LIMIT_REASONS = {"userRateLimitExceeded", "rateLimitExceeded"}


class GmailClient:
    """Gmail API client for one API root (Google's, or a sandbox's)."""

    def __init__(
        self,
        http: HttpSession,
        *,
        api_root: str,
        timeout_seconds: float = 30.0,
        simple_upload_max_bytes: int = 5 * 1024 * 1024,
    ) -> None:
        self._http = http
        self._root = api_root.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._simple_upload_max_bytes = simple_upload_max_bytes

    async def send(self, access_token: str, raw: bytes, thread_id: str | None) -> ProviderReceipt:
        """`users.messages.send` of the RFC 5322 bytes `raw`, in `thread_id` when given."""
        headers = {"Authorization": f"Bearer {access_token}"}
        metadata: dict[str, Any] = {"threadId": thread_id} if thread_id else {}
        if len(raw) <= self._simple_upload_max_bytes:
            url = f"{self._root}/gmail/v1/users/me/messages/send"
            body = json.dumps({**metadata, "raw": base64.urlsafe_b64encode(raw).decode("ascii")}).encode()
            headers["Content-Type"] = "application/json"
        else:
            url = f"{self._root}/upload/gmail/v1/users/me/messages/send?uploadType=multipart"
            boundary = f"mailsync-{secrets.token_hex(16)}"
            body = b"".join(
                (
                    f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
                    json.dumps(metadata).encode(),
                    f"\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n".encode(),
                    raw,
                    f"\r\n--{boundary}--\r\n".encode(),
                )
            )
            headers["Content-Type"] = f'multipart/related; boundary="{boundary}"'
        answer = await self._call("POST", url, headers=headers, body=body, sends=True)
        return ProviderReceipt(
            provider_message_id=str(answer["id"]), provider_thread_id=str(answer["threadId"])
        )

    async def find(self, access_token: str, internet_message_id: str) -> ProviderReceipt | None:
        """The mailbox's message whose Message-ID is `internet_message_id`, or None."""
        url = f"{self._root}/gmail/v1/users/me/messages"
        query = {"q": f"rfc822msgid:{internet_message_id}", "includeSpamTrash": "true", "maxResults": "1"}
        answer = await self._call(
            "GET", url, headers={"Authorization": f"Bearer {access_token}"}, params=query, sends=False
        )
        messages = answer.get("messages") or []
        if not messages:
            return None
        first = messages[0]
        return ProviderReceipt(
            provider_message_id=str(first["id"]), provider_thread_id=str(first["threadId"])
        )

    async def _call(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        sends: bool,
        body: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        try:
            async with self._http.session.request(
                method, url, headers=headers, data=body, params=params, timeout=self._timeout
            ) as response:
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"))
                payload = await response.read()
        except aiohttp.ClientConnectorError as error:
            raise RetryableDeliveryError(f"Gmail unreachable: {error}", outcome_unknown=False) from error
        except (aiohttp.ClientError, TimeoutError) as error:
            raise RetryableDeliveryError(f"Gmail did not answer: {error!r}", outcome_unknown=sends) from error
        data = _json(payload)
        if 200 <= status < 300:
            return data
        found = data.get("error")
        envelope: dict[str, Any] = found if isinstance(found, dict) else {}
        message = str(envelope.get("message", "")) or payload[:200].decode("utf-8", "replace")
        reasons = {str(e.get("reason")) for e in envelope.get("errors", []) if isinstance(e, dict)}
        detail = f"Gmail answered {status}: {message}"
        if status == 401:
            raise AccessTokenRejectedError(detail)
        if status == 429 and "(Mail sending)" in message:
            raise SendingLimitError(detail, _sending_limit_reset(message, retry_after))
        if status == 429 or (status == 403 and reasons & _RATE_LIMIT_REASONS):
            raise RetryableDeliveryError(detail, retry_after=retry_after, outcome_unknown=False)
        if status >= 500:
            raise RetryableDeliveryError(detail, retry_after=retry_after, outcome_unknown=sends)
        reason = (
            SendFailureReason.MESSAGE_TOO_LARGE
            if "payload size exceeds" in message.lower()
            else SendFailureReason.PROVIDER_REJECTED
        )
        raise DeliveryRejectedError(reason, detail)


def _json(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _sending_limit_reset(message: str, retry_after: float | None) -> datetime:
    match = _RETRY_AT.search(message)
    if match:
        try:
            return datetime.fromisoformat(match.group(1).replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            pass
    return datetime.now(UTC) + timedelta(seconds=retry_after or 24 * 3600)
