"""Directory events the CRM publishes: subaccount users and contacts, on one topic keyed by subaccount.

The router keeps a local projection of each subaccount's users (with their mailbox addresses and P6 BCC
address) and contacts (with their assignment and creation time, P4) from these events.

Ordering: every event carries ``revision``, a number the CRM increases on each change of one entity
(a user within a subaccount, or a contact). Consumers keep the highest revision seen per entity and ignore
an event whose revision is not higher, so replays, duplicates and reordering across producer restarts are
harmless. A removal is a tombstone with its own revision: an older upsert arriving after it is ignored.

The topic carries a union discriminated on ``event_type``: parse with ``parse_directory_event``; a reader
meeting an ``event_type`` it does not know gets a validation error and should skip (and count) the record.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, NonNegativeInt, TypeAdapter

from mailsync.common.contracts.base import EmailAddress, EntityId, Event, UtcDatetime

__all__ = [
    "DIRECTORY_EVENT_ADAPTER",
    "ContactRemoved",
    "ContactUpserted",
    "DirectoryEvent",
    "SubaccountUserRemoved",
    "SubaccountUserUpserted",
    "parse_directory_event",
]

_REVISION_DESCRIPTION = (
    "Per-entity revision, increased by the CRM on every change of this entity; consumers ignore an event "
    "whose revision is not higher than the last one applied."
)


class SubaccountUserUpserted(Event):
    """A user of a subaccount was created or changed; carries the user's full current state."""

    event_type: Literal["directory.subaccount_user_upserted"] = "directory.subaccount_user_upserted"
    subaccount_id: EntityId = Field(description="The CRM subaccount (location).")
    user_id: EntityId = Field(description="The CRM user.")
    email_addresses: tuple[EmailAddress, ...] = Field(
        min_length=1,
        description="The user's email addresses in the CRM; mail from them is not filed as a contact's (P7).",
    )
    bcc_address: EmailAddress | None = Field(
        default=None,
        description=(
            "The user's CRM BCC address (P6): copying it on a mailbox send files the mail and creates "
            "the contact."
        ),
    )
    display_name: str | None = Field(default=None, max_length=256, description="The user's display name.")
    revision: NonNegativeInt = Field(description=_REVISION_DESCRIPTION)


class SubaccountUserRemoved(Event):
    """A user left the subaccount (or was deleted); a tombstone for that user in that subaccount only (C1)."""

    event_type: Literal["directory.subaccount_user_removed"] = "directory.subaccount_user_removed"
    subaccount_id: EntityId = Field(description="The CRM subaccount (location).")
    user_id: EntityId = Field(description="The CRM user.")
    revision: NonNegativeInt = Field(description=_REVISION_DESCRIPTION)


class ContactUpserted(Event):
    """A contact was created or changed; carries the contact's full current state."""

    event_type: Literal["directory.contact_upserted"] = "directory.contact_upserted"
    subaccount_id: EntityId = Field(description="The CRM subaccount (location) the contact belongs to.")
    contact_id: EntityId = Field(description="The CRM contact.")
    email_addresses: tuple[EmailAddress, ...] = Field(
        default=(), description="The contact's email addresses; may be empty (such a contact never matches)."
    )
    assigned_user_id: EntityId | None = Field(
        default=None, description="The user the contact is assigned to (G1, G3); null when unassigned."
    )
    created_at: UtcDatetime = Field(
        description="When the contact was created in the CRM: among several matches the oldest wins (P4)."
    )
    revision: NonNegativeInt = Field(description=_REVISION_DESCRIPTION)


class ContactRemoved(Event):
    """A contact was deleted (or merged away); a tombstone. Conversations already synced stay (D1)."""

    event_type: Literal["directory.contact_removed"] = "directory.contact_removed"
    subaccount_id: EntityId = Field(description="The CRM subaccount (location).")
    contact_id: EntityId = Field(description="The CRM contact.")
    revision: NonNegativeInt = Field(description=_REVISION_DESCRIPTION)


DirectoryEvent = Annotated[
    SubaccountUserUpserted | SubaccountUserRemoved | ContactUpserted | ContactRemoved,
    Field(discriminator="event_type"),
]
"""Any event of the CRM directory topic, discriminated on ``event_type``."""

DIRECTORY_EVENT_ADAPTER: TypeAdapter[DirectoryEvent] = TypeAdapter(DirectoryEvent)
"""Validates and serialises ``DirectoryEvent`` values."""


def parse_directory_event(data: str | bytes) -> DirectoryEvent:
    """Parse one directory topic record (JSON); raises ``pydantic.ValidationError`` on an unknown type."""
    return DIRECTORY_EVENT_ADAPTER.validate_json(data)
