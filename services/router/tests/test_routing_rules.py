"""The router's filing rules, one table row (or more) per SPEC rule id, on the pure domain module.

Every row routes one `MessageIngested` with one set of `RoutingFacts` and asserts the whole decision: each
filing's connection, subaccount, user, contact, conversation, rule and new contact, and each skip's reason,
connection and subaccount (a skip's free-text detail is only required to be present). Row ids start with
the rule id they pin down.

The cast: Ada (``usr_ada``) connected ``ada@acme-corp.com`` in ``loc_acme`` (and, for M1-M3, in
``loc_globex`` and ``loc_initech``); Bob (``usr_bob``) is another user of those subaccounts. Grace is a
contact assigned to Ada, Linus a contact assigned to Bob.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal
from uuid import UUID

import pytest

from mailsync.common.contracts import (
    Address,
    AttachmentMeta,
    MessageBody,
    MessageIngested,
    NotSyncedReason,
    Provider,
)
from mailsync.common.contracts.examples import MESSAGE_INGESTED, MESSAGE_INGESTED_OUTLOOK_LARGE
from mailsync.router.domain import (
    AttachmentPolicy,
    ContactFacts,
    Filing,
    MailboxBinding,
    NewContact,
    RoutingDecision,
    RoutingFacts,
    SubaccountFacts,
    ThreadLink,
    UserFacts,
    conversation_id_for,
    message_id_for,
    message_key,
    new_contact_id,
    route_message,
)

Reason = NotSyncedReason

# --- The cast -------------------------------------------------------------------------------------------

ACME, GLOBEX, INITECH = "loc_acme", "loc_globex", "loc_initech"

ADA = Address(email="ada@acme-corp.com", name="Ada Lovelace")
BOB = Address(email="bob@acme-corp.com", name="Bob Builder")
GRACE = Address(email="Grace.Hopper@navy.example", name="Grace Hopper")
LINUS = Address(email="linus@kernel.example", name="Linus")
STRANGER = Address(email="Stranger@Unknown.example", name="Sam Stranger")
OTHER = Address(email="someone@elsewhere.example")
ADA_BCC = "ada.bcc@crm.example"
BOB_BCC = "bob.bcc@crm.example"

USER_ADA = UserFacts("usr_ada", frozenset({"ada@acme-corp.com"}), bcc_address=ADA_BCC)
USER_BOB = UserFacts("usr_bob", frozenset({"bob@acme-corp.com"}), bcc_address=BOB_BCC)

CONTACTS_CREATED = datetime(2025, 6, 1, tzinfo=UTC)
CONNECTED = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
AT = datetime(2026, 3, 2, 9, 14, 52, tzinfo=UTC)
"""When the table's messages reach the mailbox, unless a row says otherwise."""
BEFORE_CONNECTING = CONNECTED - timedelta(days=2)
MB = 1024 * 1024


def contact(
    contact_id: str,
    *addresses: str,
    assigned_to: str | None = "usr_ada",
    created_at: datetime = CONTACTS_CREATED,
) -> ContactFacts:
    return ContactFacts(contact_id, frozenset(addresses), assigned_to, created_at)


CON_GRACE = contact("con_grace", "grace.hopper@navy.example")
CON_LINUS = contact("con_linus", "linus@kernel.example", assigned_to="usr_bob")

THREAD = ThreadLink("con_grace", "conv_grace_thread")
"""The conversation holding the message's thread; its id is deliberately not `conversation_id_for`'s."""


def subaccount(
    subaccount_id: str = ACME,
    *contacts: ContactFacts,
    thread: ThreadLink | None = None,
    users: tuple[UserFacts, ...] = (USER_ADA, USER_BOB),
) -> SubaccountFacts:
    return SubaccountFacts(subaccount_id, users=users, contacts=contacts, thread=thread)


def binding(
    subaccount_id: str = ACME,
    *,
    user_id: str = "usr_ada",
    bound_from: datetime = CONNECTED,
    bound_until: datetime | None = None,
    ended_by: Literal["disconnected", "replaced"] | None = None,
) -> MailboxBinding:
    connection_id = f"conn_{user_id.removeprefix('usr_')}_{subaccount_id.removeprefix('loc_')}"
    return MailboxBinding(connection_id, subaccount_id, user_id, bound_from, bound_until, ended_by)


ADA_ACME = binding(ACME)
ADA_GLOBEX = binding(GLOBEX)
ADA_INITECH = binding(INITECH)


def facts(
    *subaccounts: SubaccountFacts,
    bindings: tuple[MailboxBinding, ...] = (ADA_ACME,),
    thread_owner: str | None = None,
    outlook_policy: AttachmentPolicy | None = None,
) -> RoutingFacts:
    by_id = {s.subaccount_id: s for s in subaccounts}
    if outlook_policy is None:
        return RoutingFacts(bindings, by_id, thread_owner)
    return RoutingFacts(
        bindings, by_id, thread_owner, {"outlook": outlook_policy, "gmail": AttachmentPolicy()}
    )


def _message(
    *,
    provider: Provider,
    sender: Address,
    to: tuple[Address, ...],
    cc: tuple[Address, ...],
    bcc: tuple[Address, ...],
    subject: str,
    at: datetime,
    attachments: tuple[AttachmentMeta, ...],
    outbound: bool,
) -> MessageIngested:
    return MessageIngested(
        provider=provider,
        mailbox_id=f"mbx_{provider}_ada",
        mailbox_address=ADA.email,
        connection_ids=("conn_ada_acme",),
        provider_message_id="msg-0001",
        provider_thread_id="thr-0001",
        internet_message_id="<msg-0001@mail.example>",
        subject=subject,
        from_=sender,
        to=to,
        cc=cc,
        bcc=bcc,
        direction="outbound" if outbound else "inbound",
        sent_by_owner=outbound,
        sent_at=at,
        received_at=at,
        folders=("SENT",) if outbound else ("INBOX",),
        body=MessageBody(text="Hello"),
        attachments=attachments,
    )


