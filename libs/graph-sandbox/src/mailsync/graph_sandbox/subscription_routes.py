"""``/v1.0/subscriptions``: create (with the validation handshake), read, renew, reauthorize, delete.

Creation validates the body (see ``subscriptions``), then runs the validation handshake against
``notificationUrl`` and, when given, ``lifecycleNotificationUrl``, synchronously, before answering. A failed
handshake is the documented 400 ``InvalidRequest`` "Subscription validation request failed. Notification
endpoint must respond with 200 OK to validation request." Only the app that created a subscription can see or
change it (others get 404, as Graph hides them).
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from mailsync.graph_sandbox.errors import GraphError, bad_request
from mailsync.graph_sandbox.notifications import validate_endpoint
from mailsync.graph_sandbox.responses import (
    READ_SCOPES,
    empty_response,
    grant_of,
    graph_base,
    json_body,
    json_response,
    require_scope,
    sandbox_of,
)
from mailsync.graph_sandbox.subscriptions import Subscription, expiration_within_limits, parse_create_request

OUTBOUND_SESSION_KEY = web.AppKey("outbound_session", aiohttp.ClientSession)


def _entity(request: web.Request, subscription: Subscription) -> dict[str, object]:
    return {
        "@odata.context": f"{graph_base(request)}/$metadata#subscriptions/$entity",
        **subscription.to_json(),
    }


def _owned(request: web.Request) -> Subscription:
    subscription = sandbox_of(request).subscriptions.get(request.match_info["subscription"])
    if subscription.application_id != grant_of(request).client_id:
        raise GraphError(404, "ResourceNotFound", "The object was not found.")
    return subscription


async def create_subscription(request: web.Request) -> web.Response:
    """``POST /subscriptions`` (201)."""
    require_scope(request, READ_SCOPES)
    sandbox = sandbox_of(request)
    grant = grant_of(request)
    subscription_request = parse_create_request(
        await json_body(request),
        directory=sandbox.directory,
        signed_in_user=grant.user_id,
        now=sandbox.now(),
        allow_http=sandbox.config.allow_http_notification_urls,
    )
    session = request.app[OUTBOUND_SESSION_KEY]
    urls = [subscription_request.notification_url]
    if subscription_request.lifecycle_notification_url is not None:
        urls.append(subscription_request.lifecycle_notification_url)
    for url in urls:
        failure = await validate_endpoint(session, url, sandbox.config.delivery.validation_timeout_s)
        if failure is not None:
            raise GraphError(
                400,
                "InvalidRequest",
                "Subscription validation request failed. Notification endpoint must respond with 200 OK to "
                "validation request.",
                headers={"x-sandbox-validation-failure": failure},
            )
    subscription = sandbox.subscriptions.add(
        subscription_request, application_id=grant.client_id, creator_id=grant.user_id
    )
    return json_response(_entity(request, subscription), status=201)


async def list_subscriptions(request: web.Request) -> web.Response:
    """``GET /subscriptions``: this app's active subscriptions."""
    sandbox = sandbox_of(request)
    app_id = grant_of(request).client_id
    return json_response(
        {
            "@odata.context": f"{graph_base(request)}/$metadata#subscriptions",
            "value": [s.to_json() for s in sandbox.subscriptions.active() if s.application_id == app_id],
        }
    )


async def get_subscription(request: web.Request) -> web.Response:
    """``GET /subscriptions/{id}``."""
    return json_response(_entity(request, _owned(request)))


async def renew_subscription(request: web.Request) -> web.Response:
    """``PATCH /subscriptions/{id}`` ``{"expirationDateTime"}`` (200); ``lifecycleNotificationUrl``: 400."""
    subscription = _owned(request)
    payload = await json_body(request)
    if not isinstance(payload, dict):
        raise bad_request("The request body must be an object.", "InvalidRequest")
    if "lifecycleNotificationUrl" in payload:
        raise bad_request(
            "lifecycleNotificationUrl cannot be updated; delete the subscription and create a new one.",
            "InvalidRequest",
        )
    unknown = set(payload) - {"expirationDateTime", "@odata.type"}
    if unknown:
        raise bad_request(f"Unsupported update of '{sorted(unknown)[0]}'.", "InvalidRequest")
    subscription.expiration = expiration_within_limits(
        payload.get("expirationDateTime"), sandbox_of(request).now()
    )
    return json_response(_entity(request, subscription))


async def reauthorize_subscription(request: web.Request) -> web.Response:
    """``POST /subscriptions/{id}/reauthorize`` (204): confirms the app still has access."""
    _owned(request)
    return empty_response(204)


async def delete_subscription(request: web.Request) -> web.Response:
    """``DELETE /subscriptions/{id}`` (204)."""
    subscription = _owned(request)
    sandbox_of(request).subscriptions.remove(subscription.id)
    return empty_response(204)


def add_routes(app: web.Application) -> None:
    """Mount the subscription endpoints."""
    app.router.add_post("/v1.0/subscriptions", create_subscription)
    app.router.add_get("/v1.0/subscriptions", list_subscriptions)
    app.router.add_get("/v1.0/subscriptions/{subscription}", get_subscription)
    app.router.add_patch("/v1.0/subscriptions/{subscription}", renew_subscription)
    app.router.add_delete("/v1.0/subscriptions/{subscription}", delete_subscription)
    app.router.add_post("/v1.0/subscriptions/{subscription}/reauthorize", reauthorize_subscription)
