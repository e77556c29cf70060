"""What a dead-letter topic carries: a record that failed permanently, with its reason.

Every consuming topic ``T`` has a dead-letter topic ``T.dlt`` (see ``topics.dead_letter_topic``). A
record lands there when processing failed permanently (undecodable payload, contract violation, a
permanent error) or exhausted its retries; the consumer then commits past it, so a poison record never
blocks its partition and is never silently dropped. The original bytes are kept so the record can be
inspected and replayed to ``original_topic`` once the cause is fixed. Keyed by the original record's key.
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from mailsync.common.contracts.base import Event, UtcDatetime

__all__ = ["DeadLettered", "PayloadEncoding", "encode_payload"]

PayloadEncoding = Literal["utf-8", "base64"]
"""How ``DeadLettered.payload`` encodes the original bytes."""


def encode_payload(raw: bytes) -> tuple[str, PayloadEncoding]:
    """The original record value as text: itself when valid UTF-8, else base64."""
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


class DeadLettered(Event):
    """A record that a service could not process, with where it came from and why it failed."""

    event_type: Literal["dead_letters.dead_lettered"] = "dead_letters.dead_lettered"
    service: str = Field(
        min_length=1, max_length=128, description="The service that gave up (e.g. `router`)."
    )
    original_topic: str = Field(min_length=1, max_length=249, description="Topic the record was read from.")
    partition: NonNegativeInt = Field(description="Partition of the original record.")
    offset: NonNegativeInt = Field(description="Offset of the original record.")
    key: str | None = Field(
        default=None, description="Key of the original record, decoded as UTF-8; null when it had none."
    )
    payload: str = Field(description="The original record value, encoded as `payload_encoding` says.")
    payload_encoding: PayloadEncoding = Field(
        default="utf-8",
        description=(
            "`utf-8`: `payload` is the value itself; `base64`: the value was not UTF-8 and is base64."
        ),
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers of the original record, values decoded as UTF-8 (invalid bytes replaced).",
    )
    error_type: str = Field(
        min_length=1,
        max_length=256,
        description="Class of the final error, e.g. `pydantic_core.ValidationError`.",
    )
    reason: str = Field(min_length=1, max_length=8000, description="Why the record failed, for a human.")
    attempts: PositiveInt = Field(description="How many times processing was attempted.")
    first_failed_at: UtcDatetime = Field(description="When the first attempt failed.")
    dead_lettered_at: UtcDatetime = Field(description="When the record was dead-lettered.")

    @model_validator(mode="after")
    def _check_payload(self) -> DeadLettered:
        # Deliberately the only check: building a dead letter must not fail on the failure path.
        if self.payload_encoding == "base64":
            try:
                base64.b64decode(self.payload, validate=True)
            except binascii.Error as error:
                raise ValueError("payload is not valid base64") from error
        return self

    def payload_bytes(self) -> bytes:
        """The original record value, byte for byte."""
        if self.payload_encoding == "base64":
            return base64.b64decode(self.payload, validate=True)
        return self.payload.encode("utf-8")
