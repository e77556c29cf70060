"""Google's JSON error envelope and the exact errors the Gmail API and Google OAuth return.

Gmail answers every failure with ``{"error": {"code", "message", "errors": [{"message", "domain", "reason"}],
"status"}}`` (handle-errors guide; ``status`` is the google.rpc code name that newer responses carry).
googleapiclient retries 403 only when the reason is ``userRateLimitExceeded`` or ``rateLimitExceeded``, so the
reasons below are load-bearing, not decoration.

The OAuth endpoints use a different, flat shape: ``{"error": "invalid_grant", "error_description": "..."}``
(RFC 6749 section 5.2), which google-auth turns into ``RefreshError``.
"""

from __future__ import annotations

from typing import Any

_STATUS_BY_CODE = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class GoogleApiError(Exception):
    """A Gmail API failure, rendered as Google's error envelope with ``code`` as the HTTP status."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str,
        *,
        domain: str = "global",
        status: str | None = None,
        location: str | None = None,
        location_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.status = status or _STATUS_BY_CODE.get(code, "UNKNOWN")
        self.location = location
        self.location_type = location_type
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """Return the JSON body Google sends for this error."""
        detail: dict[str, Any] = {"message": self.message, "domain": self.domain, "reason": self.reason}
        if self.location is not None:
            detail["location"] = self.location
        if self.location_type is not None:
            detail["locationType"] = self.location_type
        return {
            "error": {"code": self.code, "message": self.message, "errors": [detail], "status": self.status}
        }


def not_found() -> GoogleApiError:
    """404 for an unknown message, thread, label, attachment or a stale ``startHistoryId``."""
    return GoogleApiError(404, "Requested entity was not found.", "notFound")


def invalid_argument(message: str) -> GoogleApiError:
    """400 ``invalidArgument`` (e.g. a malformed id or parameter value)."""
    return GoogleApiError(400, message, "invalidArgument")


def bad_request(message: str) -> GoogleApiError:
    """400 ``badRequest``, the reason the handle-errors guide shows for invalid requests and payloads."""
    return GoogleApiError(400, message, "badRequest", status="INVALID_ARGUMENT")


def failed_precondition(message: str) -> GoogleApiError:
    """400 ``failedPrecondition`` (e.g. the mailbox cannot accept the request in its current state)."""
    return GoogleApiError(400, message, "failedPrecondition", status="FAILED_PRECONDITION")


def invalid_credentials() -> GoogleApiError:
    """401 for a missing, unknown, expired or revoked access token (with Google's WWW-Authenticate header)."""
    return GoogleApiError(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
        "other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project.",
        "authError",
        location="Authorization",
        location_type="header",
        headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'},
    )


def insufficient_scopes() -> GoogleApiError:
    """403 when the token's scopes do not include any scope the method accepts."""
    return GoogleApiError(
        403,
        "Request had insufficient authentication scopes.",
        "insufficientPermissions",
        headers={
            "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="insufficient_scope"'
        },
    )


def metadata_scope_forbids(what: str) -> GoogleApiError:
    """403 when a ``gmail.metadata``-only token asks for bodies (``format=full/raw``) or uses ``q``."""
    return GoogleApiError(403, what, "forbidden")


def delegation_denied(user_id: str) -> GoogleApiError:
    """403 when ``userId`` names a mailbox other than the token's user."""
    return GoogleApiError(403, f"Delegation denied for {user_id}", "forbidden")


def user_rate_limit_exceeded(retry_after_seconds: int) -> GoogleApiError:
    """403 ``userRateLimitExceeded``: the per-user quota (15,000 units per minute) is used up."""
    return GoogleApiError(
        403,
        "User Rate Limit Exceeded",
        "userRateLimitExceeded",
        domain="usageLimits",
        headers={"Retry-After": str(retry_after_seconds)},
    )


def too_many_concurrent_requests(retry_after_seconds: int = 1) -> GoogleApiError:
    """429 ``rateLimitExceeded``: the per-user concurrent request cap."""
    return GoogleApiError(
        429,
        "Too many concurrent requests for user",
        "rateLimitExceeded",
        domain="usageLimits",
        headers={"Retry-After": str(retry_after_seconds)},
    )


def rate_limit_exceeded(retry_after_seconds: int = 1) -> GoogleApiError:
    """429 ``rateLimitExceeded`` "Rate Limit Exceeded", the generic throttling answer (used by fault
    injection)."""
    return GoogleApiError(
        429,
        "Rate Limit Exceeded",
        "rateLimitExceeded",
        domain="usageLimits",
        headers={"Retry-After": str(retry_after_seconds)},
    )


def sending_limit_exceeded(retry_at_rfc3339: str, retry_after_seconds: int) -> GoogleApiError:
    """429 for the daily sending limit: "User-rate limit exceeded" with the time to retry and "(Mail
    sending)"."""
    message = f"User-rate limit exceeded.  Retry after {retry_at_rfc3339} (Mail sending)"
    return GoogleApiError(
        429,
        message,
        "rateLimitExceeded",
        domain="usageLimits",
        headers={"Retry-After": str(retry_after_seconds)},
    )


def server_error(code: int) -> GoogleApiError:
    """A 5xx with Google's ``backendError`` body."""
    messages = {
        500: "Internal error encountered.",
        502: "Bad Gateway",
        503: "The service is currently unavailable.",
        504: "Deadline exceeded.",
    }
    return GoogleApiError(code, messages.get(code, "Backend Error"), "backendError")


class OAuthError(Exception):
    """A token-endpoint failure, rendered as ``{"error", "error_description"}`` with HTTP ``status``."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        """Return the flat OAuth error body."""
        return {"error": self.error, "error_description": self.description}


def token_expired_or_revoked() -> OAuthError:
    """``invalid_grant`` for a refresh token that was revoked, invalidated by a password change, or
    unknown."""
    return OAuthError("invalid_grant", "Token has been expired or revoked.")
