"""Routing a batch of messages with facts loaded once for the whole batch (no I/O).

The handler loads, in a few queries, what every message of a batch needs (`BatchFacts`). `route_batch` then
routes the messages in their order and folds each decision's effects into the facts before routing the
next: a contact created under P6, a thread linked to a conversation, a message filed (which a later reply
names in In-Reply-To or References). A batch therefore gets the decisions that routing its messages one at a
time, reloading the facts before each, would give.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from mailsync.common.contracts import MessageIngested, Provider
from mailsync.router.domain.decisions import RoutingDecision
from mailsync.router.domain.facts import (
    AttachmentPolicy,
    ContactFacts,
    MailboxBinding,
    RoutingFacts,
    SubaccountFacts,
    ThreadLink,
    UserFacts,
)
from mailsync.router.domain.identity import normalize_address, normalize_message_id
from mailsync.router.domain.routing import route_message


def addresses_of(message: MessageIngested) -> set[str]:
    """Every participant address of `message`, normalised."""
    return {normalize_address(a.email) for a in (message.from_, *message.to, *message.cc, *message.bcc)}


def references_of(message: MessageIngested) -> list[str]:
    """The RFC 5322 ids `message` replies to or references, normalised."""
    return sorted({normalize_message_id(r) for r in (message.in_reply_to, *message.references) if r})


@dataclass(frozen=True)
class FiledReference:
    """A message already filed in a subaccount, found by its RFC 5322 id from a later message."""

    subaccount_id: str
    link: ThreadLink
    recorded_at: datetime


@dataclass
class BatchFacts:
    """The read models' answers for one batch, keyed for lookup; `route_batch` adds what the batch creates."""

    bindings: Mapping[str, Sequence[MailboxBinding]]
    """Every binding of each mailbox of the batch."""
    users: Mapping[str, Sequence[UserFacts]]
    """The live users of each subaccount those bindings name."""
    contacts: Iterable[tuple[str, ContactFacts]] = ()
    """The live contacts, as (subaccount id, contact), carrying one of the batch's addresses."""
    thread_links: dict[tuple[str, str], dict[str, ThreadLink]] = field(default_factory=dict)
    """(mailbox, provider thread) -> subaccount -> the conversation holding the thread."""
    filed: dict[tuple[str, str], list[FiledReference]] = field(default_factory=dict)
    """(mailbox, RFC 5322 id) -> the filings of that message, as stored (the batch's references only)."""
    thread_owners: Mapping[tuple[str, str], str] = field(default_factory=dict)
    """(mailbox, provider thread) -> the subaccount that claimed it (M2, M3)."""
    attachment_policies: Mapping[Provider, AttachmentPolicy] = field(default_factory=dict)
    _by_address: dict[tuple[str, str], list[ContactFacts]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        for subaccount_id, contact in self.contacts:
            self._add_contact(subaccount_id, contact)

    def facts_for(self, message: MessageIngested) -> RoutingFacts:
        """What `route_message` needs for `message`, as the read models would answer it now."""
        bindings = tuple(self.bindings.get(message.mailbox_id, ()))
        thread = (message.mailbox_id, message.provider_thread_id)
        links = dict(self.thread_links.get(thread, {}))
        found = [f for r in references_of(message) for f in self.filed.get((message.mailbox_id, r), ())]
        for reference in sorted(found, key=lambda f: f.recorded_at):
            links.setdefault(reference.subaccount_id, reference.link)
        addresses = addresses_of(message)
        subaccounts = {}
        for subaccount_id in sorted({b.subaccount_id for b in bindings}):
            contacts = {
                c.contact_id: c for a in addresses for c in self._by_address.get((subaccount_id, a), ())
            }
            subaccounts[subaccount_id] = SubaccountFacts(
                subaccount_id,
                tuple(self.users.get(subaccount_id, ())),
                tuple(contacts.values()),
                links.get(subaccount_id),
            )
        return RoutingFacts(
            bindings=bindings,
            subaccounts=subaccounts,
            thread_owner=self.thread_owners.get(thread),
            attachment_policies=self.attachment_policies,
        )

    def record(
        self, message: MessageIngested, facts: RoutingFacts, decision: RoutingDecision, at: datetime
    ) -> frozenset[str]:
        """Fold the effects of filing `message` as `decision` says, at `at`, into these facts.

        `facts` are those the decision was made on. Returns the subaccounts where the filing links the
        thread for the first time (the handler writes those links).
        """
        thread = self.thread_links.setdefault((message.mailbox_id, message.provider_thread_id), {})
        new_links = set()
        for filing in decision.filings:
            link = ThreadLink(filing.contact_id, filing.conversation_id)
            if filing.new_contact is not None:
                address = normalize_address(filing.new_contact.address)
                contact = ContactFacts(filing.contact_id, frozenset({address}), filing.user_id, at)
                self._add_contact(filing.subaccount_id, contact)
            if facts.subaccounts[filing.subaccount_id].thread is None:
                thread.setdefault(filing.subaccount_id, link)
                new_links.add(filing.subaccount_id)
            if message.internet_message_id:
                key = (message.mailbox_id, normalize_message_id(message.internet_message_id))
                self.filed.setdefault(key, []).append(FiledReference(filing.subaccount_id, link, at))
        return frozenset(new_links)

    def _add_contact(self, subaccount_id: str, contact: ContactFacts) -> None:
        for address in contact.addresses:
            known = self._by_address.setdefault((subaccount_id, address), [])
            if all(c.contact_id != contact.contact_id for c in known):
                known.append(contact)


@dataclass(frozen=True)
class Routed:
    """One message's decision, and the subaccounts where its filing links the thread for the first time."""

    message: MessageIngested
    decision: RoutingDecision
    new_links: frozenset[str]


def route_batch(messages: Sequence[MessageIngested], facts: BatchFacts, at: datetime) -> list[Routed]:
    """Route `messages` in order, folding each decision into `facts` (which this call updates)."""
    routed = []
    for message in messages:
        routing_facts = facts.facts_for(message)
        decision = route_message(message, routing_facts)
        routed.append(Routed(message, decision, facts.record(message, routing_facts, decision, at)))
    return routed