def inbound(
    *,
    sender: Address = GRACE,
    to: tuple[Address, ...] = (ADA,),
    cc: tuple[Address, ...] = (),
    provider: Provider = "gmail",
    subject: str = "Q1 proposal",
    at: datetime = AT,
    attachments: tuple[AttachmentMeta, ...] = (),
) -> MessageIngested:
    """A message received by Ada's mailbox."""
    return _message(
        provider=provider,
        sender=sender,
        to=to,
        cc=cc,
        bcc=(),
        subject=subject,
        at=at,
        attachments=attachments,
        outbound=False,
    )


def outbound(
    *,
    to: tuple[Address, ...] = (GRACE,),
    cc: tuple[Address, ...] = (),
    bcc: tuple[Address, ...] = (),
    provider: Provider = "gmail",
    subject: str = "Q1 proposal",
    at: datetime = AT,
    attachments: tuple[AttachmentMeta, ...] = (),
) -> MessageIngested:
    """A message Ada sent from her mailbox."""
    return _message(
        provider=provider,
        sender=ADA,
        to=to,
        cc=cc,
        bcc=bcc,
        subject=subject,
        at=at,
        attachments=attachments,
        outbound=True,
    )


def attachment(filename: str, size_bytes: int, *, inline: bool = False) -> AttachmentMeta:
    return AttachmentMeta(filename=filename, size_bytes=size_bytes, is_inline=inline)


# --- Expected outcomes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Skipped:
    """A skip as the table states it: the reason and where (the detail text is free)."""

    reason: NotSyncedReason
    connection_id: str | None
    subaccount_id: str | None


Outcome = Filing | Skipped


def filed(
    where: MailboxBinding,
    contact_id: str,
    rule: str,
    *,
    conversation_id: str | None = None,
    new_contact: NewContact | None = None,
) -> Filing:
    """The filing expected for `where`: in the contact's own conversation unless a thread link says."""
    return Filing(
        connection_id=where.connection_id,
        subaccount_id=where.subaccount_id,
        user_id=where.user_id,
        contact_id=contact_id,
        conversation_id=conversation_id or conversation_id_for(where.subaccount_id, contact_id),
        rule=rule,
        new_contact=new_contact,
    )


def in_thread(where: MailboxBinding, rule: str, link: ThreadLink = THREAD) -> Filing:
    return filed(where, link.contact_id, rule, conversation_id=link.conversation_id)


def skipped(where: MailboxBinding, reason: NotSyncedReason) -> Skipped:
    return Skipped(reason, where.connection_id, where.subaccount_id)


def created(subaccount_id: str, address: Address) -> NewContact:
    normalized = address.email.lower()
    return NewContact(new_contact_id(subaccount_id, normalized), normalized, address.name)


def outcomes(decision: RoutingDecision) -> list[Outcome]:
    assert all(skip.detail for skip in decision.skips), "every skip says why"
    found: list[Outcome] = [*decision.filings]
    found += [Skipped(s.reason, s.connection_id, s.subaccount_id) for s in decision.skips]
    return sorted(found, key=repr)


def case(message: MessageIngested, routing: RoutingFacts, *expected: Outcome, id: str) -> object:  # noqa: A002
    return pytest.param(message, routing, sorted(expected, key=repr), id=id)


# --- The table ------------------------------------------------------------------------------------------

_UPDATED_BEFORE_AT = AT - timedelta(hours=1)
_UPDATED_AFTER_AT = AT + timedelta(hours=1)
_REPLACED = binding(bound_until=_UPDATED_BEFORE_AT, ended_by="replaced")
_REPLACED_LATER = binding(bound_until=_UPDATED_AFTER_AT, ended_by="replaced")
_DISCONNECTED = binding(bound_until=_UPDATED_BEFORE_AT, ended_by="disconnected")
_DISCONNECTED_LATER = binding(bound_until=_UPDATED_AFTER_AT, ended_by="disconnected")
_DISCONNECTED_AT = binding(bound_until=AT, ended_by="disconnected")
_NEW_MAILBOX = binding(bound_from=_UPDATED_BEFORE_AT)
_GRACE_OLD = contact(
    "con_grace_2019", "grace.hopper@navy.example", created_at=datetime(2019, 1, 1, tzinfo=UTC)
)
_GRACE_NEW = contact(
    "con_grace_2024", "grace.hopper@navy.example", created_at=datetime(2024, 1, 1, tzinfo=UTC)
)
_BOB_AS_CONTACT = contact("con_bob", "bob@acme-corp.com")
_NO_BOB = (USER_ADA,)

