"""The envelope every event and command carries, and the field types the contracts share.

Compatibility semantics (schema version 1 of every contract):

* Readers ignore unknown fields (``extra="ignore"``), so a producer may add a new *optional* field
  without a new version. Removing a field, changing its type, making it required, or removing an
  allowed value is a breaking change: it needs a new model (``schema_version`` 2) on a new topic
  (``...v2``), published side by side with v1 until every consumer has moved.
* Every model is frozen: an event is a fact, a command a request; neither is edited after creation.
  Sequences are tuples for the same reason.
* Timestamps are timezone-aware and normalised to UTC; a naive datetime is rejected, because a
  guess at its zone is how mail ends up filed on the wrong side of a connection cutoff (C7).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from uuid import UUID, uuid4

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
)

if TYPE_CHECKING:
    from pydantic.json_schema import JsonSchemaValue
    from pydantic_core import CoreSchema

__all__ = [
    "EMAIL_ADDRESS_MAX_LENGTH",
    "ContractModel",
    "EmailAddress",
    "EntityId",
    "Event",
    "InternetMessageId",
    "Provider",
    "ProviderId",
    "UtcDatetime",
    "utc_now",
]

EMAIL_ADDRESS_MAX_LENGTH = 320
"""64 octets of local part, an ``@`` and 255 of domain: the RFC 5321 limits, generously summed."""

Provider = Literal["gmail", "outlook"]
"""The mailbox providers of C2."""


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]
"""A timezone-aware instant, normalised to UTC; JSON: RFC 3339 ``date-time``. Naive values are rejected."""


def _check_email_address(value: str) -> str:
    # Deliberately light: quoted local parts, IDN domains, plus-addressing and single-label domains
    # are real and must pass; only what can never be an address is rejected.
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise ValueError("an email address needs a local part, one '@' and a domain")
    if any(char.isspace() for char in value):
        raise ValueError("an email address cannot contain whitespace")
    if "@" in local and not (local.startswith('"') and local.endswith('"')):
        raise ValueError("an email address has exactly one '@' outside a quoted local part")
    return value


EmailAddress = Annotated[
    str,
    StringConstraints(min_length=3, max_length=EMAIL_ADDRESS_MAX_LENGTH),
    AfterValidator(_check_email_address),
]
"""An email address (addr-spec, no display name), kept as written; compare with ``Address.normalized``."""

EntityId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
"""An opaque identifier minted by mailsync or the CRM (connection, mailbox, subaccount, user, contact...)."""

ProviderId = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
"""An opaque identifier minted by a provider (Gmail message/thread id, Graph message/conversation id)."""

InternetMessageId = Annotated[str, StringConstraints(min_length=1, max_length=998)]
"""An RFC 5322 ``Message-ID`` exactly as in the header, angle brackets included (``<abc@example.com>``)."""


class ContractModel(BaseModel):
    """Base of every contract model, value objects included.

    Frozen; unknown fields are ignored on input (the forward-compatibility rule); JSON uses the field
    aliases (only ``from`` differs from its Python name ``from_``) and input is accepted under either.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class Event(ContractModel):
    """The envelope of every event and command on the bus.

    Concrete subclasses narrow ``event_type`` to a ``Literal`` with that value as its default and keep
    ``schema_version`` at ``Literal[1]``. The JSON Schema marks the four envelope fields required even
    where Python supplies a default: producers must always send the full envelope, while readers stay
    lenient.
    """

    ENVELOPE_FIELDS: ClassVar[tuple[str, ...]] = ("event_id", "event_type", "schema_version", "occurred_at")

    event_id: UUID = Field(
        default_factory=uuid4,
        description=(
            "Unique id of this event or command, minted once by its producer and kept on redelivery; "
            "consumers may use it to recognise duplicates."
        ),
    )
    event_type: str = Field(
        description="Stable dotted name of the contract (e.g. `mail.message_ingested`); never reused."
    )
    schema_version: Literal[1] = Field(
        default=1,
        description="Major version of the contract; a breaking change ships as a new version on a new topic.",
    )
    occurred_at: UtcDatetime = Field(
        default_factory=utc_now,
        description="When the producer created the event or command (RFC 3339, UTC).",
    )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        default = cls.model_fields["event_type"].default
        if not isinstance(default, str) or not default:
            raise TypeError(f"{cls.__name__} must declare event_type as a Literal with that value as default")

    @classmethod
    def contract_name(cls) -> str:
        """The ``event_type`` of this contract (e.g. ``mail.message_ingested``)."""
        name = cls.model_fields["event_type"].default
        if not isinstance(name, str):
            raise TypeError(f"{cls.__name__} is not a concrete contract")
        return name

    @classmethod
    def contract_version(cls) -> int:
        """The ``schema_version`` of this contract."""
        version = cls.model_fields["schema_version"].default
        if not isinstance(version, int):
            raise TypeError(f"{cls.__name__} is not a concrete contract")
        return version

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        required = list(target.get("required", []))
        for name in cls.ENVELOPE_FIELDS:
            if name not in required:
                required.append(name)
        target["required"] = required
        event_type = target.get("properties", {}).get("event_type")
        if isinstance(event_type, dict):
            event_type.setdefault(
                "description",
                f"Contract name, always `{cls.contract_name()}` here; the discriminator on shared topics.",
            )
        return schema
