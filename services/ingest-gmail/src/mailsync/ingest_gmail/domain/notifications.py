"""Gmail's Pub/Sub notification: ``{"emailAddress", "historyId"}`` in a push envelope or a pulled message.

The notification carries no content and is only a hint; the worker reads history from its own stored cursor.
Real deliveries carry ``historyId`` as a number although the guide shows a string: both are accepted.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})


class MalformedNotificationError(ValueError):
    """The notification cannot be read; ``reason`` is a short metric label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class GmailNotification:
    """A decoded notification."""

    email_address: str
    history_id: int


def decode_data(data: bytes) -> GmailNotification:
    """Decode the notification's data (UTF-8 JSON)."""
    try:
        value: Any = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MalformedNotificationError("data_not_json") from error
    if not isinstance(value, dict):
        raise MalformedNotificationError("data_not_object")
    email, history_id = value.get("emailAddress"), value.get("historyId")
    if not isinstance(email, str) or "@" not in email:
        raise MalformedNotificationError("missing_email_address")
    if isinstance(history_id, bool) or not isinstance(history_id, int | str):
        raise MalformedNotificationError("missing_history_id")
    if isinstance(history_id, str) and not history_id.isdigit():
        raise MalformedNotificationError("invalid_history_id")
    number = int(history_id)
    if number < 0:
        raise MalformedNotificationError("invalid_history_id")
    return GmailNotification(email_address=email, history_id=number)


def decode_push_envelope(body: bytes) -> GmailNotification:
    """Decode a Pub/Sub push body ``{"message": {"data": <base64>, ...}, "subscription": ...}``."""
    try:
        envelope: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MalformedNotificationError("body_not_json") from error
    message = envelope.get("message") if isinstance(envelope, dict) else None
    data = message.get("data") if isinstance(message, dict) else None
    if not isinstance(data, str):
        raise MalformedNotificationError("missing_data")
    try:
        decoded = base64.b64decode(data.replace("-", "+").replace("_", "/") + "==", validate=False)
    except (binascii.Error, ValueError) as error:
        raise MalformedNotificationError("data_not_base64") from error
    return decode_data(decoded)


def check_claims(claims: dict[str, Any], *, service_account: str | None) -> str | None:
    """Checks google-auth's ``verify_token`` leaves to the caller; returns a rejection reason or None.

    ``iss`` must be Google's; when a push service account is configured, ``email`` must be it and verified.
    """
    if claims.get("iss") not in ISSUERS:
        return "wrong_issuer"
    if service_account is not None and (
        claims.get("email") != service_account or claims.get("email_verified") is not True
    ):
        return "wrong_service_account"
    return None