CONNECTION_CASES = [
    case(
        inbound(),
        facts(subaccount(ACME, CON_GRACE), bindings=(_REPLACED,)),
        skipped(_REPLACED, Reason.MAILBOX_REPLACED),
        id="C4-inbound-after-update-not-synced",
    ),
    case(
        outbound(),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD), bindings=(_REPLACED,), thread_owner=ACME),
        skipped(_REPLACED, Reason.MAILBOX_REPLACED),
        id="C4-reply-in-thread-started-through-old-mailbox",
    ),
    case(
        inbound(),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD), bindings=(_REPLACED,)),
        skipped(_REPLACED, Reason.MAILBOX_REPLACED),
        id="C4-inbound-in-old-thread-after-update",
    ),
    case(
        inbound(),
        facts(subaccount(ACME, CON_GRACE), bindings=(_REPLACED_LATER,)),
        filed(_REPLACED_LATER, "con_grace", "G3"),
        id="C4-inbound-before-update-still-filed",
    ),
    case(
        inbound(),
        facts(subaccount(ACME, CON_GRACE), bindings=(_NEW_MAILBOX,)),
        filed(_NEW_MAILBOX, "con_grace", "G3"),
        id="C4-new-mailbox-syncs-after-update",
    ),
    case(
        inbound(at=_UPDATED_BEFORE_AT - timedelta(minutes=1)),
        facts(subaccount(ACME, CON_GRACE), bindings=(_NEW_MAILBOX,)),
        skipped(_NEW_MAILBOX, Reason.BEFORE_CONNECTION),
        id="C4-new-mailbox-mail-before-update-not-imported",
    ),
    case(
        inbound(),
        facts(subaccount(ACME, CON_GRACE), bindings=(_DISCONNECTED,)),
        skipped(_DISCONNECTED, Reason.CONNECTION_DISCONNECTED),
        id="C5-inbound-after-disconnect",
    ),
    case(
        outbound(),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD), bindings=(_DISCONNECTED,)),
        skipped(_DISCONNECTED, Reason.CONNECTION_DISCONNECTED),
        id="C5-later-message-in-old-thread",
    ),
    case(
        inbound(),
        facts(subaccount(ACME, CON_GRACE), bindings=(_DISCONNECTED_AT,)),
        skipped(_DISCONNECTED_AT, Reason.CONNECTION_DISCONNECTED),
        id="C5-at-the-disconnect-instant",
    ),
    case(
        inbound(),
        facts(subaccount(ACME, CON_GRACE), bindings=(_DISCONNECTED_LATER,)),
        filed(_DISCONNECTED_LATER, "con_grace", "G3"),
        id="C5-inbound-before-disconnect-filed",
    ),
    case(
        inbound(at=BEFORE_CONNECTING),
        facts(subaccount(ACME, CON_GRACE)),
        skipped(ADA_ACME, Reason.BEFORE_CONNECTION),
        id="C7-inbound-before-connection",
    ),
    case(
        outbound(at=BEFORE_CONNECTING),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD), thread_owner=ACME),
        skipped(ADA_ACME, Reason.BEFORE_CONNECTION),
        id="C7-reply-in-crm-thread-before-connection",
    ),
    case(
        inbound(at=CONNECTED - timedelta(seconds=1)),
        facts(subaccount(ACME, CON_GRACE)),
        skipped(ADA_ACME, Reason.BEFORE_CONNECTION),
        id="C7-one-second-before-connection",
    ),
    case(
        inbound(sender=LINUS),
        facts(subaccount(ACME, CON_GRACE, CON_LINUS)),
        skipped(ADA_ACME, Reason.CONTACT_NOT_ASSIGNED),
        id="C1-contact-of-unconnected-user-not-filed",
    ),
    case(
        inbound(sender=GRACE, to=(ADA, BOB)),
        facts(subaccount(ACME, CON_GRACE, CON_LINUS)),
        filed(ADA_ACME, "con_grace", "G3"),
        id="C1-only-connected-users-binding-files",
    ),
    case(
        inbound(),
        facts(
            subaccount(ACME, CON_GRACE), subaccount(GLOBEX, CON_GRACE), bindings=(_DISCONNECTED, ADA_GLOBEX)
        ),
        skipped(_DISCONNECTED, Reason.CONNECTION_DISCONNECTED),
        filed(ADA_GLOBEX, "con_grace", "G3"),
        id="C1-disconnect-in-one-subaccount-leaves-the-other",
    ),
    case(
        inbound(),
        RoutingFacts((), {}),
        Skipped(Reason.CONNECTION_DISCONNECTED, None, None),
        id="C5-no-connection-has-the-mailbox",
    ),
]

