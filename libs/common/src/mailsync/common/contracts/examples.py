"""Realistic, deterministic example instances of every contract (fixed ids and times).

Used by the contract tests (round trips, JSON Schema validation) and by the documentation. The story:
Ada (user ``usr_ada``) of subaccount ``loc_acme`` connected ``ada@acme-corp.com`` (Gmail); Grace Hopper
(contact ``con_grace``, assigned to Ada) writes in, Ada replies from the CRM.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

from mailsync.common.contracts.connections import ConnectionChanged
from mailsync.common.contracts.conversations import (
    ConversationMessageRecorded,
    MessageNotSynced,
    NotSyncedReason,
)
from mailsync.common.contracts.dead_letters import DeadLettered, encode_payload
from mailsync.common.contracts.directory import (
    ContactRemoved,
    ContactUpserted,
    SubaccountUserRemoved,
    SubaccountUserUpserted,
)
from mailsync.common.contracts.mail import (
    Address,
    AttachmentMeta,
    BlobRef,
    MailboxChanged,
    MessageBody,
    MessageIngested,
)
from mailsync.common.contracts.sending import (
    ReplyContext,
    SendCompleted,
    SendEmail,
    SendFailureReason,
)

if TYPE_CHECKING:
    from mailsync.common.contracts.base import Event

__all__ = [
    "CONNECTION_CONNECTED",
    "CONNECTION_MAILBOX_REPLACED",
    "CONNECTION_REAUTH_REQUIRED",
    "CONTACT_REMOVED",
    "CONTACT_UPSERTED",
    "CONVERSATION_MESSAGE_RECORDED",
    "DEAD_LETTERED",
    "DEAD_LETTERED_BINARY",
    "EXAMPLES",
    "MAILBOX_CHANGED_GMAIL",
    "MAILBOX_CHANGED_OUTLOOK",
    "MESSAGE_INGESTED",
    "MESSAGE_INGESTED_OUTLOOK_LARGE",
    "MESSAGE_NOT_SYNCED",
    "SEND_COMPLETED_FAILED",
    "SEND_COMPLETED_QUOTA_EXCEEDED",
    "SEND_COMPLETED_SENT",
    "SEND_COMPLETED_SUBACCOUNT_PROVIDER",
    "SEND_EMAIL_BULK",
    "SEND_EMAIL_REPLY",
    "SUBACCOUNT_USER_REMOVED",
    "SUBACCOUNT_USER_UPSERTED",
]


def _at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 3, 2, hour, minute, second, tzinfo=UTC)


def _id(n: int) -> UUID:
    return UUID(f"00000000-0000-4000-8000-{n:012d}")


_ADA = Address(email="ada@acme-corp.com", name="Ada Lovelace")
_GRACE = Address(email="Grace.Hopper@navy.example", name="Grace Hopper")
_BOB = Address(email="bob+crm@acme-corp.com")
_PDF_BLOB = BlobRef(
    store="gridfs",
    id="65f0c0ffee0000000000a001",
    size_bytes=182_044,
    sha256="9f2b5c1e0d4a7b3c8e6f1a2d5c7b9e0f3a6d8c1b4e7f0a2d5c8b1e4f7a0d3c6b",
)
_HTML_BLOB = BlobRef(
    store="gridfs",
    id="65f0c0ffee0000000000a002",
    size_bytes=412_880,
    sha256="0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
)
_PDF = AttachmentMeta(
    filename="Q1 proposal.pdf",
    content_type="application/pdf",
    size_bytes=182_044,
    provider_attachment_id="ANGjdJ8wq3Zb2",
    blob=_PDF_BLOB,
)


def _inline_body(text: str | None, html: str | None) -> MessageBody:
    return MessageBody(text=text, html=html)  # size_bytes is computed from the parts


_GRACE_BODY = _inline_body(
    "Hi Ada,\n\nCould you send me the Q1 proposal?\n\nGrace",
    "<p>Hi Ada,</p><p>Could you send me the Q1 proposal?</p><p>Grace</p>",
)
_GRACE_MESSAGE_ID = "<CAF=grace.1234@mail.navy.example>"

MAILBOX_CHANGED_GMAIL = MailboxChanged(
    event_id=_id(1),
    occurred_at=_at(9, 15, 1),
    provider="gmail",
    mailbox_id="mbx_gmail_ada",
    email_address="ada@acme-corp.com",
    source="push",
    history_id=4_871_223,
    received_at=_at(9, 15),
)
MAILBOX_CHANGED_OUTLOOK = MailboxChanged(
    event_id=_id(2),
    occurred_at=_at(9, 20, 1),
    provider="outlook",
    mailbox_id="mbx_outlook_bob",
    email_address="bob@contoso.example",
    source="push",
    subscription_id="7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
    change_type="created",
    resource="Users/4f1c8a52/Messages/AAMkAGUAAAwTW09AAA=",
    received_at=_at(9, 20),
)
MESSAGE_INGESTED = MessageIngested(
    event_id=_id(3),
    occurred_at=_at(9, 15, 3),
    provider="gmail",
    mailbox_id="mbx_gmail_ada",
    mailbox_address="ada@acme-corp.com",
    connection_ids=("conn_ada_acme", "conn_ada_globex"),
    provider_message_id="18e0f3c2a7b4d5e6",
    provider_thread_id="18e0f3c2a7b4d5e6",
    internet_message_id=_GRACE_MESSAGE_ID,
    subject="Q1 proposal",
    from_=_GRACE,
    to=(_ADA,),
    cc=(_BOB,),
    direction="inbound",
    sent_by_owner=False,
    sent_at=_at(9, 14, 50),
    received_at=_at(9, 14, 52),
    folders=("INBOX", "UNREAD", "CATEGORY_PERSONAL"),
    snippet="Hi Ada, Could you send me the Q1 proposal? Grace",
    body=_GRACE_BODY,
    headers={"auto-submitted": "no"},
)
MESSAGE_INGESTED_OUTLOOK_LARGE = MessageIngested(
    event_id=_id(4),
    occurred_at=_at(9, 20, 4),
    provider="outlook",
    mailbox_id="mbx_outlook_bob",
    mailbox_address="bob@contoso.example",
    connection_ids=("conn_bob_acme",),
    provider_message_id="AAMkAGUAAAwTW09AAA=",
    provider_thread_id="AAQkAGUAAAwTW09conv=",
    internet_message_id="<PH0PR11MB4966@PH0PR11MB4966.namprd11.prod.outlook.com>",
    in_reply_to="<crm.7c1e@mail.acme-corp.com>",
    references=("<crm.7c1e@mail.acme-corp.com>",),
    subject="RE: Contract draft",
    from_=Address(email="bob@contoso.example", name="Bob Builder"),
    to=(Address(email="carol@client.example"),),
    reply_to=(Address(email="bob.assistant@contoso.example"),),
    direction="outbound",
    sent_by_owner=True,
    sent_at=_at(9, 19, 58),
    received_at=_at(9, 19, 58),
    folders=("sentitems",),
    snippet="Please find the signed contract attached.",
    body=MessageBody(
        text="Please find the signed contract attached.",
        html_blob=_HTML_BLOB,
        size_bytes=len(b"Please find the signed contract attached.") + _HTML_BLOB.size_bytes,
    ),
    attachments=(
        _PDF,
        AttachmentMeta(
            filename="logo.png",
            content_type="image/png",
            size_bytes=4_096,
            content_id="logo@contoso.example",
            is_inline=True,
            provider_attachment_id="AAMkAGUAAAwTW09AAABEgAQ=",
        ),
    ),
)
SEND_EMAIL_REPLY = SendEmail(
    event_id=_id(5),
    occurred_at=_at(9, 30, 1),
    request_id="crm-conversations:msg_01HQ7Z4X",
    kind="individual",
    subaccount_id="loc_acme",
    user_id="usr_ada",
    contact_id="con_grace",
    conversation_id="conv_grace",
    to=(_GRACE,),
    subject="Re: Q1 proposal",
    body=_inline_body("Hi Grace,\n\nHere it is.\n\nAda", "<p>Hi Grace,</p><p>Here it is.</p><p>Ada</p>"),
    attachments=(_PDF,),
    reply_context=ReplyContext(
        conversation_id="conv_grace",
        provider_thread_id="18e0f3c2a7b4d5e6",
        in_reply_to=_GRACE_MESSAGE_ID,
        references=(_GRACE_MESSAGE_ID,),
    ),
    requested_at=_at(9, 30),
)
SEND_EMAIL_BULK = SendEmail(
    event_id=_id(6),
    occurred_at=_at(10, 0, 1),
    request_id="campaigns:cmp_88:con_grace",
    kind="bulk",
    subaccount_id="loc_acme",
    contact_id="con_grace",
    to=(_GRACE,),
    subject="March newsletter",
    body=_inline_body(None, "<h1>What's new in March</h1>"),
    requested_at=_at(10, 0),
)
SEND_COMPLETED_SENT = SendCompleted(
    event_id=_id(7),
    occurred_at=_at(9, 30, 3),
    request_id="crm-conversations:msg_01HQ7Z4X",
    status="sent",
    route="mailbox",
    provider="gmail",
    connection_id="conn_ada_acme",
    mailbox_address="ada@acme-corp.com",
    mailbox_id="mbx_gmail_ada",
    provider_message_id="18e0f5d1b2c3a4f5",
    provider_thread_id="18e0f3c2a7b4d5e6",
    internet_message_id="<CAK=ada.5678@mail.gmail.com>",
    subaccount_id="loc_acme",
    user_id="usr_ada",
    contact_id="con_grace",
    conversation_id="conv_grace",
    kind="individual",
)
SEND_COMPLETED_SUBACCOUNT_PROVIDER = SendCompleted(
    event_id=_id(8),
    occurred_at=_at(10, 0, 2),
    request_id="campaigns:cmp_88:con_grace",
    status="sent",
    route="subaccount_provider",
    internet_message_id="<cmp88.con_grace@mailer.acme-corp.com>",
    subaccount_id="loc_acme",
    contact_id="con_grace",
    kind="bulk",
)
SEND_COMPLETED_QUOTA_EXCEEDED = SendCompleted(
    event_id=_id(9),
    occurred_at=_at(23, 50, 1),
    request_id="crm-conversations:msg_01HQ9K2M",
    status="refused",
    reason=SendFailureReason.QUOTA_EXCEEDED,
    detail="The mailbox ada@acme-corp.com reached its limit of 500 emails per day.",
    route="mailbox",
    provider="gmail",
    connection_id="conn_ada_acme",
    mailbox_address="ada@acme-corp.com",
    quota_resets_at=datetime(2026, 3, 3, 8, 0, tzinfo=UTC),
    subaccount_id="loc_acme",
    user_id="usr_ada",
    contact_id="con_grace",
    kind="individual",
)
SEND_COMPLETED_FAILED = SendCompleted(
    event_id=_id(10),
    occurred_at=_at(11, 5, 9),
    request_id="crm-conversations:msg_01HQA0B1",
    status="failed",
    reason=SendFailureReason.PROVIDER_REJECTED,
    detail="Gmail rejected the message: 400 Invalid To header.",
    route="mailbox",
    provider="gmail",
    connection_id="conn_ada_acme",
    mailbox_address="ada@acme-corp.com",
    subaccount_id="loc_acme",
    user_id="usr_ada",
    kind="individual",
)
CONNECTION_CONNECTED = ConnectionChanged(
    event_id=_id(11),
    occurred_at=_at(8, 0, 1),
    connection_id="conn_ada_acme",
    subaccount_id="loc_acme",
    user_id="usr_ada",
    provider="gmail",
    mailbox_id="mbx_gmail_ada",
    email_address="ada@acme-corp.com",
    status="active",
    change="connected",
    connected_at=_at(8, 0),
    reason="user_request",
)
CONNECTION_MAILBOX_REPLACED = ConnectionChanged(
    event_id=_id(12),
    occurred_at=_at(12, 0, 1),
    connection_id="conn_ada_acme",
    subaccount_id="loc_acme",
    user_id="usr_ada",
    provider="outlook",
    mailbox_id="mbx_outlook_ada",
    email_address="ada.lovelace@acme-corp.example",
    status="active",
    change="mailbox_replaced",
    previous_mailbox_id="mbx_gmail_ada",
    previous_email_address="ada@acme-corp.com",
    connected_at=_at(12, 0),
    last_synced_at=_at(11, 59),
    reason="user_request",
)
CONNECTION_REAUTH_REQUIRED = ConnectionChanged(
    event_id=_id(13),
    occurred_at=_at(13, 0, 1),
    connection_id="conn_ada_globex",
    subaccount_id="loc_globex",
    user_id="usr_ada",
    provider="gmail",
    mailbox_id="mbx_gmail_ada",
    email_address="ada@acme-corp.com",
    status="needs_reauth",
    change="reauth_required",
    connected_at=_at(8, 5),
    last_synced_at=_at(12, 58),
    reason="invalid_grant",
)
SUBACCOUNT_USER_UPSERTED = SubaccountUserUpserted(
    event_id=_id(14),
    occurred_at=_at(7, 0),
    subaccount_id="loc_acme",
    user_id="usr_ada",
    email_addresses=("ada@acme-corp.com", "ada.lovelace@acme-corp.example"),
    bcc_address="bcc.usr_ada@inbound.crm.example",
    display_name="Ada Lovelace",
    revision=7,
)
SUBACCOUNT_USER_REMOVED = SubaccountUserRemoved(
    event_id=_id(15),
    occurred_at=_at(18, 0),
    subaccount_id="loc_acme",
    user_id="usr_bob",
    revision=12,
)
CONTACT_UPSERTED = ContactUpserted(
    event_id=_id(16),
    occurred_at=_at(7, 5),
    subaccount_id="loc_acme",
    contact_id="con_grace",
    email_addresses=("Grace.Hopper@navy.example",),
    assigned_user_id="usr_ada",
    created_at=datetime(2025, 11, 4, 16, 20, tzinfo=UTC),
    revision=3,
)
CONTACT_REMOVED = ContactRemoved(
    event_id=_id(17),
    occurred_at=_at(18, 5),
    subaccount_id="loc_acme",
    contact_id="con_duplicate_grace",
    revision=2,
)
CONVERSATION_MESSAGE_RECORDED = ConversationMessageRecorded(
    event_id=_id(18),
    occurred_at=_at(9, 15, 5),
    subaccount_id="loc_acme",
    contact_id="con_grace",
    conversation_id="conv_grace",
    message_id="msg_01HQ7Y9T",
    connection_id="conn_ada_acme",
    user_id="usr_ada",
    provider="gmail",
    provider_message_id="18e0f3c2a7b4d5e6",
    provider_thread_id="18e0f3c2a7b4d5e6",
    internet_message_id=_GRACE_MESSAGE_ID,
    direction="inbound",
    subject="Q1 proposal",
    from_=_GRACE,
    to=(_ADA,),
    cc=(_BOB,),
    sent_at=_at(9, 14, 50),
    snippet="Hi Ada, Could you send me the Q1 proposal? Grace",
    body=_GRACE_BODY,
    recorded_at=_at(9, 15, 5),
)
MESSAGE_NOT_SYNCED = MessageNotSynced(
    event_id=_id(19),
    occurred_at=_at(9, 15, 5),
    provider="gmail",
    mailbox_id="mbx_gmail_ada",
    provider_message_id="18e0f3c2a7b4d5e6",
    provider_thread_id="18e0f3c2a7b4d5e6",
    internet_message_id=_GRACE_MESSAGE_ID,
    subaccount_id="loc_globex",
    connection_id="conn_ada_globex",
    reason=NotSyncedReason.CONTACT_NOT_ASSIGNED,
    detail=(
        "Grace.Hopper@navy.example is a contact of loc_globex but is assigned to usr_carl, not usr_ada (M1)."
    ),
)
DEAD_LETTERED = DeadLettered(
    event_id=_id(20),
    occurred_at=_at(14, 0, 1),
    service="sender",
    original_topic="mailsync.send.commands.v1",
    partition=3,
    offset=120_488,
    key=None,
    payload='{"kind": "individual", "to": []}',
    headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
    error_type="pydantic_core.ValidationError",
    reason="request_id: Field required",
    attempts=1,
    first_failed_at=_at(14, 0),
    dead_lettered_at=_at(14, 0),
)
_BINARY_PAYLOAD, _BINARY_ENCODING = encode_payload(b"\x00\x9f\x92\x96 not json")
DEAD_LETTERED_BINARY = DeadLettered(
    event_id=_id(21),
    occurred_at=_at(14, 10, 1),
    service="router",
    original_topic="mailsync.mail.messages-ingested.v1",
    partition=0,
    offset=42,
    key="mbx_gmail_ada",
    payload=_BINARY_PAYLOAD,
    payload_encoding=_BINARY_ENCODING,
    error_type="UnicodeDecodeError",
    reason="'utf-8' codec can't decode byte 0x9f in position 1: invalid start byte",
    attempts=1,
    first_failed_at=_at(14, 10),
    dead_lettered_at=_at(14, 10),
)

EXAMPLES: tuple[Event, ...] = (
    MAILBOX_CHANGED_GMAIL,
    MAILBOX_CHANGED_OUTLOOK,
    MESSAGE_INGESTED,
    MESSAGE_INGESTED_OUTLOOK_LARGE,
    SEND_EMAIL_REPLY,
    SEND_EMAIL_BULK,
    SEND_COMPLETED_SENT,
    SEND_COMPLETED_SUBACCOUNT_PROVIDER,
    SEND_COMPLETED_QUOTA_EXCEEDED,
    SEND_COMPLETED_FAILED,
    CONNECTION_CONNECTED,
    CONNECTION_MAILBOX_REPLACED,
    CONNECTION_REAUTH_REQUIRED,
    SUBACCOUNT_USER_UPSERTED,
    SUBACCOUNT_USER_REMOVED,
    CONTACT_UPSERTED,
    CONTACT_REMOVED,
    CONVERSATION_MESSAGE_RECORDED,
    MESSAGE_NOT_SYNCED,
    DEAD_LETTERED,
    DEAD_LETTERED_BINARY,
)
"""Every example, at least one per contract model."""
