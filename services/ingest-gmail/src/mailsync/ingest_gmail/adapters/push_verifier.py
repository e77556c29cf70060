"""Verification of Pub/Sub push requests: the OIDC token Pub/Sub signs (``Authorization: Bearer <jwt>``).

google-auth's ``id_token.verify_token`` checks the RS256 signature against the configured certs URL
(Google's ``https://www.googleapis.com/oauth2/v1/certs`` in production, the sandbox's in tests) and the
expiry; it does not check ``iss``, so this module does, together with ``aud`` (the configured audience) and
the push service account's ``email``/``email_verified``. Certs are cached for five minutes, so a push costs
no outbound request once warm; verification runs in a worker thread and never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

import google.auth.exceptions
import google.auth.transport
import google.auth.transport.requests
from google.oauth2 import id_token

from mailsync.ingest_gmail.domain.notifications import check_claims

_CERTS_TTL_SECONDS = 300.0


@dataclass(frozen=True)
class PushRejection:
    """Why a push was refused: an HTTP status and a metric reason."""

    status: int
    reason: str


class _CachingRequest(google.auth.transport.Request):
    """google-auth transport that caches successful GETs (the certs) for a few minutes."""

    def __init__(self, timeout_seconds: float) -> None:
        self._inner = google.auth.transport.requests.Request()
        self._timeout = timeout_seconds
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: Any = None,  # noqa: ARG002 - replaced by the verifier's own timeout
        **kwargs: Any,
    ) -> Any:
        if method == "GET":
            with self._lock:
                cached = self._cache.get(url)
            if cached is not None and cached[0] > time.monotonic():
                return cached[1]
        response = self._inner(
            url, method=method, body=body, headers=headers, timeout=self._timeout, **kwargs
        )
        if method == "GET" and response.status == 200:
            with self._lock:
                self._cache[url] = (time.monotonic() + _CERTS_TTL_SECONDS, response)
        return response


class PushVerifier:
    """Verifies push tokens for one audience and (optionally) one push service account."""

    def __init__(
        self, *, audience: str, certs_url: str, service_account: str | None, timeout_seconds: float = 5.0
    ) -> None:
        self._audience = audience
        self._certs_url = certs_url
        self._service_account = service_account
        self._request = _CachingRequest(timeout_seconds)

    async def verify(self, authorization: str | None) -> PushRejection | None:
        """None when the request is authentic, else the rejection (401 bad token, 403 wrong party)."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return PushRejection(401, "missing_token")
        try:
            claims = await asyncio.to_thread(self._verify, token.strip())
        except google.auth.exceptions.TransportError:
            return PushRejection(503, "certs_unavailable")
        except (google.auth.exceptions.GoogleAuthError, ValueError):
            return PushRejection(401, "invalid_token")
        if claims.get("aud") != self._audience:
            return PushRejection(403, "wrong_audience")
        reason = check_claims(claims, service_account=self._service_account)
        return PushRejection(403, reason) if reason else None

    def _verify(self, token: str) -> dict[str, Any]:
        # audience=None: the signature and expiry are checked here, the audience by the caller (403, not 401).
        return dict(id_token.verify_token(token, self._request, audience=None, certs_url=self._certs_url))
