"""The router's rules, as pure functions of a message and the facts it needs (no I/O).

`route_message` decides, for one canonical message, in which subaccounts and under which contacts it is filed,
or why it is not synced; the handlers gather the facts and apply the decision.
"""

from mailsync.router.domain.decisions import Filing, NewContact, RoutingDecision, Skip
from mailsync.router.domain.facts import (
    AttachmentPolicy,
    ContactFacts,
    MailboxBinding,
    RoutingFacts,
    SubaccountFacts,
    ThreadLink,
    UserFacts,
)
from mailsync.router.domain.identity import conversation_id_for, message_id_for, message_key, new_contact_id
from mailsync.router.domain.routing import route_message

__all__ = [
    "AttachmentPolicy",
    "ContactFacts",
    "Filing",
    "MailboxBinding",
    "NewContact",
    "RoutingDecision",
    "RoutingFacts",
    "Skip",
    "SubaccountFacts",
    "ThreadLink",
    "UserFacts",
    "conversation_id_for",
    "message_id_for",
    "message_key",
    "new_contact_id",
    "route_message",
]