GMAIL_CASES = [
    case(
        inbound(subject="Re: Q1 proposal"),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD), thread_owner=ACME),
        in_thread(ADA_ACME, "G2"),
        id="G1a-contact-reply-in-crm-started-thread",
    ),
    case(
        inbound(sender=OTHER),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD), thread_owner=ACME),
        in_thread(ADA_ACME, "G2"),
        id="G1a-crm-started-thread-syncs-whoever-replies",
    ),
    case(
        inbound(),
        facts(subaccount(ACME, CON_GRACE)),
        filed(ADA_ACME, "con_grace", "G3"),
        id="G1b-inbound-from-assigned-contact-starts-thread",
    ),
    case(
        inbound(sender=Address(email="GRACE.HOPPER@NAVY.EXAMPLE")),
        facts(subaccount(ACME, CON_GRACE)),
        filed(ADA_ACME, "con_grace", "G3"),
        id="G1b-sender-matched-case-insensitively",
    ),
    case(
        MESSAGE_INGESTED,
        facts(subaccount(ACME, CON_GRACE)),
        filed(ADA_ACME, "con_grace", "G3"),
        id="G1b-example-message-from-grace",
    ),
    case(
        outbound(),
        facts(subaccount(ACME, CON_GRACE)),
        skipped(ADA_ACME, Reason.THREAD_NOT_SYNCED),
        id="G1-gmail-thread-started-from-mailbox-to-contact",
    ),
    case(
        outbound(to=(STRANGER,)),
        facts(subaccount(ACME, CON_GRACE)),
        skipped(ADA_ACME, Reason.UNKNOWN_RECIPIENTS),
        id="G1-gmail-thread-started-from-mailbox-to-stranger",
    ),
    case(
        inbound(sender=STRANGER),
        facts(subaccount(ACME, CON_GRACE)),
        skipped(ADA_ACME, Reason.UNKNOWN_SENDER),
        id="G1-unknown-sender",
    ),
    case(
        inbound(sender=LINUS),
        facts(subaccount(ACME, CON_LINUS)),
        skipped(ADA_ACME, Reason.CONTACT_NOT_ASSIGNED),
        id="G1b-contact-assigned-to-another-user",
    ),
    case(
        inbound(),
        facts(subaccount(ACME, contact("con_grace", "grace.hopper@navy.example", assigned_to=None))),
        skipped(ADA_ACME, Reason.CONTACT_NOT_ASSIGNED),
        id="G1b-unassigned-contact",
    ),
    case(
        outbound(subject="Re: Q1 proposal"),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD), thread_owner=ACME),
        in_thread(ADA_ACME, "G2"),
        id="G2-user-reply-from-gmail-in-known-thread",
    ),
    case(
        outbound(to=(GRACE, STRANGER)),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD)),
        in_thread(ADA_ACME, "G2"),
        id="G2-reply-in-thread-started-by-contact",
    ),
    case(
        outbound(to=(STRANGER,)),
        facts(subaccount(ACME, thread=THREAD)),
        in_thread(ADA_ACME, "G2"),
        id="G2-reply-in-known-thread-whatever-the-recipients",
    ),
    case(
        inbound(),
        facts(subaccount(ACME, CON_GRACE)),
        filed(ADA_ACME, "con_grace", "G3"),
        id="G3-new-inbound-from-assigned-contact",
    ),
    case(
        inbound(subject="Re: Q1 proposal"),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD)),
        in_thread(ADA_ACME, "G2"),
        id="G3-inbound-inside-existing-thread",
    ),
]

_BIG = attachment("site-video.mov", 4 * MB)
_EXE = attachment("setup.exe", 10_000)
OUTLOOK_CASES = [
    case(
        outbound(provider="outlook"),
        facts(subaccount(ACME, CON_GRACE)),
        skipped(ADA_ACME, Reason.OUTLOOK_THREAD_NOT_CRM_STARTED),
        id="O1-thread-started-from-outlook-to-contact",
    ),
    case(
        outbound(provider="outlook", to=(STRANGER,)),
        facts(subaccount(ACME, CON_GRACE)),
        skipped(ADA_ACME, Reason.OUTLOOK_THREAD_NOT_CRM_STARTED),
        id="O1-thread-started-from-outlook-to-stranger",
    ),
    case(
        outbound(provider="outlook", subject="RE: Contract"),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD), thread_owner=ACME),
        in_thread(ADA_ACME, "O2"),
        id="O1-reply-in-crm-started-thread-filed",
    ),
    case(
        outbound(provider="outlook"),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD), thread_owner=ACME),
        in_thread(ADA_ACME, "O2"),
        id="O2-outbound-in-crm-started-thread",
    ),
    case(
        inbound(provider="outlook"),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD), thread_owner=ACME),
        in_thread(ADA_ACME, "O2"),
        id="O2-inbound-reply-in-crm-started-thread",
    ),
    case(
        MESSAGE_INGESTED_OUTLOOK_LARGE,
        facts(
            subaccount(
                ACME,
                contact("con_carol", "carol@client.example"),
                thread=ThreadLink("con_carol", "conv_carol"),
            ),
            bindings=(binding(ACME, user_id="usr_bob"),),
            thread_owner=ACME,
        ),
        in_thread(binding(ACME, user_id="usr_bob"), "O2", ThreadLink("con_carol", "conv_carol")),
        id="O2-example-outlook-reply-with-pdf-and-inline-logo",
    ),
    case(
        inbound(provider="outlook", attachments=(_BIG,)),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD)),
        skipped(ADA_ACME, Reason.ATTACHMENT_POLICY),
        id="O3-outlook-attachment-over-3mb",
    ),
    case(
        outbound(provider="outlook", attachments=(attachment("contract.pdf", 3 * MB + 1),)),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD)),
        skipped(ADA_ACME, Reason.ATTACHMENT_POLICY),
        id="O3-outlook-allowed-type-over-3mb",
    ),
    case(
        inbound(provider="outlook", attachments=(_EXE,)),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD)),
        skipped(ADA_ACME, Reason.ATTACHMENT_POLICY),
        id="O3-outlook-exe",
    ),
    case(
        inbound(provider="outlook", attachments=(attachment("README", 100),)),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD)),
        skipped(ADA_ACME, Reason.ATTACHMENT_POLICY),
        id="O3-outlook-file-without-extension",
    ),
    case(
        inbound(provider="outlook", attachments=(attachment("a.pdf", 1000), _EXE)),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD)),
        skipped(ADA_ACME, Reason.ATTACHMENT_POLICY),
        id="O3-outlook-one-bad-attachment-among-good",
    ),
    case(
        inbound(attachments=(_BIG, _EXE)),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD)),
        in_thread(ADA_ACME, "G2"),
        id="O3-same-attachments-on-gmail-filed",
    ),
    case(
        inbound(attachments=(_BIG,)),
        facts(subaccount(ACME, CON_GRACE)),
        filed(ADA_ACME, "con_grace", "G3"),
        id="O3-gmail-new-inbound-with-big-attachment-filed",
    ),
    case(
        inbound(provider="outlook", attachments=(attachment("banner.bmp", 5 * MB, inline=True),)),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD)),
        in_thread(ADA_ACME, "O2"),
        id="O3-inline-image-not-counted",
    ),
    case(
        inbound(
            provider="outlook",
            attachments=(
                attachment("Scan.PDF", 2 * MB),
                attachment("notes.TxT", 10),
                attachment("clip.mp4", MB),
            ),
        ),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD)),
        in_thread(ADA_ACME, "O2"),
        id="O3-allowed-types-any-case-under-3mb",
    ),
    case(
        inbound(provider="outlook", attachments=(attachment("site-video.zip", 100 * MB),)),
        facts(
            subaccount(ACME, CON_GRACE, thread=THREAD), outlook_policy=AttachmentPolicy(max_bytes=150 * MB)
        ),
        in_thread(ADA_ACME, "O2"),
        id="O3-limit-is-a-setting-150mb",
    ),
    case(
        inbound(provider="outlook", attachments=(_EXE,)),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD), bindings=(_DISCONNECTED,)),
        skipped(_DISCONNECTED, Reason.CONNECTION_DISCONNECTED),
        id="O3-not-reported-when-not-synced-anyway",
    ),
]

