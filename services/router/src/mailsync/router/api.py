"""The router's read API: a contact's conversation as filed, for the CRM and the demo.

`GET /v1/subaccounts/{subaccount_id}/contacts/{contact_id}/messages?limit=100&order=asc|desc` answers
`{"subaccount_id", "contact_id", "conversation_id", "messages": [...]}`, messages ordered by `sent_at`.
Only the subaccount named in the path is ever read. When `MAILSYNC_API_TOKEN` is set, requests must carry
`Authorization: Bearer <token>` (401 otherwise).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aiohttp import web

from mailsync.common.http_api import bearer_matches
from mailsync.router.adapters.conversation_store import ConversationStore
from mailsync.router.domain import conversation_id_for

MAX_LIMIT = 500


def add_routes(app: web.Application, conversations: ConversationStore, token: str | None) -> None:
    """Mount the read API on `app`."""

    async def list_messages(request: web.Request) -> web.Response:
        if token is not None and not bearer_matches(request, token):
            return web.json_response({"error": "unauthorized"}, status=401)
        subaccount_id = request.match_info["subaccount_id"]
        contact_id = request.match_info["contact_id"]
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            return web.json_response({"error": "limit must be an integer"}, status=400)
        order = request.query.get("order", "asc")
        if not 1 <= limit <= MAX_LIMIT or order not in {"asc", "desc"}:
            return web.json_response(
                {"error": f"limit must be 1..{MAX_LIMIT} and order asc or desc"}, status=400
            )
        messages = await conversations.list_for_contact(
            subaccount_id, contact_id, limit=limit, newest_first=order == "desc"
        )
        body = {
            "subaccount_id": subaccount_id,
            "contact_id": contact_id,
            "conversation_id": conversation_id_for(subaccount_id, contact_id),
            "messages": [{("message_id" if k == "_id" else k): v for k, v in m.items()} for m in messages],
        }
        return web.json_response(body, dumps=_dumps)

    app.router.add_get("/v1/subaccounts/{subaccount_id}/contacts/{contact_id}/messages", list_messages)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default)


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
