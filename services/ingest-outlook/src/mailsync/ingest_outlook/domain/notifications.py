"""Decoding Graph change and lifecycle notifications (the webhook's request bodies).

Graph sends `{"value": [changeNotification, ...]}`; one POST may batch several subscriptions. A body that is
not that shape is malformed and refused (400): Graph itself never sends one, so it is a forgery or a bug.
Items are checked one by one against the stored subscriptions by the handler (`subscriptionId` and
`clientState`); Graph has no event id, so duplicates are expected and harmless (the notification is a hint).
"""

from __future__ import annotations

import json
from dataclasses import dataclass


class MalformedNotificationError(ValueError):
    """The body is not a Graph notification collection; `reason` is a short metric label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Notification:
    """One `changeNotification` (change or lifecycle), reduced to what mailsync uses."""

    subscription_id: str
    client_state: str | None
    change_type: str | None
    lifecycle_event: str | None
    resource: str | None


def decode_notifications(body: bytes) -> list[Notification]:
    """Parse a notification POST body; raises `MalformedNotificationError`."""
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MalformedNotificationError("body_not_json") from None
    if not isinstance(document, dict) or not isinstance(document.get("value"), list):
        raise MalformedNotificationError("missing_value")
    items: list[Notification] = []
    for item in document["value"]:
        if not isinstance(item, dict):
            raise MalformedNotificationError("item_not_object")
        subscription_id = item.get("subscriptionId")
        if not isinstance(subscription_id, str) or not subscription_id or len(subscription_id) > 256:
            raise MalformedNotificationError("missing_subscription_id")
        items.append(
            Notification(
                subscription_id=subscription_id,
                client_state=_optional(item.get("clientState")),
                change_type=_optional(item.get("changeType")),
                lifecycle_event=_optional(item.get("lifecycleEvent")),
                resource=_optional(item.get("resource")),
            )
        )
    if not items:
        raise MalformedNotificationError("empty_value")
    return items


def _optional(value: object) -> str | None:
    return value[:2048] if isinstance(value, str) else None
