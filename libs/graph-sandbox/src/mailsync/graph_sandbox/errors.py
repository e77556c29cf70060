"""Graph's error responses.

Every Graph failure has the body ``{"error": {"code", "message", "innerError": {"date", "request-id",
"client-request-id"}}}`` (https://learn.microsoft.com/graph/errors). ``code`` is the machine-readable part;
clients branch on it (``ErrorItemNotFound``, ``syncStateNotFound``, ``ApplicationThrottled`` ...), so the
sandbox uses the codes the real service sends for the same situation.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mailsync.graph_sandbox.clock import to_graph_timestamp


class GraphError(Exception):
    """A failure answered with Graph's error body.

    ``headers`` are added to the response (``Retry-After`` on throttling, ``Location`` on a 410 resync).
    """

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_body(
    code: str, message: str, *, request_id: str, client_request_id: str, now: dt.datetime
) -> dict[str, Any]:
    """Build Graph's JSON error envelope."""
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": to_graph_timestamp(now),
                "request-id": request_id,
                "client-request-id": client_request_id,
            },
        }
    }


def not_found() -> GraphError:
    """The error Exchange returns for an unknown message, folder or attachment id."""
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def access_denied() -> GraphError:
    """The error for a token lacking the permission an operation needs, or another user's mailbox."""
    return GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")


def bad_request(message: str, code: str = "BadRequest") -> GraphError:
    """A malformed request."""
    return GraphError(400, code, message)
