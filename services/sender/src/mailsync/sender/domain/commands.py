"""Decoding a `SendEmail` command, keeping enough of an invalid one to answer it.

The contract answers every command that carries a usable `request_id` (S7): one that fails the model's
validation is refused with `invalid_command` and the validation errors as detail. Only a payload without a
usable `request_id` cannot be answered; the consumer dead-letters it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from mailsync.common.contracts import RequestId, SendCompleted, SendEmail, SendFailureReason

_REQUEST_ID: TypeAdapter[str] = TypeAdapter(RequestId)
_ECHO_FIELDS = ("subaccount_id", "user_id", "contact_id", "conversation_id", "kind")


@dataclass(frozen=True)
class InvalidCommand:
    """A command that broke its contract; `request_id` is None when it cannot even be answered."""

    request_id: str | None
    payload: dict[str, Any]
    detail: str


def parse_command(payload: dict[str, Any]) -> SendEmail | InvalidCommand:
    """The command in `payload`, or why it is invalid."""
    try:
        return SendEmail.model_validate(payload)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'command'}: {item['msg']}"
            for item in error.errors(include_url=False, include_input=False)
        )
        try:
            request_id: str | None = _REQUEST_ID.validate_python(payload.get("request_id"))
        except ValidationError:
            request_id = None
        return InvalidCommand(request_id, payload, f"Invalid send command: {problems}")


def invalid_command_result(command: InvalidCommand, request_id: str, *, at: datetime) -> SendCompleted:
    """The `refused`/`invalid_command` answer, echoing whichever of the command's ids are valid."""
    echo = {name: command.payload[name] for name in _ECHO_FIELDS if command.payload.get(name) is not None}
    fields: dict[str, Any] = {
        "request_id": request_id,
        "occurred_at": at,
        "status": "refused",
        "reason": SendFailureReason.INVALID_COMMAND,
        "detail": command.detail[:4000],
    }
    try:
        return SendCompleted.model_validate({**fields, **echo})
    except ValidationError:
        return SendCompleted.model_validate(fields)