_GRACE_ELSEWHERE = contact("con_grace_initech", "grace.hopper@navy.example", assigned_to="usr_bob")
_GLOBEX_THREAD = ThreadLink("con_grace_g", "conv_grace_globex_thread")
SUBACCOUNT_CASES = [
    case(
        MESSAGE_INGESTED,
        facts(
            subaccount(ACME, CON_GRACE),
            subaccount(GLOBEX, contact("con_grace_g", "grace.hopper@navy.example")),
            subaccount(INITECH, _GRACE_ELSEWHERE),
            bindings=(ADA_ACME, ADA_GLOBEX, ADA_INITECH),
        ),
        filed(ADA_ACME, "con_grace", "G3"),
        filed(ADA_GLOBEX, "con_grace_g", "G3"),
        skipped(ADA_INITECH, Reason.CONTACT_NOT_ASSIGNED),
        id="M1-assigned-in-two-of-three-subaccounts",
    ),
    case(
        MESSAGE_INGESTED,
        facts(
            subaccount(ACME, CON_GRACE),
            subaccount(GLOBEX, contact("con_grace_g", "grace.hopper@navy.example")),
            subaccount(INITECH, CON_LINUS),
            bindings=(ADA_ACME, ADA_GLOBEX, ADA_INITECH),
        ),
        filed(ADA_ACME, "con_grace", "G3"),
        filed(ADA_GLOBEX, "con_grace_g", "G3"),
        skipped(ADA_INITECH, Reason.UNKNOWN_SENDER),
        id="M1-contact-missing-in-third-subaccount",
    ),
    case(
        inbound(),
        facts(subaccount(ACME, CON_GRACE), subaccount(GLOBEX), bindings=(ADA_ACME, ADA_GLOBEX)),
        filed(ADA_ACME, "con_grace", "G3"),
        skipped(ADA_GLOBEX, Reason.UNKNOWN_SENDER),
        id="M1-subaccount-missing-from-facts-files-nothing",
    ),
    case(
        inbound(subject="Re: Q1 proposal"),
        facts(
            subaccount(ACME, CON_GRACE, thread=THREAD),
            subaccount(GLOBEX, contact("con_grace_g", "grace.hopper@navy.example"), thread=_GLOBEX_THREAD),
            bindings=(ADA_ACME, ADA_GLOBEX),
            thread_owner=GLOBEX,
        ),
        in_thread(ADA_GLOBEX, "G2", _GLOBEX_THREAD),
        skipped(ADA_ACME, Reason.THREAD_CLAIMED_BY_OTHER_SUBACCOUNT),
        id="M2-subaccount-that-replied-keeps-the-thread",
    ),
    case(
        outbound(subject="Re: Q1 proposal"),
        facts(
            subaccount(ACME, CON_GRACE, thread=THREAD),
            subaccount(GLOBEX, contact("con_grace_g", "grace.hopper@navy.example"), thread=_GLOBEX_THREAD),
            bindings=(ADA_ACME, ADA_GLOBEX),
            thread_owner=ACME,
        ),
        in_thread(ADA_ACME, "G2"),
        skipped(ADA_GLOBEX, Reason.THREAD_CLAIMED_BY_OTHER_SUBACCOUNT),
        id="M2-user-reply-from-mailbox-only-in-owning-subaccount",
    ),
    case(
        inbound(subject="Re: Contract"),
        facts(
            subaccount(ACME, CON_GRACE, thread=THREAD),
            subaccount(GLOBEX, contact("con_grace_g", "grace.hopper@navy.example")),
            subaccount(INITECH, contact("con_grace_i", "grace.hopper@navy.example")),
            bindings=(ADA_ACME, ADA_GLOBEX, ADA_INITECH),
            thread_owner=ACME,
        ),
        in_thread(ADA_ACME, "G2"),
        skipped(ADA_GLOBEX, Reason.THREAD_CLAIMED_BY_OTHER_SUBACCOUNT),
        skipped(ADA_INITECH, Reason.THREAD_CLAIMED_BY_OTHER_SUBACCOUNT),
        id="M3-crm-started-thread-only-in-sending-subaccount",
    ),
    case(
        outbound(provider="outlook", subject="RE: Contract"),
        facts(
            subaccount(ACME, CON_GRACE, thread=THREAD),
            subaccount(GLOBEX, CON_GRACE),
            bindings=(ADA_ACME, ADA_GLOBEX),
            thread_owner=ACME,
        ),
        in_thread(ADA_ACME, "O2"),
        skipped(ADA_GLOBEX, Reason.THREAD_CLAIMED_BY_OTHER_SUBACCOUNT),
        id="M3-later-outlook-message-only-in-sending-subaccount",
    ),
    case(
        inbound(),
        facts(
            subaccount(ACME, CON_GRACE, thread=THREAD),
            subaccount(GLOBEX, CON_GRACE),
            bindings=(_DISCONNECTED, ADA_GLOBEX),
            thread_owner=ACME,
        ),
        skipped(_DISCONNECTED, Reason.CONNECTION_DISCONNECTED),
        skipped(ADA_GLOBEX, Reason.THREAD_CLAIMED_BY_OTHER_SUBACCOUNT),
        id="M3-claim-outlives-the-owners-disconnect",
    ),
]

