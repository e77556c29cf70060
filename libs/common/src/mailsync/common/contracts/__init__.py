"""The canonical contracts of mailsync, version 1: events, commands, topics, examples and JSON Schemas.

This package is mailsync's public API on the bus. Other platform teams publish ``SendEmail`` commands,
the CRM publishes directory events, analytics teams consume the mail and conversation topics. Services
import models and topic names from here and never redefine a schema.

Compatibility: readers ignore unknown fields, so adding an optional field is a compatible change;
anything else that changes the wire shape needs a new model with ``schema_version`` 2 on a ``.v2``
topic. The committed JSON Schemas (``schemas/``) are checked against the models by the test suite and by
``python -m mailsync.common.contracts.schemas check``.
"""

from mailsync.common.contracts.base import (
    ContractModel,
    EmailAddress,
    EntityId,
    Event,
    InternetMessageId,
    Provider,
    ProviderId,
    UtcDatetime,
    utc_now,
)
from mailsync.common.contracts.connections import ConnectionChange, ConnectionChanged, ConnectionStatus
from mailsync.common.contracts.conversations import (
    ConversationMessageRecorded,
    MessageNotSynced,
    NotSyncedReason,
)
from mailsync.common.contracts.dead_letters import DeadLettered, PayloadEncoding, encode_payload
from mailsync.common.contracts.directory import (
    DIRECTORY_EVENT_ADAPTER,
    ContactRemoved,
    ContactUpserted,
    DirectoryEvent,
    SubaccountUserRemoved,
    SubaccountUserUpserted,
    parse_directory_event,
)
from mailsync.common.contracts.mail import (
    INLINE_BODY_MAX_BYTES,
    SNIPPET_MAX_CHARS,
    Address,
    AttachmentMeta,
    BlobRef,
    Direction,
    MailboxChanged,
    MailboxChangeSource,
    MessageBody,
    MessageIngested,
)
from mailsync.common.contracts.sending import (
    MAX_RECIPIENTS,
    REQUEST_ID_MAX_LENGTH,
    ReplyContext,
    RequestId,
    SendCompleted,
    SendEmail,
    SendFailureReason,
    SendKind,
    SendRoute,
    SendStatus,
)
from mailsync.common.contracts.topics import (
    CONNECTIONS_CHANGED,
    CONTRACTS,
    CONVERSATION_MESSAGES_RECORDED,
    CRM_DIRECTORY,
    DEAD_LETTER_MODEL,
    MAILBOX_CHANGED,
    MESSAGES_INGESTED,
    MESSAGES_NOT_SYNCED,
    SEND_COMMANDS,
    SEND_RESULTS,
    TopicContract,
    contract_for,
    dead_letter_key,
    dead_letter_topic,
)

__all__ = [
    "CONNECTIONS_CHANGED",
    "CONTRACTS",
    "CONVERSATION_MESSAGES_RECORDED",
    "CRM_DIRECTORY",
    "DEAD_LETTER_MODEL",
    "DIRECTORY_EVENT_ADAPTER",
    "INLINE_BODY_MAX_BYTES",
    "MAILBOX_CHANGED",
    "MAX_RECIPIENTS",
    "MESSAGES_INGESTED",
    "MESSAGES_NOT_SYNCED",
    "REQUEST_ID_MAX_LENGTH",
    "SEND_COMMANDS",
    "SEND_RESULTS",
    "SNIPPET_MAX_CHARS",
    "Address",
    "AttachmentMeta",
    "BlobRef",
    "ConnectionChange",
    "ConnectionChanged",
    "ConnectionStatus",
    "ContactRemoved",
    "ContactUpserted",
    "ContractModel",
    "ConversationMessageRecorded",
    "DeadLettered",
    "Direction",
    "DirectoryEvent",
    "EmailAddress",
    "EntityId",
    "Event",
    "InternetMessageId",
    "MailboxChangeSource",
    "MailboxChanged",
    "MessageBody",
    "MessageIngested",
    "MessageNotSynced",
    "NotSyncedReason",
    "PayloadEncoding",
    "Provider",
    "ProviderId",
    "ReplyContext",
    "RequestId",
    "SendCompleted",
    "SendEmail",
    "SendFailureReason",
    "SendKind",
    "SendRoute",
    "SendStatus",
    "SubaccountUserRemoved",
    "SubaccountUserUpserted",
    "TopicContract",
    "UtcDatetime",
    "contract_for",
    "dead_letter_key",
    "dead_letter_topic",
    "encode_payload",
    "parse_directory_event",
    "utc_now",
]
