"""HTTP API of ingest-outlook: the connection lifecycle, stored content, the sender's access tokens, webhooks.

See docs/ingest-outlook.md for the full contract. Lifecycle errors are ``{"error": "<code>", "message": ...}``
with the status of the :class:`~mailsync.ingest_outlook.handlers.connections.LifecycleError`; the internal
access-token API answers exactly ``{"error": "<code>"}``.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from aiohttp import web

from mailsync.common.blob_api import add_download_route
from mailsync.common.blobs import BlobStore
from mailsync.common.delivery import TransientError
from mailsync.common.http_api import (
    Handler,
    bearer_matches,
    error_response,
    handled,
    iso_utc,
    json_object,
    optional_str,
    valid_id,
)
from mailsync.ingest_outlook.domain.connections import Connection
from mailsync.ingest_outlook.domain.notifications import MalformedNotificationError, decode_notifications
from mailsync.ingest_outlook.handlers.connections import ConnectionManager, LifecycleError
from mailsync.ingest_outlook.handlers.notifications import Endpoint, NotificationIntake
from mailsync.ingest_outlook.metrics import IngestMetrics

logger = logging.getLogger(__name__)

NOTIFICATIONS_PATH = "/v1/graph/notifications"
LIFECYCLE_PATH = "/v1/graph/lifecycle"
_MAX_NOTIFICATION_BYTES = 1024 * 1024


def add_blob_routes(app: web.Application, blobs: BlobStore, *, api_token: str | None) -> None:
    """Mount ``GET /v1/blobs/{blob_id}``: the content of the `BlobRef`s this service's messages carry."""
    add_download_route(app, blobs, api_token=api_token)


def add_routes(
    app: web.Application,
    manager: ConnectionManager,
    *,
    api_token: str | None,
    internal_token: str | None,
    daily_send_limit: int,
) -> None:
    """Mount the lifecycle and internal routes."""

    def guard(request: web.Request) -> web.Response | None:
        if api_token is not None and not bearer_matches(request, api_token):
            return error_response(401, "unauthorized", "a valid bearer token is required")
        return None

    async def authorize(request: web.Request) -> web.Response:
        if denied := guard(request):
            return denied
        body = await json_object(request)
        subaccount_id, user_id = body.get("subaccount_id"), body.get("user_id")
        if not valid_id(subaccount_id) or not valid_id(user_id):
            return error_response(400, "invalid_request", "subaccount_id and user_id are required strings")
        url = await manager.start_authorization(
            str(subaccount_id), str(user_id), optional_str(body.get("login_hint"))
        )
        return web.json_response({"authorization_url": url})

    async def callback(request: web.Request) -> web.Response:
        fields = dict(await request.post()) if request.method == "POST" else dict(request.query)
        response = {k: v for k, v in fields.items() if isinstance(v, str)}
        connection, change = await manager.complete_authorization(response)
        last_synced_at = (await manager.status(connection.connection_id))[1]
        return _connection_response(
            connection,
            last_synced_at,
            daily_send_limit,
            status=201 if change == "connected" else 200,
            change=change,
        )

    async def status(request: web.Request) -> web.Response:
        if denied := guard(request):
            return denied
        connection, last_synced_at = await manager.status(request.match_info["connection_id"])
        return _connection_response(connection, last_synced_at, daily_send_limit)

    async def update_email(request: web.Request) -> web.Response:
        if denied := guard(request):
            return denied
        body = await json_object(request)
        url = await manager.start_update_email(
            request.match_info["connection_id"], optional_str(body.get("login_hint"))
        )
        return web.json_response({"authorization_url": url})

    async def disconnect(request: web.Request) -> web.Response:
        if denied := guard(request):
            return denied
        connection = await manager.disconnect(request.match_info["connection_id"])
        _, last_synced_at = await manager.status(connection.connection_id)
        return _connection_response(connection, last_synced_at, daily_send_limit)

    async def access_token(request: web.Request) -> web.Response:
        # The sender's contract: error bodies are exactly {"error": "<code>"}.
        if internal_token is None or not bearer_matches(request, internal_token):
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            grant = await manager.access_token(request.match_info["connection_id"])
        except LifecycleError as error:
            return web.json_response({"error": error.code}, status=error.status)
        except TransientError:
            return web.json_response({"error": "provider_unavailable"}, status=503)
        connection = grant.connection
        return web.json_response(
            {
                "connection_id": connection.connection_id,
                "provider": "outlook",
                "mailbox_id": connection.mailbox_id,
                "email_address": connection.email_address,
                "status": connection.status,
                "access_token": grant.token.token,
                "expires_at": iso_utc(grant.token.expires_at),
                "daily_send_limit": daily_send_limit,
            },
            headers={"Cache-Control": "no-store"},
        )

    app.router.add_post("/v1/connections/authorize", handled(authorize))
    app.router.add_post("/v1/oauth/callback", handled(callback))
    app.router.add_get("/v1/oauth/callback", handled(callback))
    app.router.add_get("/v1/connections/{connection_id}", handled(status))
    app.router.add_post("/v1/connections/{connection_id}/update-email", handled(update_email))
    app.router.add_post("/v1/connections/{connection_id}/disconnect", handled(disconnect))
    app.router.add_post("/internal/v1/connections/{connection_id}/access-token", handled(access_token))