_LINUS_ADA = contact("con_linus_ada", "linus@kernel.example")
PARTICIPANT_CASES = [
    case(
        inbound(to=(OTHER,), cc=(ADA,)),
        facts(subaccount(ACME, CON_GRACE)),
        filed(ADA_ACME, "con_grace", "G3"),
        id="P1-user-in-cc",
    ),
    case(
        inbound(to=(OTHER,)),
        facts(subaccount(ACME, CON_GRACE)),
        filed(ADA_ACME, "con_grace", "G3"),
        id="P1-user-in-bcc",
    ),
    case(
        inbound(to=(OTHER, ADA, LINUS)),
        facts(subaccount(ACME, CON_GRACE, _LINUS_ADA)),
        filed(ADA_ACME, "con_grace", "G3"),
        id="P1-user-one-of-several-recipients",
    ),
    case(
        inbound(to=(ADA,), cc=(STRANGER,)),
        facts(subaccount(ACME, CON_GRACE)),
        filed(ADA_ACME, "con_grace", "G3"),
        id="P1-no-contact-created-for-cc-address",
    ),
    case(
        outbound(to=(GRACE,), cc=(STRANGER,), bcc=(OTHER,)),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD)),
        in_thread(ADA_ACME, "G2"),
        id="P1-no-contact-created-for-cc-or-bcc-on-reply",
    ),
    case(
        inbound(to=(LINUS,), cc=(ADA,)),
        facts(subaccount(ACME, CON_GRACE, _LINUS_ADA)),
        filed(ADA_ACME, "con_grace", "G3"),
        id="P2-contact-writes-to-another-contact-user-in-copy",
    ),
    case(
        inbound(to=(OTHER,), cc=(BOB, ADA)),
        facts(subaccount(ACME, CON_GRACE)),
        filed(ADA_ACME, "con_grace", "G3"),
        id="P2-contact-writes-to-someone-else-user-in-copy",
    ),
    case(
        outbound(to=(BOB, GRACE, LINUS), cc=(Address(email=ADA_BCC),)),
        facts(subaccount(ACME, CON_GRACE, _LINUS_ADA)),
        filed(ADA_ACME, "con_grace", "P6"),
        id="P3-several-to-with-bcc-first-non-user-owns",
    ),
    case(
        outbound(to=(BOB, STRANGER, GRACE), bcc=(Address(email=ADA_BCC),)),
        facts(subaccount(ACME, CON_GRACE)),
        filed(ADA_ACME, "con_grace", "P6"),
        id="P3-several-to-with-bcc-first-contact-owns-no-new-contact",
    ),
    case(
        outbound(to=(BOB, STRANGER, Address(email="other@unknown.example")), bcc=(Address(email=ADA_BCC),)),
        facts(subaccount(ACME, CON_GRACE)),
        filed(
            ADA_ACME,
            new_contact_id(ACME, "stranger@unknown.example"),
            "P6",
            new_contact=created(ACME, STRANGER),
        ),
        id="P3-several-to-with-bcc-no-contact-first-non-user-is-new",
    ),
    case(
        outbound(to=(STRANGER, LINUS, GRACE), subject="Fwd: Q1 proposal"),
        facts(subaccount(ACME, CON_GRACE, CON_LINUS)),
        filed(ADA_ACME, "con_grace", "P5"),
        id="P3-forward-to-several-first-assigned-contact-owns",
    ),
    case(
        inbound(sender=LINUS, to=(ADA, GRACE)),
        facts(subaccount(ACME, CON_GRACE, CON_LINUS, thread=THREAD)),
        in_thread(ADA_ACME, "G2"),
        id="P3-later-message-from-other-recipient-goes-to-thread",
    ),
    case(
        inbound(sender=STRANGER),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD)),
        in_thread(ADA_ACME, "G2"),
        id="P3-later-message-from-non-contact-goes-to-thread",
    ),
    case(
        inbound(),
        facts(subaccount(ACME, _GRACE_NEW, _GRACE_OLD)),
        filed(ADA_ACME, "con_grace_2019", "G3"),
        id="P4-two-contacts-share-address-first-created",
    ),
    case(
        inbound(),
        facts(subaccount(ACME, replace(_GRACE_OLD, assigned_user_id="usr_bob"), _GRACE_NEW)),
        filed(ADA_ACME, "con_grace_2024", "G3"),
        id="P4-first-created-assigned-to-the-user",
    ),
    case(
        inbound(),
        facts(
            subaccount(ACME, replace(_GRACE_OLD, contact_id="con_b"), replace(_GRACE_OLD, contact_id="con_a"))
        ),
        filed(ADA_ACME, "con_a", "G3"),
        id="P4-same-creation-time-decided-by-id",
    ),
    case(
        outbound(subject="Fwd: Q1 proposal"),
        facts(subaccount(ACME, _GRACE_NEW, _GRACE_OLD)),
        filed(ADA_ACME, "con_grace_2019", "P5"),
        id="P4-forward-to-shared-address-first-created",
    ),
    case(
        outbound(to=(GRACE,), bcc=(Address(email=ADA_BCC),)),
        facts(subaccount(ACME, _GRACE_NEW, _GRACE_OLD)),
        filed(ADA_ACME, "con_grace_2019", "P6"),
        id="P4-bcc-copy-to-shared-address-first-created",
    ),
    case(
        outbound(subject="Fwd: Site visit"),
        facts(subaccount(ACME, CON_GRACE)),
        filed(ADA_ACME, "con_grace", "P5"),
        id="P5-gmail-forward-to-assigned-contact",
    ),
    case(
        outbound(subject="FW: Site visit"),
        facts(subaccount(ACME, CON_GRACE)),
        filed(ADA_ACME, "con_grace", "P5"),
        id="P5-gmail-fw-prefix",
    ),
    case(
        outbound(subject="Fwd: Site visit", provider="outlook"),
        facts(subaccount(ACME, CON_GRACE)),
        skipped(ADA_ACME, Reason.OUTLOOK_THREAD_NOT_CRM_STARTED),
        id="P5-outlook-forward-O1-wins",
    ),
    case(
        outbound(subject="Fwd: Site visit", to=(STRANGER,)),
        facts(subaccount(ACME, CON_GRACE)),
        skipped(ADA_ACME, Reason.UNKNOWN_RECIPIENTS),
        id="P5-forward-to-non-contact",
    ),
    case(
        outbound(subject="Fwd: Site visit", to=(LINUS,)),
        facts(subaccount(ACME, CON_LINUS)),
        skipped(ADA_ACME, Reason.UNKNOWN_RECIPIENTS),
        id="P5-forward-to-contact-of-another-user",
    ),
    case(
        outbound(to=(STRANGER,), cc=(Address(email=ADA_BCC),)),
        facts(subaccount(ACME, CON_GRACE)),
        filed(
            ADA_ACME,
            new_contact_id(ACME, "stranger@unknown.example"),
            "P6",
            new_contact=created(ACME, STRANGER),
        ),
        id="P6-bcc-address-in-cc-creates-contact",
    ),
    case(
        outbound(to=(STRANGER,), bcc=(Address(email="Ada.BCC@CRM.example"),)),
        facts(subaccount(ACME)),
        filed(
            ADA_ACME,
            new_contact_id(ACME, "stranger@unknown.example"),
            "P6",
            new_contact=created(ACME, STRANGER),
        ),
        id="P6-bcc-address-in-bcc-matched-case-insensitively",
    ),
    case(
        outbound(to=(STRANGER,), bcc=(Address(email=ADA_BCC),), provider="outlook"),
        facts(subaccount(ACME)),
        filed(
            ADA_ACME,
            new_contact_id(ACME, "stranger@unknown.example"),
            "P6",
            new_contact=created(ACME, STRANGER),
        ),
        id="P6-outlook-bcc-address-creates-contact",
    ),
    case(
        outbound(to=(GRACE,), cc=(Address(email=ADA_BCC),)),
        facts(subaccount(ACME, CON_GRACE)),
        filed(ADA_ACME, "con_grace", "P6"),
        id="P6-existing-assigned-contact-no-new-contact",
    ),
    case(
        outbound(to=(LINUS,), cc=(Address(email=ADA_BCC),)),
        facts(subaccount(ACME, CON_LINUS)),
        skipped(ADA_ACME, Reason.CONTACT_NOT_ASSIGNED),
        id="P6-contact-assigned-to-someone-else",
    ),
    case(
        outbound(to=(BOB,), cc=(Address(email=ADA_BCC),)),
        facts(subaccount(ACME)),
        skipped(ADA_ACME, Reason.UNKNOWN_RECIPIENTS),
        id="P6-only-users-addressed",
    ),
    case(
        outbound(to=(STRANGER,), cc=(Address(email=BOB_BCC),)),
        facts(subaccount(ACME)),
        skipped(ADA_ACME, Reason.UNKNOWN_RECIPIENTS),
        id="P6-another-users-bcc-address-does-not-count",
    ),
    case(
        outbound(to=(STRANGER,), cc=(Address(email=ADA_BCC),)),
        facts(subaccount(ACME), subaccount(GLOBEX), bindings=(ADA_ACME, ADA_GLOBEX)),
        filed(
            ADA_ACME,
            new_contact_id(ACME, "stranger@unknown.example"),
            "P6",
            new_contact=created(ACME, STRANGER),
        ),
        filed(
            ADA_GLOBEX,
            new_contact_id(GLOBEX, "stranger@unknown.example"),
            "P6",
            new_contact=created(GLOBEX, STRANGER),
        ),
        id="P6-each-subaccount-creates-its-own-contact",
    ),
    case(
        inbound(sender=STRANGER),
        facts(
            subaccount(
                ACME, contact(new_contact_id(ACME, "stranger@unknown.example"), "stranger@unknown.example")
            )
        ),
        filed(ADA_ACME, new_contact_id(ACME, "stranger@unknown.example"), "G3"),
        id="P6-later-inbound-from-created-contact-syncs",
    ),
    case(
        inbound(sender=BOB),
        facts(subaccount(ACME, CON_GRACE)),
        skipped(ADA_ACME, Reason.SENDER_IS_USER),
        id="P7-mail-from-another-user",
    ),
    case(
        inbound(sender=BOB),
        facts(subaccount(ACME, CON_GRACE, thread=THREAD), thread_owner=ACME),
        skipped(ADA_ACME, Reason.SENDER_IS_USER),
        id="P7-mail-from-another-user-inside-known-thread",
    ),
    case(
        inbound(sender=BOB),
        facts(subaccount(ACME, _BOB_AS_CONTACT)),
        skipped(ADA_ACME, Reason.SENDER_IS_USER),
        id="P7-user-address-also-on-a-contact-record",
    ),
    case(
        inbound(sender=Address(email="BOB@acme-corp.com")),
        facts(
            subaccount(ACME, _BOB_AS_CONTACT),
            subaccount(GLOBEX, _BOB_AS_CONTACT, users=_NO_BOB),
            bindings=(ADA_ACME, ADA_GLOBEX),
        ),
        skipped(ADA_ACME, Reason.SENDER_IS_USER),
        filed(ADA_GLOBEX, "con_bob", "G3"),
        id="P7-user-of-one-subaccount-is-a-contact-in-another",
    ),
]


