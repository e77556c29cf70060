"""Kafka topic names and the registry of what each topic carries.

Topic names are constants: services, docs and tests import them, never spell them out. The ``.v1``
suffix is the contract's major version; a breaking change ships as a new model on a ``.v2`` topic.

Keys decide ordering: everything for a mailbox shares a partition (ingest and not-synced), a connection's
changes stay in order, a subaccount's directory changes stay in order, a send command and its result
share a key, and a contact's conversation messages stay in order.

Every consumed topic ``T`` has a dead-letter topic ``dead_letter_topic(T)`` carrying ``DeadLettered``
records, keyed by the original record's key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import TypeAdapter

from mailsync.common.contracts.connections import ConnectionChanged
from mailsync.common.contracts.conversations import ConversationMessageRecorded, MessageNotSynced
from mailsync.common.contracts.dead_letters import DeadLettered
from mailsync.common.contracts.directory import (
    ContactRemoved,
    ContactUpserted,
    DirectoryEvent,
    SubaccountUserRemoved,
    SubaccountUserUpserted,
)
from mailsync.common.contracts.mail import MailboxChanged, MessageIngested
from mailsync.common.contracts.sending import SendCompleted, SendEmail

if TYPE_CHECKING:
    from collections.abc import Callable

    from mailsync.common.contracts.base import Event

__all__ = [
    "CONNECTIONS_CHANGED",
    "CONTRACTS",
    "CONVERSATION_MESSAGES_RECORDED",
    "CRM_DIRECTORY",
    "DEAD_LETTER_MODEL",
    "DEAD_LETTER_SUFFIX",
    "MAILBOX_CHANGED",
    "MESSAGES_INGESTED",
    "MESSAGES_NOT_SYNCED",
    "SEND_COMMANDS",
    "SEND_RESULTS",
    "TopicContract",
    "contract_for",
    "dead_letter_key",
    "dead_letter_topic",
]

MAILBOX_CHANGED = "mailsync.ingest.mailbox-changed.v1"
MESSAGES_INGESTED = "mailsync.mail.messages-ingested.v1"
CONNECTIONS_CHANGED = "mailsync.connections.changed.v1"
CRM_DIRECTORY = "mailsync.crm.directory.v1"
SEND_COMMANDS = "mailsync.send.commands.v1"
SEND_RESULTS = "mailsync.send.results.v1"
CONVERSATION_MESSAGES_RECORDED = "mailsync.conversations.messages-recorded.v1"
MESSAGES_NOT_SYNCED = "mailsync.conversations.messages-not-synced.v1"

DEAD_LETTER_SUFFIX = ".dlt"


def dead_letter_topic(topic: str) -> str:
    """The dead-letter topic of ``topic`` (``topic + ".dlt"``)."""
    return topic + DEAD_LETTER_SUFFIX


def dead_letter_key(event: DeadLettered) -> str:
    """Key of a dead-letter record: the original key, else the original record's coordinates."""
    if event.key is not None:
        return event.key
    return f"{event.original_topic}:{event.partition}:{event.offset}"


PayloadT = TypeVar("PayloadT")


@dataclass(frozen=True)
class TopicContract(Generic[PayloadT]):
    """What one topic carries, how it is keyed, and who produces and consumes it."""

    topic: str
    """The topic name."""
    models: tuple[type[Event], ...]
    """The event or command models allowed on the topic (several for a discriminated union)."""
    payload_type: Any
    """The type a record value parses into: the model, or the annotated union."""
    key: str
    """Human description of the record key, e.g. ``mailbox_id``."""
    key_of: Callable[[PayloadT], str]
    """Computes the record key of an event; producers must use it."""
    producers: tuple[str, ...]
    """Services (or external systems) publishing to the topic."""
    consumers: tuple[str, ...]
    """Services (or external systems) consuming the topic."""
    purpose: str
    """One line on what the topic is for."""
    _adapter: TypeAdapter[PayloadT] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_adapter", TypeAdapter(self.payload_type))

    @property
    def dead_letter_topic(self) -> str:
        """This topic's dead-letter topic."""
        return dead_letter_topic(self.topic)

    def parse(self, value: str | bytes) -> PayloadT:
        """Parse one record value (JSON) of this topic; raises ``pydantic.ValidationError``."""
        return self._adapter.validate_json(value)

    def serialize(self, event: PayloadT) -> bytes:
        """Encode ``event`` as a record value (JSON, field aliases)."""
        return self._adapter.dump_json(event, by_alias=True)


