"""The sender's rules as pure functions (no I/O): validation, routing, size policies, quota days, MIME.

The handlers gather facts (the user's connection, stored content), ask these functions what to do, and apply
the answer.
"""

from mailsync.sender.domain.batches import BatchItem, BatchPlan, plan_batch
from mailsync.sender.domain.commands import InvalidCommand, invalid_command_result, parse_command
from mailsync.sender.domain.connections import MailboxConnection
from mailsync.sender.domain.graph_message import graph_message
from mailsync.sender.domain.mime import (
    MessageContent,
    build_message,
    encode,
    message_id_for,
    references_for,
    reply_subject,
)
from mailsync.sender.domain.outcomes import (
    ProviderReceipt,
    Refusal,
    not_sent,
    sent_through_mailbox,
    sent_through_provider,
)
from mailsync.sender.domain.policies import (
    GMAIL_POLICY,
    OUTLOOK_REFERENCE_TYPES,
    AttachmentPolicy,
    SizePolicy,
)
from mailsync.sender.domain.quota import QuotaDay, quota_day, quota_day_named
from mailsync.sender.domain.routing import Route, ThroughMailbox, ThroughSubaccountProvider, choose_route
from mailsync.sender.domain.validation import is_valid_addr_spec, validate_command

__all__ = [
    "GMAIL_POLICY",
    "OUTLOOK_REFERENCE_TYPES",
    "AttachmentPolicy",
    "BatchItem",
    "BatchPlan",
    "InvalidCommand",
    "MailboxConnection",
    "MessageContent",
    "ProviderReceipt",
    "QuotaDay",
    "Refusal",
    "Route",
    "SizePolicy",
    "ThroughMailbox",
    "ThroughSubaccountProvider",
    "build_message",
    "choose_route",
    "encode",
    "graph_message",
    "invalid_command_result",
    "is_valid_addr_spec",
    "message_id_for",
    "not_sent",
    "parse_command",
    "plan_batch",
    "quota_day",
    "quota_day_named",
    "references_for",
    "reply_subject",
    "sent_through_mailbox",
    "sent_through_provider",
    "validate_command",
]
