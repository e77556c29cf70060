"""One mailbox in several subaccounts (M1-M3), who a Gmail message is filed under (P1-P7), and how Gmail
sync starts (G1, G3), end to end: mail written at the Gmail sandbox, CRM conversations read from the
router's API, and the reasons for what does not sync read from the not-synced topic."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from mailsync.common.contracts import NotSyncedReason, ReplyContext
from mailsync.devstack.crm import Crm
from mailsync.devstack.observe import wait_idle
from mailsync.devstack.product import Product
from mailsync.devstack.scenarios import (
    connect_gmail_elsewhere,
    not_synced,
    recorded_in,
    wait_not_synced,
)
from mailsync.devstack.seed import ConnectedUser, Seeder

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.kafka,
    pytest.mark.mongodb,
    pytest.mark.pubsub,
]

LATER = 1.1
"""Conversations are ordered by `sent_at` and a Date header has whole seconds: later mail waits this long."""

Fresh = Callable[[str], str]


async def one_mailbox_in_three_subaccounts(seeder: Seeder, fresh: Fresh) -> list[ConnectedUser]:
    """The same user connects the same Gmail mailbox in three subaccounts."""
    address = f"{fresh('ada')}@gmail.example"
    first = await seeder.add_gmail_user(fresh("sub_a"), "usr_ada", address)
    others = [await connect_gmail_elsewhere(seeder, fresh(s), "usr_ada", address) for s in ("sub_b", "sub_c")]
    connections = [first, *others]
    assert len({c.mailbox_id for c in connections}) == 1
    assert len({c.connection_id for c in connections}) == 3
    return connections


async def test_m1_contact_in_two_of_three_subaccounts_is_filed_in_exactly_those_two(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Fresh
) -> None:
    a, b, c = await one_mailbox_in_three_subaccounts(seeder, fresh)
    sender = f"{fresh('dora')}@contact.example"
    await seeder.add_contact(a.subaccount_id, "ct_dora_a", sender, assigned_user_id="usr_ada")
    await seeder.add_contact(b.subaccount_id, "ct_dora_b", sender, assigned_user_id="usr_ada")
    await seeder.add_contact(c.subaccount_id, "ct_dora_c", sender, assigned_user_id="usr_bob")

    mail = await seeder.gmail.deliver_inbound(a.address, sender=sender, subject="Hello", text="Hi Ada!")

    in_a = await crm.conversation_with(a.subaccount_id, "ct_dora_a", lambda m: len(m) == 1)
    in_b = await crm.conversation_with(b.subaccount_id, "ct_dora_b", lambda m: len(m) == 1)
    assert [(m["provider_message_id"], m["direction"], m["rule"]) for m in in_a] == [
        (mail["id"], "inbound", "G3")
    ]
    assert [(m["provider_message_id"], m["connection_id"]) for m in in_b] == [(mail["id"], b.connection_id)]
    skips = await wait_not_synced(crm, a.mailbox_id, mail["id"], [c.subaccount_id])
    assert skips[c.subaccount_id].reason == NotSyncedReason.CONTACT_NOT_ASSIGNED
    assert skips[c.subaccount_id].connection_id == c.connection_id

    await wait_idle(http, product.endpoints)
    assert await crm.conversation(c.subaccount_id, "ct_dora_c") == []
    assert recorded_in(crm, c.subaccount_id) == []
    assert set(not_synced(crm, a.mailbox_id, mail["id"])) == {c.subaccount_id}
    assert [m["id"] for m in await seeder.gmail.messages(a.address)] == [mail["id"]]


async def test_m2_the_subaccount_that_replies_keeps_the_thread_and_the_others_stop_syncing_it(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Fresh
) -> None:
    a, b, c = await one_mailbox_in_three_subaccounts(seeder, fresh)
    sender = f"{fresh('dora')}@contact.example"
    for connected in (a, b, c):
        await seeder.add_contact(connected.subaccount_id, "ct_dora", sender, assigned_user_id="usr_ada")

    # M1: the contact's first email reaches all three subaccounts.
    first = await seeder.gmail.deliver_inbound(a.address, sender=sender, subject="Offer", text="Any news?")
    for connected in (a, b, c):
        await crm.conversation_with(connected.subaccount_id, "ct_dora", lambda m: len(m) == 1)

    # M2: subaccount b replies from its CRM and so claims the thread.
    await asyncio.sleep(LATER)
    first_id = first["headers"]["Message-ID"]
    answer = await crm.result(
        await crm.send_email(
            subaccount_id=b.subaccount_id,
            user_id="usr_ada",
            contact_id="ct_dora",
            to=[sender],
            subject="Re: Offer",
            text="Yes: here it is.",
            reply_context=ReplyContext(
                provider_thread_id=first["threadId"], in_reply_to=first_id, references=(first_id,)
            ),
        )
    )
    assert (answer.status, answer.connection_id, answer.provider_thread_id) == (
        "sent",
        b.connection_id,
        first["threadId"],
    )
    await crm.conversation_with(b.subaccount_id, "ct_dora", lambda m: len(m) == 2)

    # The contact writes again in the thread: only subaccount b files it.
    await asyncio.sleep(LATER)
    again = await seeder.gmail.deliver_inbound(
        a.address,
        sender=sender,
        subject="Re: Offer",
        text="Thanks, signed.",
        in_reply_to=answer.internet_message_id,
        references=f"{first_id} {answer.internet_message_id}",
    )
    assert again["threadId"] == first["threadId"]
    in_b = await crm.conversation_with(b.subaccount_id, "ct_dora", lambda m: len(m) == 3)
    assert [(m["direction"], m["provider_message_id"]) for m in in_b] == [
        ("inbound", first["id"]),
        ("outbound", answer.provider_message_id),
        ("inbound", again["id"]),
    ]
    others = [a.subaccount_id, c.subaccount_id]
    for message_id in (answer.provider_message_id, again["id"]):
        assert message_id is not None
        skips = await wait_not_synced(crm, a.mailbox_id, message_id, others)
        assert {s: skips[s].reason for s in others} == dict.fromkeys(
            others, NotSyncedReason.THREAD_CLAIMED_BY_OTHER_SUBACCOUNT
        )

    await wait_idle(http, product.endpoints)
    for subaccount in others:
        conversation = await crm.conversation(subaccount, "ct_dora")
        assert [m["provider_message_id"] for m in conversation] == [first["id"]]
    threads = await seeder.gmail.threads(a.address)
    assert [(t["threadId"], len(t["messageIds"])) for t in threads] == [(first["threadId"], 3)]
    sent = await seeder.gmail.messages(a.address, label="SENT")
    assert [(m["id"], m["threadId"]) for m in sent] == [(answer.provider_message_id, first["threadId"])]


async def test_m3_a_crm_started_thread_is_reflected_only_in_the_subaccount_that_sent_it(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Fresh
) -> None:
    a, b, c = await one_mailbox_in_three_subaccounts(seeder, fresh)
    contact = f"{fresh('dora')}@contact.example"
    for connected in (a, b, c):
        await seeder.add_contact(connected.subaccount_id, "ct_dora", contact, assigned_user_id="usr_ada")

    started = await crm.result(
        await crm.send_email(
            subaccount_id=c.subaccount_id,
            user_id="usr_ada",
            contact_id="ct_dora",
            to=[contact],
            subject="Welcome",
            text="Welcome aboard.",
        )
    )
    assert (started.status, started.connection_id, started.mailbox_address) == (
        "sent",
        c.connection_id,
        a.address,
    )
    assert started.provider_message_id is not None
    await crm.conversation_with(c.subaccount_id, "ct_dora", lambda m: len(m) == 1)

    await asyncio.sleep(LATER)
    reply = await seeder.gmail.deliver_inbound(
        a.address,
        sender=contact,
        subject="Re: Welcome",
        text="Glad to be here.",
        in_reply_to=started.internet_message_id,
        references=started.internet_message_id,
    )
    assert reply["threadId"] == started.provider_thread_id
    in_c = await crm.conversation_with(c.subaccount_id, "ct_dora", lambda m: len(m) == 2)
    assert [(m["direction"], m["provider_message_id"]) for m in in_c] == [
        ("outbound", started.provider_message_id),
        ("inbound", reply["id"]),
    ]
    others = [a.subaccount_id, b.subaccount_id]
    for message_id in (started.provider_message_id, reply["id"]):
        skips = await wait_not_synced(crm, a.mailbox_id, message_id, others)
        assert {s: skips[s].reason for s in others} == dict.fromkeys(
            others, NotSyncedReason.THREAD_CLAIMED_BY_OTHER_SUBACCOUNT
        )

    await wait_idle(http, product.endpoints)
    for subaccount in others:
        assert await crm.conversation(subaccount, "ct_dora") == []
        assert recorded_in(crm, subaccount) == []
    sent = await seeder.gmail.messages(a.address, label="SENT")
    assert [(m["id"], m["threadId"]) for m in sent] == [
        (started.provider_message_id, started.provider_thread_id)
    ]


async def test_g1_g3_only_an_assigned_contact_starts_gmail_sync_and_its_later_mail_joins_the_thread(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Fresh
) -> None:
    sub = fresh("sub")
    user = await seeder.add_gmail_user(sub, "usr_ada", f"{fresh('ada')}@gmail.example")
    contact = await seeder.add_contact(
        sub, "ct_dora", f"{fresh('dora')}@contact.example", assigned_user_id=user.user_id
    )
    others = await seeder.add_contact(
        sub, "ct_eve", f"{fresh('eve')}@contact.example", assigned_user_id="usr_bob"
    )
    stranger = f"{fresh('stranger')}@elsewhere.example"

    # G1: neither a stranger, nor a contact of another user, nor a thread the user starts in Gmail syncs.
    unknown = await seeder.gmail.deliver_inbound(user.address, sender=stranger, subject="Hi", text="Buy now")
    unassigned = await seeder.gmail.deliver_inbound(
        user.address, sender=others.address, subject="Question", text="For Bob, really."
    )
    from_gmail = await seeder.gmail.send_as_user(
        user.address, to=[contact.address], subject="Coffee?", text="Started in Gmail."
    )
    expected = {
        unknown["id"]: NotSyncedReason.UNKNOWN_SENDER,
        unassigned["id"]: NotSyncedReason.CONTACT_NOT_ASSIGNED,
        from_gmail["id"]: NotSyncedReason.THREAD_NOT_SYNCED,
    }
    for message_id, reason in expected.items():
        skip = (await wait_not_synced(crm, user.mailbox_id, message_id, [sub]))[sub]
        assert (skip.reason, skip.connection_id) == (reason, user.connection_id)

    # G1b/G3: the assigned contact's email starts sync; its next email in the thread joins that thread.
    await asyncio.sleep(LATER)
    first = await seeder.gmail.deliver_inbound(
        user.address, sender=contact.address, subject="Renewal", text="Time to renew?"
    )
    await asyncio.sleep(LATER)
    follow_up = await seeder.gmail.deliver_inbound(
        user.address,
        sender=contact.address,
        subject="Re: Renewal",
        text="Also: two more seats.",
        in_reply_to=first["headers"]["Message-ID"],
        references=first["headers"]["Message-ID"],
    )
    assert follow_up["threadId"] == first["threadId"]
    conversation = await crm.conversation_with(sub, contact.contact_id, lambda m: len(m) == 2)
    assert [(m["provider_message_id"], m["rule"]) for m in conversation] == [
        (first["id"], "G3"),
        (follow_up["id"], "G2"),
    ]
    assert {m["provider_thread_id"] for m in conversation} == {first["threadId"]}
    assert {m["conversation_id"] for m in conversation} == {conversation[0]["conversation_id"]}

    await wait_idle(http, product.endpoints)
    assert await crm.conversation(sub, others.contact_id) == []
    assert recorded_in(crm, sub) == [(contact.contact_id, first["id"]), (contact.contact_id, follow_up["id"])]


async def test_p1_p2_mail_copying_the_user_is_filed_under_the_contact_and_no_contact_is_made_for_copies(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Fresh
) -> None:
    sub = fresh("sub")
    user = await seeder.add_gmail_user(sub, "usr_ada", f"{fresh('ada')}@gmail.example")
    contact = await seeder.add_contact(
        sub, "ct_dora", f"{fresh('dora')}@contact.example", assigned_user_id=user.user_id
    )
    partner = f"{fresh('carol')}@partner.example"
    copied = f"{fresh('copied')}@elsewhere.example"

    # P1: the user is one of several To recipients, with a stranger in Cc.
    several = await seeder.gmail.deliver_inbound(
        user.address, sender=contact.address, to=[partner, user.address], cc=[copied], subject="A", text="1"
    )
    # P2: the contact writes to someone else, the user in Cc.
    await asyncio.sleep(LATER)
    in_cc = await seeder.gmail.deliver_inbound(
        user.address, sender=contact.address, to=[partner], cc=[user.address], subject="B", text="2"
    )
    # P1: the user only in Bcc.
    await asyncio.sleep(LATER)
    in_bcc = await seeder.gmail.deliver_inbound(
        user.address, sender=contact.address, to=[partner], cc=[copied], subject="C", text="3"
    )

    conversation = await crm.conversation_with(sub, contact.contact_id, lambda m: len(m) == 3)
    assert [m["provider_message_id"] for m in conversation] == [several["id"], in_cc["id"], in_bcc["id"]]
    assert {m["direction"] for m in conversation} == {"inbound"}

    await wait_idle(http, product.endpoints)
    filed = [e for e in crm.recorded if e.subaccount_id == sub]
    assert {e.contact_id for e in filed} == {contact.contact_id}
    assert not any(e.contact_created for e in filed)
    assert [e.provider_message_id for e in crm.not_synced if e.mailbox_id == user.mailbox_id] == []


async def test_p3_p6_bcc_address_on_a_gmail_send_files_it_under_the_first_to_contact_and_the_thread_follows(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Fresh
) -> None:
    sub = fresh("sub")
    user = await seeder.add_gmail_user(sub, "usr_ada", f"{fresh('ada')}@gmail.example")
    bcc_address = f"{fresh('bcc')}@bcc.crm.example"
    await crm.upsert_user(sub, user.user_id, [user.address], bcc_address=bcc_address)
    second = await seeder.add_contact(
        sub, "ct_second", f"{fresh('second')}@contact.example", assigned_user_id=user.user_id
    )
    first = await seeder.add_contact(
        sub, "ct_first", f"{fresh('first')}@contact.example", assigned_user_id=user.user_id
    )
    stranger = f"{fresh('stranger')}@elsewhere.example"

    # P3: the first To recipient that is a contact (not the stranger before it) owns the conversation.
    sent = await seeder.gmail.send_as_user(
        user.address,
        to=[stranger, first.address, second.address],
        bcc=[bcc_address],
        subject="Kick-off",
        text="Agenda attached.",
    )
    conversation = await crm.conversation_with(sub, first.contact_id, lambda m: len(m) == 1)
    assert [(m["provider_message_id"], m["direction"], m["rule"]) for m in conversation] == [
        (sent["id"], "outbound", "P6")
    ]

    # P3: later mail of that thread, from the other contact, appears in the same conversation.
    await asyncio.sleep(LATER)
    answer = await seeder.gmail.deliver_inbound(
        user.address,
        sender=second.address,
        to=[user.address, first.address],
        subject="Re: Kick-off",
        text="Count me in.",
        in_reply_to=sent["headers"]["Message-ID"],
        references=sent["headers"]["Message-ID"],
    )
    assert answer["threadId"] == sent["threadId"]
    conversation = await crm.conversation_with(sub, first.contact_id, lambda m: len(m) == 2)
    assert [m["provider_message_id"] for m in conversation] == [sent["id"], answer["id"]]

    await wait_idle(http, product.endpoints)
    assert await crm.conversation(sub, second.contact_id) == []
    filed = [e for e in crm.recorded if e.subaccount_id == sub]
    assert not any(e.contact_created for e in filed)
    assert [m["id"] for m in await seeder.gmail.messages(user.address, label="SENT")] == [sent["id"]]


async def test_p6_p1_bcc_address_makes_the_to_recipient_a_contact_whose_later_mail_syncs(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Fresh
) -> None:
    sub = fresh("sub")
    user = await seeder.add_gmail_user(sub, "usr_ada", f"{fresh('ada')}@gmail.example")
    bcc_address = f"{fresh('bcc')}@bcc.crm.example"
    await crm.upsert_user(sub, user.user_id, [user.address], bcc_address=bcc_address)
    prospect = f"{fresh('prospect')}@newco.example"
    copied = f"{fresh('copied')}@newco.example"

    sent = await seeder.gmail.send_as_user(
        user.address, to=[prospect], cc=[copied], bcc=[bcc_address], subject="Intro", text="Nice to meet you."
    )
    await crm.wait_until(
        lambda: any(e.provider_message_id == sent["id"] for e in crm.recorded), what="the P6 filing"
    )
    created = next(e for e in crm.recorded if e.provider_message_id == sent["id"])
    assert (created.subaccount_id, created.contact_created, created.user_id) == (sub, True, user.user_id)
    assert created.direction == "outbound"
    contact_id = created.contact_id

    # The new contact's reply in the thread, and later a new email of its own, both sync.
    await asyncio.sleep(LATER)
    reply = await seeder.gmail.deliver_inbound(
        user.address,
        sender=prospect,
        subject="Re: Intro",
        text="Likewise.",
        in_reply_to=sent["headers"]["Message-ID"],
        references=sent["headers"]["Message-ID"],
    )
    await asyncio.sleep(LATER)
    fresh_mail = await seeder.gmail.deliver_inbound(
        user.address, sender=prospect, subject="Pricing", text="What does it cost?"
    )
    assert fresh_mail["threadId"] != sent["threadId"]
    conversation = await crm.conversation_with(sub, contact_id, lambda m: len(m) == 3)
    assert [(m["provider_message_id"], m["direction"]) for m in conversation] == [
        (sent["id"], "outbound"),
        (reply["id"], "inbound"),
        (fresh_mail["id"], "inbound"),
    ]
    assert conversation[2]["rule"] == "G3"

    # P1: the Cc recipient did not become a contact.
    await wait_idle(http, product.endpoints)
    filed = [e for e in crm.recorded if e.subaccount_id == sub]
    assert {e.contact_id for e in filed} == {contact_id}
    assert [e.provider_message_id for e in filed if e.contact_created] == [sent["id"]]


async def test_p6_outlook_send_copying_the_bcc_address_creates_the_contact_and_its_reply_syncs(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Fresh
) -> None:
    sub = fresh("sub")
    user = await seeder.add_outlook_user(sub, "usr_grace", f"{fresh('grace')}@sandbox.onmicrosoft.com")
    bcc_address = f"{fresh('bcc')}@bcc.crm.example"
    await crm.upsert_user(sub, user.user_id, [user.address], bcc_address=bcc_address)
    prospect = f"{fresh('prospect')}@newco.example"

    await asyncio.sleep(
        LATER
    )  # Graph's whole-second times: mail in the second of connecting looks older (C7)
    sent = await seeder.graph.send(
        user.address, to=[prospect], bcc=[bcc_address], subject="Demo", body="Shall we book a demo?"
    )
    await crm.wait_until(
        lambda: any(e.provider_message_id == sent["id"] for e in crm.recorded), what="the P6 filing"
    )
    created = next(e for e in crm.recorded if e.provider_message_id == sent["id"])
    assert (created.subaccount_id, created.contact_created, created.direction) == (sub, True, "outbound")

    await asyncio.sleep(LATER)
    reply = await seeder.graph.deliver_inbound(
        user.address, sender=prospect, body="Thursday works.", in_reply_to=sent["id"]
    )
    assert reply["conversationId"] == sent["conversationId"]
    conversation = await crm.conversation_with(sub, created.contact_id, lambda m: len(m) == 2)
    assert [(m["provider_message_id"], m["direction"]) for m in conversation] == [
        (sent["id"], "outbound"),
        (reply["id"], "inbound"),
    ]

    await wait_idle(http, product.endpoints)
    assert not_synced(crm, user.mailbox_id, sent["id"]) == {}
    assert [m["id"] for m in await seeder.graph.folder(user.address, "sentitems")] == [sent["id"]]


async def test_p4_a_message_matching_two_contact_records_is_filed_once_under_the_first_created(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Fresh
) -> None:
    sub = fresh("sub")
    user = await seeder.add_gmail_user(sub, "usr_ada", f"{fresh('ada')}@gmail.example")
    address = f"{fresh('dora')}@contact.example"
    now = datetime.now(UTC)
    # The newer record is announced first: creation time, not arrival order, decides.
    await crm.upsert_contact(sub, "ct_newer", [address], assigned_user_id=user.user_id, created_at=now)
    await crm.upsert_contact(
        sub, "ct_older", [address], assigned_user_id=user.user_id, created_at=now - timedelta(days=30)
    )

    mail = await seeder.gmail.deliver_inbound(user.address, sender=address, subject="Hello", text="Hi!")
    # The same message delivered a second time (a duplicate send with the same Message-ID).
    duplicate = await seeder.gmail.deliver_inbound(
        user.address, sender=address, subject="Hello", text="Hi!", message_id=mail["headers"]["Message-ID"]
    )
    assert duplicate["id"] != mail["id"]

    conversation = await crm.conversation_with(sub, "ct_older", lambda m: len(m) >= 1)
    await wait_idle(http, product.endpoints)
    conversation = await crm.conversation(sub, "ct_older")
    assert len(conversation) == 1
    assert conversation[0]["provider_message_id"] in {mail["id"], duplicate["id"]}
    assert await crm.conversation(sub, "ct_newer") == []
    assert {c for c, _ in recorded_in(crm, sub)} == {"ct_older"}


async def test_p5_a_mail_forwarded_from_gmail_to_a_contact_is_filed_as_sent_under_that_contact(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Fresh
) -> None:
    sub = fresh("sub")
    user = await seeder.add_gmail_user(sub, "usr_ada", f"{fresh('ada')}@gmail.example")
    contact = await seeder.add_contact(
        sub, "ct_dora", f"{fresh('dora')}@contact.example", assigned_user_id=user.user_id
    )
    supplier = f"{fresh('supplier')}@supplier.example"

    original = await seeder.gmail.deliver_inbound(
        user.address, sender=supplier, subject="Price list", text="Our 2027 prices."
    )
    skip = (await wait_not_synced(crm, user.mailbox_id, original["id"], [sub]))[sub]
    assert skip.reason == NotSyncedReason.UNKNOWN_SENDER

    await asyncio.sleep(LATER)
    forward = await seeder.gmail.forward_as_user(
        user.address, original["id"], [contact.address], text="FYI, see below."
    )
    conversation = await crm.conversation_with(sub, contact.contact_id, lambda m: len(m) == 1)
    assert [(m["provider_message_id"], m["direction"], m["rule"]) for m in conversation] == [
        (forward["id"], "outbound", "P5")
    ]
    assert conversation[0]["subject"].lower().startswith("fwd:")

    await wait_idle(http, product.endpoints)
    assert recorded_in(crm, sub) == [(contact.contact_id, forward["id"])]
    sent = await seeder.gmail.messages(user.address, label="SENT")
    assert [m["id"] for m in sent] == [forward["id"]]
    assert contact.address in sent[0]["headers"]["To"]


async def test_p7_mail_from_a_user_of_the_subaccount_is_not_filed_even_when_a_contact_has_the_address(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Fresh
) -> None:
    sub = fresh("sub")
    user = await seeder.add_gmail_user(sub, "usr_ada", f"{fresh('ada')}@gmail.example")
    colleague = f"{fresh('bob')}@company.example"
    await crm.upsert_user(sub, "usr_bob", [colleague])
    await seeder.add_contact(sub, "ct_bob", colleague, assigned_user_id=user.user_id)

    mail = await seeder.gmail.deliver_inbound(user.address, sender=colleague, subject="Lunch", text="Noon?")
    skip = (await wait_not_synced(crm, user.mailbox_id, mail["id"], [sub]))[sub]
    assert (skip.reason, skip.connection_id) == (NotSyncedReason.SENDER_IS_USER, user.connection_id)

    await wait_idle(http, product.endpoints)
    assert await crm.conversation(sub, "ct_bob") == []
    assert recorded_in(crm, sub) == []
