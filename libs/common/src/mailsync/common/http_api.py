"""Small pieces every service's HTTP API shares: bearer-token checks, error bodies, request parsing.

Error bodies are `{"error": <stable code>, "message": <human text>, ...details}`; clients branch on `error`.
A handler refuses a request by raising `ApiError`; `handled` turns it (and a provider that is down) into that
body. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from mailsync.common.delivery import TransientError

Handler = Callable[[web.Request], Awaitable[web.Response]]

MAX_ID_LENGTH = 256
"""Longest id (subaccount, user, connection) an API accepts."""


class ApiError(Exception):
    """A refused request: HTTP `status`, stable error `code`, human `message`, extra body fields."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def handled(handler: Handler) -> Handler:
    """`handler`, answering an `ApiError` with its error body and a provider failure with 503."""

    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except ApiError as error:
            return error_response(error.status, error.code, error.message, **error.details)
        except TransientError as error:
            return error_response(503, "provider_unavailable", str(error))

    return wrapped


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body (`{}` without a body); 400 `invalid_json` for anything else."""
    if not request.can_read_body:
        return {}
    try:
        value = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the body must be a JSON object") from None
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return value


def valid_id(value: Any) -> bool:
    """A non-empty string id of at most `MAX_ID_LENGTH` characters."""
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH


def optional_str(value: Any) -> str | None:
    """`value` if it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def iso_utc(value: datetime) -> str:
    """An aware datetime as ISO 8601 with `Z` for UTC."""
    return value.isoformat().replace("+00:00", "Z")


def bearer_matches(request: web.Request, token: str) -> bool:
    """Whether the request carries `Authorization: Bearer <token>` (constant-time comparison)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def error_response(status: int, code: str, message: str, **details: Any) -> web.Response:
    """A JSON error body with a stable code."""
    return web.json_response({"error": code, "message": message, **details}, status=status)