@pytest.mark.parametrize(
    ("message", "routing", "expected"),
    [*CONNECTION_CASES, *GMAIL_CASES, *OUTLOOK_CASES, *SUBACCOUNT_CASES, *PARTICIPANT_CASES],
)
def test_rule(message: MessageIngested, routing: RoutingFacts, expected: list[Outcome]) -> None:
    assert outcomes(route_message(message, routing)) == expected


# --- O1 and P3 stated on their own, as the SPEC words them ----------------------------------------------


def test_o1_outlook_thread_started_by_contact_does_not_sync() -> None:
    decision = route_message(inbound(provider="outlook"), facts(subaccount(ACME, CON_GRACE)))

    assert outcomes(decision) == [skipped(ADA_ACME, Reason.OUTLOOK_THREAD_NOT_CRM_STARTED)]


def test_p3_bcc_copy_first_to_that_is_a_contact_owns() -> None:
    message = outbound(to=(STRANGER, GRACE), cc=(Address(email=ADA_BCC),))

    decision = route_message(message, facts(subaccount(ACME, CON_GRACE)))

    assert outcomes(decision) == [filed(ADA_ACME, "con_grace", "P6")]


# --- D2: deterministic ids ------------------------------------------------------------------------------


def test_d2_conversation_id_is_stable_and_per_subaccount_and_contact() -> None:
    conversation = conversation_id_for(ACME, "con_grace")

    assert conversation == conversation_id_for(ACME, "con_grace")
    assert UUID(conversation).version == 5
    assert (
        len({conversation, conversation_id_for(GLOBEX, "con_grace"), conversation_id_for(ACME, "con_x")}) == 3
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(
            ("<a.1@mail.example>", "mbx_1", "p1"),
            ("a.1@mail.example", "mbx_2", "p2"),
            id="D2-same-message-id-across-mailboxes-and-provider-ids",
        ),
        pytest.param(
            (" <a.1@mail.example> ", "mbx_1", "p1"),
            ("<a.1@mail.example>", "mbx_1", "p9"),
            id="D2-message-id-brackets-and-spaces-ignored",
        ),
        pytest.param((None, "mbx_1", "p1"), ("", "mbx_1", "p1"), id="D2-no-message-id-uses-provider-id"),
    ],
)
def test_d2_message_key_identifies_one_message(
    first: tuple[str | None, str, str], second: tuple[str | None, str, str]
) -> None:
    assert message_key(*first) == message_key(*second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(
            ("<A.1@mail.example>", "m", "p"),
            ("<a.1@mail.example>", "m", "p"),
            id="D2-message-id-is-case-sensitive",
        ),
        pytest.param((None, "mbx_1", "p1"), (None, "mbx_2", "p1"), id="D2-provider-id-is-per-mailbox"),
        pytest.param((None, "mbx_1", "p1"), (None, "mbx_1", "p2"), id="D2-distinct-provider-ids"),
        pytest.param(("<p1@x>", "mbx_1", "p1"), (None, "mbx_1", "p1"), id="D2-rfc-and-provider-keys-differ"),
    ],
)
def test_d2_message_key_tells_messages_apart(
    first: tuple[str | None, str, str], second: tuple[str | None, str, str]
) -> None:
    assert message_key(*first) != message_key(*second)


