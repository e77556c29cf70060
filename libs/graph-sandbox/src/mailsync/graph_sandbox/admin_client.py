"""An async client for the sandbox's ``/_admin/`` API, for tests and the demo.

Each method maps to one admin endpoint (see ``admin_routes``) and returns the decoded JSON. A non-2xx answer
raises :class:`AdminError` carrying the status and Graph-style error body. The client is idempotent only where
the endpoint is (reads, ``reset``, ``clear_faults``); sends and deliveries create new mail every time.
"""

from __future__ import annotations

import base64
import ssl
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp


class AdminError(Exception):
    """An admin call that didn't succeed."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"admin call failed with {status}: {body}")
        self.status = status
        self.body = body


def attachment(name: str, content: bytes, content_type: str = "application/octet-stream") -> dict[str, str]:
    """An attachment argument for ``deliver_inbound`` and ``send`` of :class:`GraphSandboxAdmin`."""
    return {"name": name, "content_type": content_type, "content_base64": base64.b64encode(content).decode()}


class GraphSandboxAdmin:
    """Drives one sandbox. ``ca_file`` is needed when ``base_url`` is https."""

    def __init__(self, base_url: str, *, ca_file: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._ssl: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> GraphSandboxAdmin:
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.request(
            method, f"{self.base_url}/_admin/{path}", json=body, params=params, ssl=self._ssl
        ) as response:
            text = await response.text()
            payload: Any = None
            if text:
                payload = await response.json(content_type=None)
            if response.status >= 300:
                raise AdminError(response.status, payload)
            return payload

    @staticmethod
    def _user(user: str) -> str:
        return quote(user, safe="")

    # tenant and identity
    async def reset(self) -> None:
        """Empty the tenant."""
        await self._call("POST", "reset")

    async def info(self) -> dict[str, Any]:
        """Tenant id, default client credentials and the CA file."""
        result: dict[str, Any] = await self._call("GET", "info")
        return result

    async def create_mailbox(self, address: str, display_name: str = "") -> dict[str, Any]:
        """Create a user and mailbox; returns ``{id, address, display_name, folders}``."""
        result: dict[str, Any] = await self._call(
            "POST", "mailboxes", {"address": address, "display_name": display_name}
        )
        return result

    async def mailboxes(self) -> list[dict[str, Any]]:
        """Every mailbox, in creation order."""
        return list((await self._call("GET", "mailboxes"))["value"])

    async def register_app(
        self, client_id: str, client_secret: str, redirect_uris: list[str] | None = None
    ) -> None:
        """Register a confidential client."""
        await self._call(
            "POST",
            "apps",
            {"client_id": client_id, "client_secret": client_secret, "redirect_uris": redirect_uris or []},
        )

    async def mint_tokens(self, user: str, scopes: list[str], client_id: str | None = None) -> dict[str, Any]:
        """A token response for ``user`` without the browser flow."""
        body: dict[str, Any] = {"user": user, "scopes": scopes}
        if client_id is not None:
            body["client_id"] = client_id
        result: dict[str, Any] = await self._call("POST", "tokens", body)
        return result

    async def set_default_login(self, user: str | None) -> None:
        """Who signs in at the authorize endpoint when no login_hint is sent."""
        await self._call("POST", "identity/default-login", {"user": user})

    async def limit_consent(self, user: str, scopes: list[str] | None) -> None:
        """Make the consent screen grant only ``scopes`` (None: everything asked)."""
        await self._call("POST", f"mailboxes/{self._user(user)}/consent", {"scopes": scopes})

    async def revoke(self, user: str) -> list[str]:
        """Revoke sessions / change password; returns subscriptions sent ``reauthorizationRequired``."""
        result = await self._call("POST", f"mailboxes/{self._user(user)}/revoke")
        return list(result["reauthorization_required"])

    # mail
    async def deliver_inbound(
        self,
        user: str,
        *,
        sender: str,
        subject: str = "",
        body: str = "",
        in_reply_to: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Mail from an outside ``sender`` arrives in ``user``'s Inbox; ``in_reply_to`` is a message id."""
        payload: dict[str, Any] = {"from": sender, "body": body, **extra}
        if subject or in_reply_to is None:
            payload["subject"] = subject
        if in_reply_to is not None:
            payload["in_reply_to"] = in_reply_to
        result: dict[str, Any] = await self._call("POST", f"mailboxes/{self._user(user)}/inbound", payload)
        return result

    async def send(
        self, user: str, *, to: list[str], subject: str = "", body: str = "", **extra: Any
    ) -> dict[str, Any]:
        """The user sends a new mail from Outlook; returns the Sent Items copy."""
        payload = {"to": to, "subject": subject, "body": body, **extra}
        result: dict[str, Any] = await self._call("POST", f"mailboxes/{self._user(user)}/send", payload)
        return result

    async def reply(
        self,
        user: str,
        message_id: str,
        comment: str = "",
        *,
        reply_all: bool = False,
        cc: list[str] | None = None,
        bcc: list[str] | None = None,
    ) -> dict[str, Any]:
        """The user replies in Outlook; returns the sent reply."""
        action = "reply-all" if reply_all else "reply"
        result: dict[str, Any] = await self._call(
            "POST",
            f"mailboxes/{self._user(user)}/messages/{quote(message_id, safe='')}/{action}",
            {"comment": comment, "cc": cc or [], "bcc": bcc or []},
        )
        return result

    async def forward(self, user: str, message_id: str, to: list[str], comment: str = "") -> dict[str, Any]:
        """The user forwards a message in Outlook; returns the sent forward."""
        result: dict[str, Any] = await self._call(
            "POST",
            f"mailboxes/{self._user(user)}/messages/{quote(message_id, safe='')}/forward",
            {"to": to, "comment": comment},
        )
        return result

    async def update_message(
        self, user: str, message_id: str, *, is_read: bool | None = None, move_to: str | None = None
    ) -> dict[str, Any]:
        """The user marks a message read/unread or moves it."""
        body: dict[str, Any] = {}
        if is_read is not None:
            body["is_read"] = is_read
        if move_to is not None:
            body["move_to"] = move_to
        result: dict[str, Any] = await self._call(
            "PATCH", f"mailboxes/{self._user(user)}/messages/{quote(message_id, safe='')}", body
        )
        return result

    async def delete_message(self, user: str, message_id: str, *, hard: bool = False) -> None:
        """The user deletes a message (to Deleted Items, or for good)."""
        await self._call(
            "DELETE",
            f"mailboxes/{self._user(user)}/messages/{quote(message_id, safe='')}",
            params={"hard": "true"} if hard else None,
        )

    async def folder(self, user: str, folder: str) -> list[dict[str, Any]]:
        """A folder's messages (e.g. ``inbox``, ``sentitems``), newest first, with headers."""
        result = await self._call(
            "GET", f"mailboxes/{self._user(user)}/folders/{quote(folder, safe='')}/messages"
        )
        return list(result["value"])

    async def message(self, user: str, message_id: str) -> dict[str, Any]:
        """One message with headers and its folder name."""
        result: dict[str, Any] = await self._call(
            "GET", f"mailboxes/{self._user(user)}/messages/{quote(message_id, safe='')}"
        )
        return result

    async def conversation(self, user: str, conversation_id: str) -> list[dict[str, Any]]:
        """A conversation's messages, oldest first."""
        result = await self._call(
            "GET", f"mailboxes/{self._user(user)}/conversations/{quote(conversation_id, safe='')}"
        )
        return list(result["value"])

    async def external_mail(self) -> list[dict[str, Any]]:
        """Mail that left the tenant."""
        result = await self._call("GET", "external")
        return list(result["value"])

    # subscriptions, notifications, delta
    async def subscriptions(self) -> list[dict[str, Any]]:
        """Every active subscription."""
        return list((await self._call("GET", "subscriptions"))["value"])

    async def lifecycle(self, subscription_id: str, event: str) -> None:
        """Send ``reauthorizationRequired``, ``subscriptionRemoved`` (removes it) or ``missed``."""
        await self._call("POST", f"subscriptions/{subscription_id}/lifecycle", {"event": event})

    async def notifications(self) -> dict[str, Any]:
        """Delivery attempts and pending deliveries."""
        result: dict[str, Any] = await self._call("GET", "notifications")
        return result

    async def flush_notifications(self) -> int:
        """Attempt every due delivery now."""
        return int((await self._call("POST", "notifications/flush"))["attempted"])

    async def expire_delta(self, *, token: str | None = None, user: str | None = None) -> int:
        """Evict one delta/skip token or all of a user's; returns how many."""
        body = {"token": token} if token is not None else {"user": user}
        return int((await self._call("POST", "delta/expire", body))["expired"])

    async def require_resync(self, user: str) -> None:
        """Make the user's delta tokens answer 410 ``resyncRequired``."""
        await self._call("POST", "delta/resync", {"user": user})

    # faults and time
    async def add_fault(self, kind: str, **spec: Any) -> dict[str, Any]:
        """Add a fault rule (``error``, ``throttle``, ``timeout``, ``slow``); see the ``faults`` module."""
        result: dict[str, Any] = await self._call("POST", "faults", {"kind": kind, **spec})
        return result

    async def faults(self) -> list[dict[str, Any]]:
        """Active fault rules."""
        return list((await self._call("GET", "faults"))["value"])

    async def clear_faults(self) -> None:
        """Remove every fault rule."""
        await self._call("DELETE", "faults")

    async def advance_clock(self, seconds: float) -> str:
        """Move a manual clock forward; returns the new time."""
        return str((await self._call("POST", "clock/advance", {"seconds": seconds}))["now"])