def _mailbox_key(event: MailboxChanged | MessageIngested | MessageNotSynced) -> str:
    return event.mailbox_id


def _connection_key(event: ConnectionChanged) -> str:
    return event.connection_id


def _subaccount_key(event: DirectoryEvent) -> str:
    return event.subaccount_id


def _request_key(event: SendEmail | SendCompleted) -> str:
    return event.request_id


def _contact_key(event: ConversationMessageRecorded) -> str:
    return f"{event.subaccount_id}:{event.contact_id}"


CONTRACTS: tuple[TopicContract[Any], ...] = (
    TopicContract[MailboxChanged](
        topic=MAILBOX_CHANGED,
        models=(MailboxChanged,),
        payload_type=MailboxChanged,
        key="mailbox_id",
        key_of=_mailbox_key,
        producers=("ingest-gmail", "ingest-outlook"),
        consumers=("ingest-gmail", "ingest-outlook"),
        purpose="Provider notifications as hints that a mailbox changed; one partition serialises a mailbox.",
    ),
    TopicContract[MessageIngested](
        topic=MESSAGES_INGESTED,
        models=(MessageIngested,),
        payload_type=MessageIngested,
        key="mailbox_id",
        key_of=_mailbox_key,
        producers=("ingest-gmail", "ingest-outlook"),
        consumers=("router", "analytics"),
        purpose="Canonical provider messages fetched from connected mailboxes.",
    ),
    TopicContract[ConnectionChanged](
        topic=CONNECTIONS_CHANGED,
        models=(ConnectionChanged,),
        payload_type=ConnectionChanged,
        key="connection_id",
        key_of=_connection_key,
        producers=("ingest-gmail", "ingest-outlook"),
        consumers=("router", "sender", "crm"),
        purpose="Connection lifecycle (C3-C7): connected, mailbox replaced, re-auth needed/done, ended.",
    ),
    TopicContract[DirectoryEvent](
        topic=CRM_DIRECTORY,
        models=(SubaccountUserUpserted, SubaccountUserRemoved, ContactUpserted, ContactRemoved),
        payload_type=DirectoryEvent,
        key="subaccount_id",
        key_of=_subaccount_key,
        producers=("crm",),
        consumers=("router",),
        purpose="The CRM's users and contacts per subaccount, with revisions, for routing decisions.",
    ),
    TopicContract[SendEmail](
        topic=SEND_COMMANDS,
        models=(SendEmail,),
        payload_type=SendEmail,
        key="request_id",
        key_of=_request_key,
        producers=("crm", "workflows", "bulk-mail"),
        consumers=("sender",),
        purpose="Commands to send an email (individual, bulk or workflow), idempotent by request_id (S7).",
    ),
    TopicContract[SendCompleted](
        topic=SEND_RESULTS,
        models=(SendCompleted,),
        payload_type=SendCompleted,
        key="request_id",
        key_of=_request_key,
        producers=("sender",),
        consumers=("crm", "workflows", "bulk-mail", "analytics"),
        purpose="Exactly one result per send command: sent, refused or failed, with the reason.",
    ),
    TopicContract[ConversationMessageRecorded](
        topic=CONVERSATION_MESSAGES_RECORDED,
        models=(ConversationMessageRecorded,),
        payload_type=ConversationMessageRecorded,
        key="{subaccount_id}:{contact_id}",
        key_of=_contact_key,
        producers=("router",),
        consumers=("crm", "analytics"),
        purpose="Messages filed into CRM conversations, in order per contact.",
    ),
    TopicContract[MessageNotSynced](
        topic=MESSAGES_NOT_SYNCED,
        models=(MessageNotSynced,),
        payload_type=MessageNotSynced,
        key="mailbox_id",
        key_of=_mailbox_key,
        producers=("router",),
        consumers=("crm", "analytics"),
        purpose="Messages the router deliberately did not file, with why, so nothing vanishes silently.",
    ),
)
"""Every topic mailsync owns, in pipeline order. Dead-letter topics follow from ``dead_letter_topic``."""

DEAD_LETTER_MODEL: type[DeadLettered] = DeadLettered
"""The model carried by every dead-letter topic."""


def contract_for(topic: str) -> TopicContract[Any]:
    """The contract of ``topic``; raises ``KeyError`` for a topic mailsync does not own."""
    for contract in CONTRACTS:
        if contract.topic == topic:
            return contract
    raise KeyError(topic)