def test_d2_message_id_is_stable_per_conversation_and_key() -> None:
    key = message_key("<msg-0001@mail.example>", "mbx_gmail_ada", "msg-0001")
    conversation = conversation_id_for(ACME, "con_grace")

    assert message_id_for(conversation, key) == message_id_for(conversation, key)
    assert message_id_for(conversation, key) != message_id_for(conversation_id_for(GLOBEX, "con_grace"), key)
    assert message_id_for(conversation, key) != message_id_for(conversation, message_key(None, "mbx", "msg"))


def test_d2_new_contact_id_ignores_address_case_and_space() -> None:
    assert new_contact_id(ACME, " Stranger@Unknown.example") == new_contact_id(
        ACME, "stranger@unknown.example"
    )
    assert new_contact_id(ACME, "stranger@unknown.example") != new_contact_id(
        GLOBEX, "stranger@unknown.example"
    )


def test_d2_redelivered_message_routes_to_the_same_filings_and_message_ids() -> None:
    routing = facts(
        subaccount(ACME, CON_GRACE),
        subaccount(GLOBEX, contact("con_grace_g", "grace.hopper@navy.example")),
        bindings=(ADA_ACME, ADA_GLOBEX),
    )
    redelivery = MESSAGE_INGESTED.model_copy(update={"event_id": UUID(int=99)})

    first, second = route_message(MESSAGE_INGESTED, routing), route_message(redelivery, routing)

    assert first == second
    key = message_key(MESSAGE_INGESTED.internet_message_id, MESSAGE_INGESTED.mailbox_id, "18e0f3c2a7b4d5e6")
    ids = [message_id_for(f.conversation_id, key) for f in first.filings]
    assert ids == [message_id_for(f.conversation_id, key) for f in second.filings]
    assert len(set(ids)) == 2
