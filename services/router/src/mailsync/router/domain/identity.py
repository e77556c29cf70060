"""Deterministic ids, so every redelivery of a message yields the same conversation and message ids (D2).

A conversation is kept per contact (one per subaccount and contact). A message is identified within its
conversation by its RFC 5322 Message-ID when it has one, which also recognises the copy of a CRM-sent email
that later appears in the mailbox's Sent folder; otherwise by the mailbox and the provider's message id.
"""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("5b0f8d0e-8a55-4d0b-9a3c-6f1d3c2e7a41")


def normalize_address(address: str) -> str:
    """The matching key of an email address: trimmed and lower-cased."""
    return address.strip().lower()


def normalize_message_id(message_id: str) -> str:
    """An RFC Message-ID without angle brackets or surrounding space; compared case-sensitively."""
    return message_id.strip().removeprefix("<").removesuffix(">")


def conversation_id_for(subaccount_id: str, contact_id: str) -> str:
    """The id of the conversation of `contact_id` in `subaccount_id`."""
    return str(uuid.uuid5(_NAMESPACE, f"conversation\x1f{subaccount_id}\x1f{contact_id}"))


def message_key(internet_message_id: str | None, mailbox_id: str, provider_message_id: str) -> str:
    """What makes a message unique within a conversation."""
    if internet_message_id:
        return f"rfc:{normalize_message_id(internet_message_id)}"
    return f"provider:{mailbox_id}:{provider_message_id}"


def message_id_for(conversation_id: str, key: str) -> str:
    """The CRM message id of the message `key` in `conversation_id`."""
    return str(uuid.uuid5(_NAMESPACE, f"message\x1f{conversation_id}\x1f{key}"))


def new_contact_id(subaccount_id: str, address: str) -> str:
    """The id of a contact the router creates for `address` (P6); the same for every redelivery."""
    return str(uuid.uuid5(_NAMESPACE, f"contact\x1f{subaccount_id}\x1f{normalize_address(address)}"))
