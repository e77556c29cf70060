"""Where a message belongs: the SPEC's filing rules, applied per connection of the message's mailbox.

For each connection that is or was bound to the mailbox, in this order (the first rule that applies decides):

1. Time (C7, C5, C4): a message received before the connection was made, or after it was disconnected or
   moved to another mailbox, does not sync for that connection.
2. Thread ownership (M2, M3): once a thread is claimed by one subaccount (started from its CRM, or replied to
   from its CRM), it syncs for that subaccount only.
3. A thread the subaccount already holds (G2, G3, O2, P3): every later message, inbound or outbound, is filed
   in the conversation that holds it, except mail from another user of the subaccount (P7).
4. Inbound mail outside a known thread (G1b, G3, M1, P1, P2, P4, P7): on Gmail, filed when the sender is a
   contact of the subaccount assigned to the connection's user (the first-created such contact, P4); mail
   from a user of the subaccount is not (P7). On Outlook only threads started from the CRM sync (O1), so a
   new thread a contact starts does not.
5. Outbound mail outside a known thread:
   - with the user's CRM BCC address in Cc or Bcc (P6): filed under the first To recipient that is a contact
     assigned to the user (P3); when no recipient is a contact, the first recipient that is not a user
     becomes one, assigned to the user;
   - Gmail, forwarded to an existing contact assigned to the user (P5): filed under that contact;
   - otherwise not synced: an Outlook thread started from the mailbox never syncs (O1), and a Gmail thread
     the user starts from the mailbox does not start sync (G1 names only the CRM and the contact).
6. Attachment policy (O3): a message that would be filed but whose attachments break the provider's policy
   is not synced, with the reason.

Every binding yields exactly one `Filing` or one `Skip`, so nothing is dropped without a recorded reason.
"""

from __future__ import annotations

import re

from mailsync.common.contracts import MessageIngested, NotSyncedReason
from mailsync.router.domain.decisions import Filing, NewContact, RoutingDecision, Skip
from mailsync.router.domain.facts import (
    NO_POLICY,
    ContactFacts,
    MailboxBinding,
    RoutingFacts,
    SubaccountFacts,
)
from mailsync.router.domain.identity import conversation_id_for, new_contact_id, normalize_address

_FORWARD_SUBJECT = re.compile(r"^\s*(fwd?|fw)\s*:", re.IGNORECASE)


def route_message(message: MessageIngested, facts: RoutingFacts) -> RoutingDecision:
    """Decide the filing of `message` for every binding in `facts` (see the module docstring)."""
    if not facts.bindings:
        return RoutingDecision(
            skips=(
                Skip(
                    NotSyncedReason.CONNECTION_DISCONNECTED,
                    f"no connection has mailbox {message.mailbox_id}",
                ),
            )
        )
    filings: list[Filing] = []
    skips: list[Skip] = []
    for binding in facts.bindings:
        outcome = _route_for_binding(message, facts, binding)
        (filings if isinstance(outcome, Filing) else skips).append(outcome)  # type: ignore[arg-type]
    return RoutingDecision(filings=tuple(filings), skips=tuple(skips))


def _route_for_binding(
    message: MessageIngested, facts: RoutingFacts, binding: MailboxBinding
) -> Filing | Skip:
    blocked = _outside_binding(message, binding) or _claimed_elsewhere(facts, binding)
    if blocked is not None:
        return blocked
    subaccount = facts.subaccounts.get(binding.subaccount_id, SubaccountFacts(binding.subaccount_id))
    outcome = (
        _route_outbound(message, subaccount, binding)
        if message.sent_by_owner
        else _route_inbound(message, subaccount, binding)
    )
    if isinstance(outcome, Skip):
        return outcome
    problems = facts.attachment_policies.get(message.provider, NO_POLICY).violations(message.attachments)
    if problems:
        return _skip(binding, NotSyncedReason.ATTACHMENT_POLICY, "; ".join(problems) + " (O3)")
    return outcome


def _outside_binding(message: MessageIngested, binding: MailboxBinding) -> Skip | None:
    """C7, C5, C4: only mail received while the connection was bound to this mailbox syncs through it."""
    if message.received_at < binding.bound_from:
        return _skip(
            binding, NotSyncedReason.BEFORE_CONNECTION, "received before the mailbox was connected (C7)"
        )
    if binding.bound_until is None or message.received_at < binding.bound_until:
        return None
    if binding.ended_by == "replaced":
        return _skip(
            binding, NotSyncedReason.MAILBOX_REPLACED, "the connection moved to another mailbox (C4)"
        )
    return _skip(binding, NotSyncedReason.CONNECTION_DISCONNECTED, "the connection was disconnected (C5)")


def _claimed_elsewhere(facts: RoutingFacts, binding: MailboxBinding) -> Skip | None:
    """M2, M3: a claimed thread syncs for its owning subaccount only."""
    if facts.thread_owner is None or facts.thread_owner == binding.subaccount_id:
        return None
    return _skip(
        binding,
        NotSyncedReason.THREAD_CLAIMED_BY_OTHER_SUBACCOUNT,
        f"the thread belongs to subaccount {facts.thread_owner} (M2, M3)",
    )