def add_webhook_routes(app: web.Application, intake: NotificationIntake, metrics: IngestMetrics) -> None:
    """Mount the change and lifecycle notification endpoints (Graph's `notificationUrl` and
    `lifecycleNotificationUrl`)."""

    def endpoint(kind: Endpoint) -> Handler:
        async def receive(request: web.Request) -> web.Response:
            started = time.perf_counter()
            try:
                return await _receive(request, kind)
            finally:
                metrics.notification_seconds.labels(kind).observe(time.perf_counter() - started)

        return receive

    async def _receive(request: web.Request, kind: Endpoint) -> web.Response:
        token = request.query.get("validationToken")
        if token is not None:
            # Graph's handshake: echo the URL-decoded token as text/plain within 10 s.
            metrics.notifications.count(kind, "validation")
            return web.Response(text=token, content_type="text/plain")
        if (request.content_length or 0) > _MAX_NOTIFICATION_BYTES:
            metrics.notifications.count(kind, "too_large")
            return error_response(413, "too_large", "notification body too large")
        try:
            items = decode_notifications(await request.read())
        except MalformedNotificationError as error:
            metrics.notifications.count(kind, error.reason)
            return error_response(400, error.reason, "not a Graph notification collection")
        try:
            await intake.accept(items, kind)
        except Exception:
            logger.exception("could not publish a notification hint; Graph will redeliver")
            return error_response(503, "unavailable", "try again")
        return web.Response(status=202)

    app.router.add_post(NOTIFICATIONS_PATH, endpoint("change"))
    app.router.add_post(LIFECYCLE_PATH, endpoint("lifecycle"))


def _connection_response(
    connection: Connection,
    last_synced_at: datetime | None,
    daily_send_limit: int,
    *,
    status: int = 200,
    change: str | None = None,
) -> web.Response:
    body: dict[str, Any] = {
        "connection_id": connection.connection_id,
        "subaccount_id": connection.subaccount_id,
        "user_id": connection.user_id,
        "provider": "outlook",
        "mailbox_id": connection.mailbox_id,
        "email_address": connection.email_address,
        "status": connection.status,
        "connected_at": iso_utc(connection.connected_at),
        "last_synced_at": iso_utc(last_synced_at) if last_synced_at else None,
        "daily_send_limit": daily_send_limit,
        "reason": connection.reason,
    }
    if change is not None:
        body["change"] = change
    return web.json_response(body, status=status)
