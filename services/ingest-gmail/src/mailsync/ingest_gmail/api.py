"""HTTP API of ingest-gmail: connection lifecycle, stored content, the sender's access tokens, Pub/Sub push.

See docs/ingest-gmail.md for the full contract. Errors are ``{"error": "<code>", "message": ...}`` with the
status of the :class:`~mailsync.ingest_gmail.handlers.connections.LifecycleError` raised.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from aiohttp import web

from mailsync.common.blob_api import add_download_route
from mailsync.common.blobs import BlobStore
from mailsync.common.delivery import TransientError
from mailsync.common.http_api import (
    bearer_matches,
    error_response,
    handled,
    iso_utc,
    json_object,
    optional_str,
    valid_id,
)
from mailsync.ingest_gmail.adapters.push_verifier import PushVerifier
from mailsync.ingest_gmail.domain.connections import Connection
from mailsync.ingest_gmail.domain.notifications import MalformedNotificationError, decode_push_envelope
from mailsync.ingest_gmail.handlers.connections import ConnectionManager, LifecycleError
from mailsync.ingest_gmail.handlers.notifications import NotificationIntake
from mailsync.ingest_gmail.metrics import PUSH_ENDPOINT, IngestMetrics

logger = logging.getLogger(__name__)


def add_blob_routes(app: web.Application, blobs: BlobStore, *, api_token: str | None) -> None:
    """Mount ``GET /v1/blobs/{blob_id}``: the content of the `BlobRef`s this service's messages carry."""
    add_download_route(app, blobs, api_token=api_token)


def add_routes(
    app: web.Application,
    manager: ConnectionManager,
    *,
    api_token: str | None,
    internal_token: str | None,
) -> None:
    """Mount the lifecycle and internal routes."""

    def guard(token: str | None, request: web.Request, *, required: bool) -> web.Response | None:
        if token is None and not required:
            return None
        if token is None or not bearer_matches(request, token):
            return error_response(401, "unauthorized", "a valid bearer token is required")
        return None

    async def authorize(request: web.Request) -> web.Response:
        if denied := guard(api_token, request, required=False):
            return denied
        body = await json_object(request)
        subaccount_id, user_id = body.get("subaccount_id"), body.get("user_id")
        if not valid_id(subaccount_id) or not valid_id(user_id):
            return error_response(400, "invalid_request", "subaccount_id and user_id are required strings")
        limit = body.get("daily_send_limit")
        if limit is not None and not isinstance(limit, int):
            return error_response(400, "invalid_daily_send_limit", "daily_send_limit must be 500 or 2000")
        url = await manager.start_authorization(
            subaccount_id=str(subaccount_id),
            user_id=str(user_id),
            daily_send_limit=limit,
            login_hint=optional_str(body.get("login_hint")),
        )
        return web.json_response({"authorization_url": url})

    async def callback(request: web.Request) -> web.Response:
        query = request.query
        connection, change = await manager.complete_authorization(
            state=query.get("state"), code=query.get("code"), error=query.get("error")
        )
        status = 201 if change == "connected" else 200
        return _connection_response(connection, None, status=status, change=change)

    async def status(request: web.Request) -> web.Response:
        if denied := guard(api_token, request, required=False):
            return denied
        connection, last_synced_at = await manager.status(request.match_info["connection_id"])
        return _connection_response(connection, last_synced_at)

    async def update_email(request: web.Request) -> web.Response:
        if denied := guard(api_token, request, required=False):
            return denied
        body = await json_object(request)
        url = await manager.start_update_email(
            request.match_info["connection_id"], optional_str(body.get("login_hint"))
        )
        return web.json_response({"authorization_url": url})

    async def disconnect(request: web.Request) -> web.Response:
        if denied := guard(api_token, request, required=False):
            return denied
        connection = await manager.disconnect(request.match_info["connection_id"])
        _, last_synced_at = await manager.status(connection.connection_id)
        return _connection_response(connection, last_synced_at)

    async def set_limit(request: web.Request) -> web.Response:
        if denied := guard(internal_token, request, required=True):
            return denied
        body = await json_object(request)
        limit = body.get("daily_send_limit")
        if not isinstance(limit, int):
            return error_response(400, "invalid_daily_send_limit", "daily_send_limit must be 500 or 2000")
        connection = await manager.set_daily_send_limit(request.match_info["connection_id"], limit)
        _, last_synced_at = await manager.status(connection.connection_id)
        return _connection_response(connection, last_synced_at)

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
                "provider": "gmail",
                "mailbox_id": connection.mailbox_id,
                "email_address": connection.email_address,
                "status": connection.status,
                "access_token": grant.access_token,
                "expires_at": iso_utc(grant.expires_at),
                "daily_send_limit": connection.daily_send_limit,
            },
            headers={"Cache-Control": "no-store"},
        )

    app.router.add_post("/v1/connections/authorize", handled(authorize))
    app.router.add_get("/v1/oauth/callback", handled(callback))
    app.router.add_get("/v1/connections/{connection_id}", handled(status))
    app.router.add_post("/v1/connections/{connection_id}/update-email", handled(update_email))
    app.router.add_post("/v1/connections/{connection_id}/disconnect", handled(disconnect))
    app.router.add_put("/v1/connections/{connection_id}/daily-send-limit", handled(set_limit))
    app.router.add_post("/internal/v1/connections/{connection_id}/access-token", handled(access_token))


def add_push_route(
    app: web.Application, verifier: PushVerifier, intake: NotificationIntake, metrics: IngestMetrics
) -> None:
    """Mount ``POST /v1/pubsub/push``: verify, decode, publish a hint, answer 204 (Pub/Sub's ack).

    Every push is counted as accepted or rejected (by reason) and timed.
    """

    async def push(request: web.Request) -> web.Response:
        with metrics.push_seconds.labels(PUSH_ENDPOINT).time():
            return await answer(request)

    async def answer(request: web.Request) -> web.Response:
        rejection = await verifier.verify(request.headers.get("Authorization"))
        if rejection is not None:
            metrics.push_rejected.labels(rejection.reason).inc()
            return error_response(rejection.status, rejection.reason, "push request refused")
        try:
            notification = decode_push_envelope(await request.read())
        except MalformedNotificationError as error:
            metrics.push_rejected.labels(error.reason).inc()
            return error_response(400, error.reason, "malformed Pub/Sub push body")
        try:
            await intake.accept(notification, "push")
        except Exception:
            logger.exception("could not publish a hint; Pub/Sub will redeliver")
            metrics.push_rejected.labels("unavailable").inc()
            return error_response(503, "unavailable", "try again")
        metrics.push_accepted.inc()
        return web.Response(status=204)

    app.router.add_post("/v1/pubsub/push", push)


def _connection_response(
    connection: Connection, last_synced_at: datetime | None, *, status: int = 200, change: str | None = None
) -> web.Response:
    body: dict[str, Any] = {
        "connection_id": connection.connection_id,
        "subaccount_id": connection.subaccount_id,
        "user_id": connection.user_id,
        "provider": "gmail",
        "mailbox_id": connection.mailbox_id,
        "email_address": connection.email_address,
        "status": connection.status,
        "connected_at": iso_utc(connection.connected_at),
        "last_synced_at": iso_utc(last_synced_at) if last_synced_at else None,
        "daily_send_limit": connection.daily_send_limit,
        "reason": connection.reason,
    }
    if change is not None:
        body["change"] = change
    return web.json_response(body, status=status)