def _filing(
    binding: MailboxBinding, contact_id: str, rule: str, new_contact: NewContact | None = None
) -> Filing:
    return Filing(
        connection_id=binding.connection_id,
        subaccount_id=binding.subaccount_id,
        user_id=binding.user_id,
        contact_id=contact_id,
        conversation_id=conversation_id_for(binding.subaccount_id, contact_id),
        rule=rule,
        new_contact=new_contact,
    )


def _skip(binding: MailboxBinding, reason: NotSyncedReason, detail: str) -> Skip:
    return Skip(reason, detail, binding.connection_id, binding.subaccount_id)


def _assigned_contact(subaccount: SubaccountFacts, address: str, user_id: str) -> ContactFacts | None:
    """The first-created contact with `address` assigned to `user_id` (P4), if any."""
    return next((c for c in subaccount.contacts_with(address) if c.assigned_user_id == user_id), None)


def _route_inbound(
    message: MessageIngested, subaccount: SubaccountFacts, binding: MailboxBinding
) -> Filing | Skip:
    sender = normalize_address(message.from_.email)
    if subaccount.is_user_address(sender):
        return _skip(binding, NotSyncedReason.SENDER_IS_USER, f"{sender} is a user of the subaccount (P7)")
    if subaccount.thread is not None:
        return Filing(
            connection_id=binding.connection_id,
            subaccount_id=binding.subaccount_id,
            user_id=binding.user_id,
            contact_id=subaccount.thread.contact_id,
            conversation_id=subaccount.thread.conversation_id,
            rule="G2" if message.provider == "gmail" else "O2",
        )
    if message.provider == "outlook":
        return _skip(
            binding,
            NotSyncedReason.OUTLOOK_THREAD_NOT_CRM_STARTED,
            "on Outlook only threads started from the CRM sync (O1)",
        )
    candidates = subaccount.contacts_with(sender)
    if not candidates:
        return _skip(
            binding, NotSyncedReason.UNKNOWN_SENDER, f"{sender} is not a contact of the subaccount (G1)"
        )
    contact = _assigned_contact(subaccount, sender, binding.user_id)
    if contact is None:
        return _skip(
            binding,
            NotSyncedReason.CONTACT_NOT_ASSIGNED,
            f"contact {candidates[0].contact_id} is not assigned to user {binding.user_id} (G1, M1)",
        )
    return _filing(binding, contact.contact_id, "G3")


def _route_outbound(
    message: MessageIngested, subaccount: SubaccountFacts, binding: MailboxBinding
) -> Filing | Skip:
    if subaccount.thread is not None:
        return Filing(
            connection_id=binding.connection_id,
            subaccount_id=binding.subaccount_id,
            user_id=binding.user_id,
            contact_id=subaccount.thread.contact_id,
            conversation_id=subaccount.thread.conversation_id,
            rule="G2" if message.provider == "gmail" else "O2",
        )
    user = subaccount.user(binding.user_id)
    copied = {normalize_address(a.email) for a in (*message.cc, *message.bcc)}
    if user is not None and user.bcc_address is not None and user.bcc_address in copied:
        return _route_bcc_copy(message, subaccount, binding, user.bcc_address)
    if message.provider == "outlook":
        return _skip(
            binding,
            NotSyncedReason.OUTLOOK_THREAD_NOT_CRM_STARTED,
            "an Outlook thread started from the mailbox never syncs (O1)",
        )
    recipients = [normalize_address(a.email) for a in message.to]
    contacts = [c for r in recipients if (c := _assigned_contact(subaccount, r, binding.user_id)) is not None]
    if not contacts:
        return _skip(
            binding, NotSyncedReason.UNKNOWN_RECIPIENTS, "no recipient is a contact assigned to the user"
        )
    if _FORWARD_SUBJECT.match(message.subject):
        return _filing(binding, contacts[0].contact_id, "P5")
    return _skip(
        binding,
        NotSyncedReason.THREAD_NOT_SYNCED,
        "a thread started from the Gmail mailbox does not start sync; "
        "send from the CRM or use the BCC address (G1, P6)",
    )


def _route_bcc_copy(
    message: MessageIngested, subaccount: SubaccountFacts, binding: MailboxBinding, bcc_address: str
) -> Filing | Skip:
    """P6 with P3: the first To recipient that is a contact owns the conversation; when none is, the first
    recipient that is no user (nor a CRM BCC address, nor the mailbox itself) becomes a contact."""
    excluded = {bcc_address, normalize_address(message.mailbox_address)}
    excluded.update(u.bcc_address for u in subaccount.users if u.bcc_address)
    recipients = [
        a
        for a in (*message.to, *message.cc)
        if normalize_address(a.email) not in excluded
        and not subaccount.is_user_address(normalize_address(a.email))
    ]
    if not recipients:
        return _skip(
            binding, NotSyncedReason.UNKNOWN_RECIPIENTS, "only users and the BCC address were addressed"
        )
    for recipient in recipients:
        contact = _assigned_contact(subaccount, normalize_address(recipient.email), binding.user_id)
        if contact is not None:
            return _filing(binding, contact.contact_id, "P6")
    owner = recipients[0]
    address = normalize_address(owner.email)
    if subaccount.contacts_with(address):
        return _skip(
            binding,
            NotSyncedReason.CONTACT_NOT_ASSIGNED,
            f"{address} is a contact assigned to another user (P6)",
        )
    new = NewContact(new_contact_id(binding.subaccount_id, address), address, owner.name)
    return _filing(binding, new.contact_id, "P6", new_contact=new)
