"""An async client for the sandbox's admin API, for tests and the demo.

Every method maps to one ``/_admin`` route (see :mod:`mailsync.gmail_sandbox.admin_api`) and returns the
decoded JSON. Failures raise :class:`AdminApiError` carrying the status and body; nothing is retried.
"""

from __future__ import annotations

import base64
from types import TracebackType
from typing import Any, Self

import aiohttp


class AdminApiError(Exception):
    """The admin API answered with a non-2xx status."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"admin API answered {status}: {body}")
        self.status = status
        self.body = body


class GmailSandboxAdmin:
    """Async admin client. Use as ``async with GmailSandboxAdmin(base_url) as admin: ...`` or pass a
    session."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if this client created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.request(method, f"{self.base_url}/_admin{path}", json=body) as response:
            payload = await response.json(content_type=None)
            if response.status >= 300:
                raise AdminApiError(response.status, payload)
            return payload

    # mailboxes
    async def create_mailbox(
        self,
        address: str,
        *,
        kind: str = "consumer",
        display_name: str = "",
        history_retention_seconds: float | None = None,
        daily_send_limit: int | None = None,
    ) -> dict[str, Any]:
        """Create (or recreate empty) a mailbox; ``kind`` is ``consumer`` or ``workspace``."""
        body: dict[str, Any] = {"address": address, "kind": kind, "display_name": display_name}
        if history_retention_seconds is not None:
            body["history_retention_seconds"] = history_retention_seconds
        if daily_send_limit is not None:
            body["daily_send_limit"] = daily_send_limit
        return dict(await self._call("POST", "/mailboxes", body))

    async def mailbox(self, address: str) -> dict[str, Any]:
        """Settings and counters of a mailbox."""
        return dict(await self._call("GET", f"/mailboxes/{address}"))

    async def update_mailbox(self, address: str, **settings: float) -> dict[str, Any]:
        """Change ``history_retention_seconds`` and/or ``daily_send_limit``."""
        return dict(await self._call("PATCH", f"/mailboxes/{address}", dict(settings)))

    # mail
    async def deliver_inbound(self, address: str, **message: Any) -> dict[str, Any]:
        """Mail from outside arrives (``from``/``sender``, ``subject``, ``text``, ``in_reply_to``, ... or
        ``raw``: bytes)."""
        body = dict(message)
        if "sender" in body:
            body["from"] = body.pop("sender")
        raw = body.pop("raw", None)
        if isinstance(raw, bytes):
            body["raw_base64"] = base64.b64encode(raw).decode()
        return dict(await self._call("POST", f"/mailboxes/{address}/inbound", body))

    async def send_as_user(self, address: str, **message: Any) -> dict[str, Any]:
        """The user sends from the Gmail UI (``to``, ``cc``, ``bcc``, ``subject``, ``text``,
        ``attachments``)."""
        return dict(await self._call("POST", f"/mailboxes/{address}/send", message))

    async def reply_as_user(self, address: str, message_id: str, text: str, **extra: Any) -> dict[str, Any]:
        """The user replies in the thread of ``message_id`` (``reply_all``, ``cc``, ``bcc`` optional)."""
        body = {"message_id": message_id, "text": text, **extra}
        return dict(await self._call("POST", f"/mailboxes/{address}/reply", body))

    async def forward_as_user(
        self, address: str, message_id: str, to: list[str], **extra: Any
    ) -> dict[str, Any]:
        """The user forwards ``message_id`` to ``to``."""
        body = {"message_id": message_id, "to": to, **extra}
        return dict(await self._call("POST", f"/mailboxes/{address}/forward", body))

    async def messages(self, address: str, label: str | None = None) -> list[dict[str, Any]]:
        """Message summaries, newest first, optionally only those with ``label`` (e.g. ``SENT``)."""
        path = f"/mailboxes/{address}/messages" + (f"?label={label}" if label else "")
        return list((await self._call("GET", path))["messages"])

    async def message(self, address: str, message_id: str) -> dict[str, Any]:
        """One message summary with ``raw_base64``."""
        return dict(await self._call("GET", f"/mailboxes/{address}/messages/{message_id}"))

    async def threads(self, address: str) -> list[dict[str, Any]]:
        """Every thread with its message ids."""
        return list((await self._call("GET", f"/mailboxes/{address}/threads"))["threads"])

    # credentials
    async def issue_tokens(
        self, address: str, scopes: list[str], client_id: str | None = None
    ) -> dict[str, Any]:
        """A consented grant without the browser: Google's token response including ``refresh_token``."""
        body: dict[str, Any] = {"scopes": scopes}
        if client_id:
            body["client_id"] = client_id
        return dict(await self._call("POST", f"/mailboxes/{address}/tokens", body))

    async def set_consent(
        self, address: str, *, granted_scopes: list[str] | None = None, deny: bool = False
    ) -> None:
        """How the consent screen answers for this user (grant a subset, or deny)."""
        await self._call(
            "POST", f"/mailboxes/{address}/consent", {"granted_scopes": granted_scopes, "deny": deny}
        )

    async def register_client(
        self, client_id: str, client_secret: str, redirect_uris: list[str] | None = None
    ) -> None:
        """Register an OAuth client."""
        body = {"client_id": client_id, "client_secret": client_secret, "redirect_uris": redirect_uris or []}
        await self._call("POST", "/oauth/clients", body)

    async def revoke(self, address: str) -> int:
        """The user removes every app's access; returns the number of grants revoked."""
        return int((await self._call("POST", f"/mailboxes/{address}/revoke"))["revoked_grants"])

    async def change_password(self, address: str) -> int:
        """The user changes the password; grants with Gmail scopes die. Returns how many."""
        return int((await self._call("POST", f"/mailboxes/{address}/password-change"))["revoked_grants"])

    async def expire_history(self, address: str) -> None:
        """Drop all retained history: older ``startHistoryId`` values answer 404."""
        await self._call("POST", f"/mailboxes/{address}/history/expire")

    # faults, notifications, time
    async def add_fault(
        self,
        kind: str = "error",
        *,
        status: int = 503,
        rate: float = 1.0,
        count: int | None = None,
        delay_seconds: float = 0.0,
        path_pattern: str | None = None,
    ) -> dict[str, Any]:
        """Inject faults (``error``, ``slow``, ``timeout``) at ``rate`` or for the next ``count`` calls."""
        body: dict[str, Any] = {
            "kind": kind,
            "status": status,
            "rate": rate,
            "count": count,
            "delay_seconds": delay_seconds,
            "path_pattern": path_pattern,
        }
        return dict(await self._call("POST", "/faults", body))

    async def clear_faults(self, seed: int | None = None) -> None:
        """Remove all fault rules (and optionally reseed)."""
        await self._call("DELETE", "/faults" + (f"?seed={seed}" if seed is not None else ""))

    async def faults(self) -> list[dict[str, Any]]:
        """The fault rules with how often each fired."""
        return list((await self._call("GET", "/faults"))["faults"])

    async def notifications(self) -> list[dict[str, Any]]:
        """Every notification published so far."""
        return list((await self._call("GET", "/notifications"))["notifications"])

    async def outbound(self) -> list[dict[str, Any]]:
        """Messages sent to addresses outside the sandbox (``raw_base64``, ``recipients``,
        ``relay_status``)."""
        return list((await self._call("GET", "/outbound"))["messages"])

    async def add_push_subscription(self, topic: str, endpoint: str, **options: Any) -> dict[str, Any]:
        """Deliver ``topic`` by signed push to ``endpoint``."""
        return dict(
            await self._call("POST", "/push-subscriptions", {"topic": topic, "endpoint": endpoint, **options})
        )

    async def push_subscriptions(self) -> list[dict[str, Any]]:
        """Push subscriptions with their delivery attempts."""
        return list((await self._call("GET", "/push-subscriptions"))["subscriptions"])

    async def sign_push_token(self, audience: str, email: str | None = None) -> str:
        """A token signed like Pub/Sub push's, verifiable against ``/oauth2/v1/certs``."""
        body: dict[str, Any] = {"audience": audience}
        if email:
            body["email"] = email
        return str((await self._call("POST", "/push-token", body))["token"])

    async def advance_clock(self, seconds: float) -> float:
        """Move a manual clock forward; returns the new time."""
        return float((await self._call("POST", "/clock/advance", {"seconds": seconds}))["now"])

    async def reset(self) -> None:
        """Back to the configured start state."""
        await self._call("POST", "/reset")
