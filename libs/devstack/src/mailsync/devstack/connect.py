"""Connecting a mailbox the way a user does: the CRM asks the ingest service for an authorization URL, the
user's browser follows the provider's real OAuth redirect back to the service's callback.

Gmail's consent page (the sandbox auto-approves, choosing the user from `login_hint`) answers with a 302 to
the callback; the Microsoft identity platform answers with a `form_post` page that the browser submits to
the callback. Both helpers return the callback's JSON (the connection, with `change`).
"""

from __future__ import annotations

import ssl
from html.parser import HTMLParser
from typing import Any

import aiohttp


class ConnectError(RuntimeError):
    """A step of the connect flow did not answer as a successful connect does."""


class _FormPost(HTMLParser):
    """The action and hidden fields of a `response_mode=form_post` page."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.action = values.get("action", "")
        elif tag == "input" and values.get("name"):
            self.fields[values["name"]] = values.get("value", "")


async def authorization_url(
    http: aiohttp.ClientSession, service_url: str, path: str, body: dict[str, Any]
) -> str:
    """POST `body` to the service's `path` (authorize or update-email); return `authorization_url`."""
    async with http.post(f"{service_url}{path}", json=body) as response:
        answer = await response.json(content_type=None)
        if response.status != 200:
            raise ConnectError(f"{path} answered {response.status}: {answer}")
    return str(answer["authorization_url"])


async def consent_gmail(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    """The browser at Google's consent page: follow the redirect to the callback; its status and JSON."""
    async with http.get(url, allow_redirects=False) as response:
        if response.status != 302:
            raise ConnectError(f"the consent page answered {response.status}: {await response.text()}")
        callback = response.headers["Location"]
    async with http.get(callback) as response:
        return response.status, dict(await response.json(content_type=None))


async def sign_in_outlook(http: aiohttp.ClientSession, url: str, ca_file: str) -> tuple[int, dict[str, Any]]:
    """The browser at Microsoft's sign-in: post the `form_post` page to the callback; status and JSON."""
    context = ssl.create_default_context(cafile=ca_file)
    async with http.get(url, allow_redirects=False, ssl=context) as response:
        if response.status != 200:
            raise ConnectError(f"the authorize page answered {response.status}: {await response.text()}")
        form = _FormPost()
        form.feed(await response.text())
    if not form.action:
        raise ConnectError("the authorize page has no form to post")
    async with http.post(form.action, data=form.fields) as response:
        return response.status, dict(await response.json(content_type=None))


async def connect_gmail(
    http: aiohttp.ClientSession, ingest_gmail_url: str, subaccount_id: str, user_id: str, address: str
) -> dict[str, Any]:
    """Connect `address` (a Gmail mailbox) for the user in the subaccount; the connection's JSON."""
    url = await authorization_url(
        http,
        ingest_gmail_url,
        "/v1/connections/authorize",
        {"subaccount_id": subaccount_id, "user_id": user_id, "login_hint": address},
    )
    status, body = await consent_gmail(http, url)
    if status not in {200, 201}:
        raise ConnectError(f"the Gmail callback answered {status}: {body}")
    return body


async def connect_outlook(
    http: aiohttp.ClientSession,
    ingest_outlook_url: str,
    subaccount_id: str,
    user_id: str,
    address: str,
    *,
    ca_file: str,
) -> dict[str, Any]:
    """Connect `address` (an Outlook mailbox) for the user in the subaccount; the connection's JSON."""
    url = await authorization_url(
        http,
        ingest_outlook_url,
        "/v1/connections/authorize",
        {"subaccount_id": subaccount_id, "user_id": user_id, "login_hint": address},
    )
    status, body = await sign_in_outlook(http, url, ca_file)
    if status not in {200, 201}:
        raise ConnectError(f"the Outlook callback answered {status}: {body}")
    return body
