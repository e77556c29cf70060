"""Small pieces every service's HTTP API shares: bearer-token checks and error bodies.

Error bodies are `{"error": <stable code>, "message": <human text>, ...details}`; clients branch on `error`.
Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web


def bearer_matches(request: web.Request, token: str) -> bool:
    """Whether the request carries `Authorization: Bearer <token>` (constant-time comparison)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def error_response(status: int, code: str, message: str, **details: Any) -> web.Response:
    """A JSON error body with a stable code."""
    return web.json_response({"error": code, "message": message, **details}, status=status)
