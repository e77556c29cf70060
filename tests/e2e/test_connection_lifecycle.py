"""The connection lifecycle end to end (C1-C7, D1): connecting through the providers' OAuth pages, what the
connection shows, updating the email, disconnecting, losing and regaining the grant, and where sync starts.

Each scenario drives the product only as the CRM and the user do: the ingest services' lifecycle API, the
providers' consent pages, Kafka commands, and mail arriving or being sent at the sandboxes. Afterwards it
reads both sides: the CRM conversation (the router's API, the recorded and not-synced events) and the
mailbox (Sent folder, threads).

Where mail must not sync, the CRM is told why (`MessageNotSynced`) only if mailsync still reads the mailbox
for another connection (the same mailbox in another subaccount): a mailbox no connection reads any more is
not watched and has no tokens, so its later mail is never fetched and the scenarios assert exactly that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from mailsync.common.contracts import (
    MessageNotSynced,
    NotSyncedReason,
    ReplyContext,
    SendCompleted,
    SendFailureReason,
)
from mailsync.devstack.crm import Crm
from mailsync.devstack.lifecycle import (
    authorize,
    connect_gmail_mailbox,
    connection_status,
    disconnect,
    gmail_watched,
    metric_total,
    sender_applied,
    switched,
    update_email,
)
from mailsync.devstack.observe import wait_idle
from mailsync.devstack.product import Product
from mailsync.devstack.seed import ConnectedUser, Contact, Seeder

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.kafka,
    pytest.mark.mongodb,
    pytest.mark.pubsub,
]

LATER = 1.1
"""Provider times have whole seconds and conversations are ordered by them: steps that must be ordered in
time, or fall after a connection was made, wait this long."""

GMAIL_SEND_SCOPE = "https://www.googleapis.com/auth/gmail.send"
GMAIL_READONLY_SCOPE = "https://www.googleapis.com/auth/gmail.readonly"


async def send(
    crm: Crm,
    user: ConnectedUser,
    contact: Contact,
    subject: str,
    text: str,
    *,
    reply_context: ReplyContext | None = None,
) -> SendCompleted:
    """The CRM sends the contact an individual email as `user`; the result."""
    return await crm.result(
        await crm.send_email(
            subaccount_id=user.subaccount_id,
            user_id=user.user_id,
            contact_id=contact.contact_id,
            to=[contact.address],
            subject=subject,
            text=text,
            reply_context=reply_context,
        )
    )


def not_synced(crm: Crm, provider_message_id: str) -> list[MessageNotSynced]:
    """Every `MessageNotSynced` the CRM received for the message."""
    return [e for e in crm.not_synced if e.provider_message_id == provider_message_id]


def recorded_ids(crm: Crm, subaccount_id: str) -> set[str]:
    """Provider message ids the CRM was told were filed in the subaccount."""
    return {e.provider_message_id for e in crm.recorded if e.subaccount_id == subaccount_id}


def at(value: str) -> datetime:
    """An ISO 8601 time of the lifecycle API."""
    return datetime.fromisoformat(value)


async def gmail_ids(seeder: Seeder, address: str, label: str | None = None) -> set[str]:
    """Ids of the messages in a Gmail mailbox (with `label`)."""
    return {m["id"] for m in await seeder.gmail.messages(address, label=label)}


async def test_c2_c3_connections_through_google_and_microsoft_show_provider_mailbox_status_and_last_sync(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Callable[[str], str]
) -> None:
    sub = fresh("sub")
    before = datetime.now(UTC).replace(microsecond=0)
    gmail_user = await seeder.add_gmail_user(sub, "usr_ada", f"{fresh('ada')}@gmail.example")
    outlook_user = await seeder.add_outlook_user(
        sub, "usr_grace", f"{fresh('grace')}@sandbox.onmicrosoft.com"
    )
    gmail_contact = await seeder.add_contact(
        sub, "ct_dora", f"{fresh('dora')}@contact.example", assigned_user_id=gmail_user.user_id
    )
    outlook_contact = await seeder.add_contact(
        sub, "ct_alan", f"{fresh('alan')}@contact.example", assigned_user_id=outlook_user.user_id
    )

    # C3: each connection shows its provider, mailbox address and status.
    for user in (gmail_user, outlook_user):
        shown = await connection_status(http, product.endpoints, user)
        assert (shown["connection_id"], shown["subaccount_id"], shown["user_id"]) == (
            user.connection_id,
            sub,
            user.user_id,
        )
        assert (shown["provider"], shown["email_address"], shown["status"]) == (
            user.provider,
            user.address,
            "active",
        )
        assert before <= at(shown["connected_at"]) <= datetime.now(UTC)

    # C2: Gmail mail flows through Pub/Sub push, Outlook mail through Graph change notifications; C3: the
    # connection then says when it last synced.
    await asyncio.sleep(LATER)
    mail_time = datetime.now(UTC).replace(microsecond=0)
    inbound = await seeder.gmail.deliver_inbound(
        gmail_user.address, sender=gmail_contact.address, subject="Question", text="Do you ship abroad?"
    )
    await crm.conversation_with(
        sub, gmail_contact.contact_id, lambda m: [x["provider_message_id"] for x in m] == [inbound["id"]]
    )
    started = await send(crm, outlook_user, outlook_contact, "Offer", "Our offer is attached below.")
    assert (started.status, started.route, started.provider) == ("sent", "mailbox", "outlook")
    await asyncio.sleep(LATER)
    answer = await seeder.graph.deliver_inbound(
        outlook_user.address,
        sender=outlook_contact.address,
        body="Thanks, reading it.",
        in_reply_to=started.provider_message_id,
    )
    conversation = await crm.conversation_with(sub, outlook_contact.contact_id, lambda m: len(m) == 2)
    assert [m["provider_message_id"] for m in conversation] == [started.provider_message_id, answer["id"]]

    for user in (gmail_user, outlook_user):
        shown = await connection_status(http, product.endpoints, user)
        assert shown["status"] == "active"
        assert shown["last_synced_at"] is not None, f"{user.provider}: no last sync time after syncing"
        assert at(shown["last_synced_at"]) >= mail_time


async def test_c2_a_grant_missing_a_required_scope_is_refused_with_a_clear_message_and_connects_nothing(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Callable[[str], str]
) -> None:
    sub = fresh("sub")
    gmail_address = f"{fresh('ada')}@gmail.example"
    outlook_address = f"{fresh('grace')}@sandbox.onmicrosoft.com"
    await seeder.gmail.create_mailbox(gmail_address)
    await seeder.graph.create_mailbox(outlook_address)
    await crm.upsert_user(sub, "usr_ada", [gmail_address])
    await crm.upsert_user(sub, "usr_grace", [outlook_address])
    changes_before = len(crm.connection_changes)

    # The user unticks "send email on your behalf" on Google's consent screen.
    await seeder.gmail.set_consent(gmail_address, granted_scopes=[GMAIL_READONLY_SCOPE])
    status, body = await authorize(http, product.endpoints, "gmail", sub, "usr_ada", address=gmail_address)
    assert (status, body["error"], body["missing_scopes"]) == (403, "missing_scopes", [GMAIL_SEND_SCOPE])
    assert "permission" in body["message"].lower() or "scope" in body["message"].lower()

    # ... and consents to Mail.ReadWrite only on Microsoft's.
    await seeder.graph.limit_consent(outlook_address, ["User.Read", "Mail.ReadWrite"])
    status, body = await authorize(
        http, product.endpoints, "outlook", sub, "usr_grace", address=outlook_address
    )
    assert (status, body["error"], body["missing_scopes"]) == (403, "missing_scopes", ["Mail.Send"])
    assert "permission" in body["message"].lower() or "scope" in body["message"].lower()

    # Nothing was connected: no connection change, and the user's individual mail is not sent through the
    # mailbox that was half granted.
    await wait_idle(http, product.endpoints)
    assert [c for c in crm.connection_changes[changes_before:] if c.subaccount_id == sub] == []
    recipient = f"{fresh('lead')}@prospects.example"
    result = await crm.result(
        await crm.send_email(
            subaccount_id=sub, user_id="usr_ada", to=[recipient], subject="Hello", text="Nice to meet you."
        )
    )
    assert (result.status, result.route, result.provider) == ("sent", "subaccount_provider", None)
    assert await gmail_ids(seeder, gmail_address, "SENT") == set()

    # Granting everything asked connects the same user.
    await seeder.gmail.set_consent(gmail_address, granted_scopes=None)
    status, body = await authorize(http, product.endpoints, "gmail", sub, "usr_ada", address=gmail_address)
    assert (status, body["change"], body["status"], body["email_address"]) == (
        201,
        "connected",
        "active",
        gmail_address,
    )
    await seeder.graph.limit_consent(outlook_address, None)
    status, body = await authorize(
        http, product.endpoints, "outlook", sub, "usr_grace", address=outlook_address
    )
    assert (status, body["change"], body["status"]) == (201, "connected", "active")


async def test_c1_disconnecting_a_mailbox_in_one_subaccount_leaves_other_users_and_subaccounts_syncing(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Callable[[str], str]
) -> None:
    sub_1, sub_2 = fresh("sub"), fresh("sub")
    ada_address = f"{fresh('ada')}@gmail.example"
    ada_1 = await seeder.add_gmail_user(sub_1, "usr_ada", ada_address)
    bob = await seeder.add_gmail_user(sub_1, "usr_bob", f"{fresh('bob')}@gmail.example")
    ada_2 = await connect_gmail_mailbox(seeder, sub_2, "usr_ada", ada_address)
    carl_address = f"{fresh('carl')}@contact.example"
    carl_1 = await seeder.add_contact(sub_1, "ct_carl", carl_address, assigned_user_id=ada_1.user_id)
    carl_2 = await seeder.add_contact(sub_2, "ct_carl", carl_address, assigned_user_id=ada_2.user_id)
    beth = await seeder.add_contact(
        sub_1, "ct_beth", f"{fresh('beth')}@contact.example", assigned_user_id="usr_bob"
    )

    # Ada disconnects her mailbox in the first subaccount only.
    status, body = await disconnect(http, product.endpoints, ada_1)
    assert (status, body["status"]) == (200, "disconnected")
    await sender_applied(seeder, ada_1.connection_id, "disconnected")
    shown = {
        u.connection_id: (await connection_status(http, product.endpoints, u))["status"]
        for u in (ada_1, ada_2, bob)
    }
    assert shown == {
        ada_1.connection_id: "disconnected",
        ada_2.connection_id: "active",
        bob.connection_id: "active",
    }

    # Inbound: Carl's mail to Ada reaches the second subaccount only; Beth's mail to Bob still syncs.
    await asyncio.sleep(LATER)
    to_ada = await seeder.gmail.deliver_inbound(
        ada_address, sender=carl_address, subject="Renewal", text="Shall we renew?"
    )
    to_bob = await seeder.gmail.deliver_inbound(bob.address, sender=beth.address, subject="Hi", text="Hi Bob")
    await crm.conversation_with(
        sub_2, carl_2.contact_id, lambda m: [x["provider_message_id"] for x in m] == [to_ada["id"]]
    )
    await crm.conversation_with(
        sub_1, beth.contact_id, lambda m: [x["provider_message_id"] for x in m] == [to_bob["id"]]
    )

    # Outbound: only Ada's individual mail in the first subaccount stops going through her mailbox.
    from_bob = await send(crm, bob, beth, "Re: Hi", "Hello Beth")
    from_ada_2 = await send(crm, ada_2, carl_2, "Renewal terms", "Here are the terms.")
    from_ada_1 = await send(crm, ada_1, carl_1, "Renewal, first subaccount", "Sent after disconnecting.")
    assert (from_bob.route, from_bob.mailbox_address) == ("mailbox", bob.address)
    assert (from_ada_2.route, from_ada_2.mailbox_address) == ("mailbox", ada_address)
    assert (from_ada_1.status, from_ada_1.route) == ("sent", "subaccount_provider")
    assert await gmail_ids(seeder, ada_address, "SENT") == {from_ada_2.provider_message_id}

    await wait_idle(http, product.endpoints)
    assert await crm.conversation(sub_1, carl_1.contact_id) == []
    assert [m["provider_message_id"] for m in await crm.conversation(sub_2, carl_2.contact_id)] == [
        to_ada["id"],
        from_ada_2.provider_message_id,
    ]
    skipped = [e for e in not_synced(crm, to_ada["id"]) if e.connection_id == ada_1.connection_id]
    assert [(e.subaccount_id, e.reason) for e in skipped] == [
        (sub_1, NotSyncedReason.CONNECTION_DISCONNECTED)
    ]
    assert to_ada["id"] not in recorded_ids(crm, sub_1)


async def test_c4_d1_update_email_sends_through_the_new_mailbox_and_the_old_one_no_longer_syncs(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Callable[[str], str]
) -> None:
    sub = fresh("sub")
    user = await seeder.add_gmail_user(sub, "usr_ada", f"{fresh('ada')}@gmail.example")
    new_address = f"{fresh('ada.new')}@gmail.example"
    await seeder.gmail.create_mailbox(new_address)
    contact = await seeder.add_contact(
        sub, "ct_dora", f"{fresh('dora')}@contact.example", assigned_user_id=user.user_id
    )
    first = await send(crm, user, contact, "Kick-off", "Shall we start on Monday?")
    assert (first.route, first.mailbox_address) == ("mailbox", user.address)
    await asyncio.sleep(LATER)
    reply = await seeder.gmail.deliver_inbound(
        user.address,
        sender=contact.address,
        subject="Re: Kick-off",
        text="Monday works.",
        in_reply_to=first.internet_message_id,
        references=first.internet_message_id,
    )
    await crm.conversation_with(sub, contact.contact_id, lambda m: len(m) == 2)

    # C4: the user switches to another mailbox without disconnecting.
    status, body = await update_email(http, product.endpoints, user, new_address)
    assert (status, body["change"], body["connection_id"], body["status"], body["email_address"]) == (
        200,
        "mailbox_replaced",
        user.connection_id,
        "active",
        new_address,
    )
    moved = switched(user, body)
    event = await sender_applied(seeder, user.connection_id, "mailbox_replaced")
    assert (event.previous_email_address, event.previous_mailbox_id) == (user.address, user.mailbox_id)
    assert (event.email_address, event.mailbox_id) == (new_address, moved.mailbox_id)
    assert (await connection_status(http, product.endpoints, user))["email_address"] == new_address
    await gmail_watched(seeder, new_address)

    # New CRM mail leaves through the new mailbox; the old mailbox's Sent folder holds only the old send.
    await asyncio.sleep(LATER)
    second = await send(crm, moved, contact, "Agenda", "The agenda for Monday.")
    assert (second.status, second.route, second.mailbox_address, second.mailbox_id) == (
        "sent",
        "mailbox",
        new_address,
        moved.mailbox_id,
    )
    assert await gmail_ids(seeder, new_address, "SENT") == {second.provider_message_id}
    assert await gmail_ids(seeder, user.address, "SENT") == {first.provider_message_id}

    # Mail reaching the previous mailbox, even in the thread started through it, no longer syncs; the
    # contact's answer at the new mailbox does.
    await asyncio.sleep(LATER)
    late = await seeder.gmail.deliver_inbound(
        user.address,
        sender=contact.address,
        subject="Re: Kick-off",
        text="One more thing about Monday.",
        in_reply_to=reply["headers"]["Message-ID"],
        references=f"{first.internet_message_id} {reply['headers']['Message-ID']}",
    )
    assert late["threadId"] == first.provider_thread_id
    answer = await seeder.gmail.deliver_inbound(
        new_address,
        sender=contact.address,
        subject="Re: Agenda",
        text="Agenda is fine.",
        in_reply_to=second.internet_message_id,
        references=second.internet_message_id,
    )
    await crm.conversation_with(sub, contact.contact_id, lambda m: len(m) == 4)

    # D1: nothing synced through the previous mailbox was deleted, on either side.
    await wait_idle(http, product.endpoints)
    conversation = await crm.conversation(sub, contact.contact_id)
    assert [(m["direction"], m["provider_message_id"]) for m in conversation] == [
        ("outbound", first.provider_message_id),
        ("inbound", reply["id"]),
        ("outbound", second.provider_message_id),
        ("inbound", answer["id"]),
    ]
    assert late["id"] not in recorded_ids(crm, sub)
    # The previous mailbox, read by no other connection, is no longer watched: its mail is not even seen.
    assert (await seeder.gmail.mailbox(user.address))["watch"] is None
    assert not_synced(crm, late["id"]) == []
    assert {first.provider_message_id, reply["id"], late["id"]} <= await gmail_ids(seeder, user.address)


async def test_c5_d1_disconnect_stops_sync_both_ways_and_keeps_every_synced_message(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Callable[[str], str]
) -> None:
    sub = fresh("sub")
    user = await seeder.add_gmail_user(sub, "usr_ada", f"{fresh('ada')}@gmail.example")
    contact = await seeder.add_contact(
        sub, "ct_dora", f"{fresh('dora')}@contact.example", assigned_user_id=user.user_id
    )
    first = await send(crm, user, contact, "Invoice", "Your invoice for November.")
    await asyncio.sleep(LATER)
    reply = await seeder.gmail.deliver_inbound(
        user.address,
        sender=contact.address,
        subject="Re: Invoice",
        text="Paid today.",
        in_reply_to=first.internet_message_id,
        references=first.internet_message_id,
    )
    await crm.conversation_with(sub, contact.contact_id, lambda m: len(m) == 2)

    # C5: the user disconnects; C3: the connection says so.
    status, body = await disconnect(http, product.endpoints, user)
    assert (status, body["status"], body["connection_id"]) == (200, "disconnected", user.connection_id)
    await sender_applied(seeder, user.connection_id, "disconnected")
    assert (await connection_status(http, product.endpoints, user))["status"] == "disconnected"

    # Later messages of the old thread, both ways, do not sync.
    await asyncio.sleep(LATER)
    late = await seeder.gmail.deliver_inbound(
        user.address,
        sender=contact.address,
        subject="Re: Invoice",
        text="Did you get the payment?",
        in_reply_to=reply["headers"]["Message-ID"],
        references=f"{first.internet_message_id} {reply['headers']['Message-ID']}",
    )
    own = await seeder.gmail.reply_as_user(user.address, late["id"], "Yes, thank you.")
    assert {late["threadId"], own["threadId"]} == {first.provider_thread_id}

    # New CRM mail no longer goes through the mailbox: the subaccount's provider sends it.
    after = await send(crm, user, contact, "Receipt", "Here is your receipt.")
    assert (after.status, after.route, after.provider, after.provider_message_id) == (
        "sent",
        "subaccount_provider",
        None,
        None,
    )
    smtp = [m for m in product.smtp.messages if m.message["Message-ID"] == after.internet_message_id]
    assert [m.recipients for m in smtp] == [(contact.address,)]
    assert await gmail_ids(seeder, user.address, "SENT") == {first.provider_message_id, own["id"]}

    # D1: the conversation is intact, and the mailbox still holds everything.
    await wait_idle(http, product.endpoints)
    conversation = await crm.conversation(sub, contact.contact_id)
    assert [m["provider_message_id"] for m in conversation] == [first.provider_message_id, reply["id"]]
    assert recorded_ids(crm, sub).isdisjoint({late["id"], own["id"]})
    # mailsync no longer reads the mailbox at all (no watch, no tokens): the messages are not even seen.
    assert (await seeder.gmail.mailbox(user.address))["watch"] is None
    assert not_synced(crm, late["id"]) == []
    assert not_synced(crm, own["id"]) == []
    assert {first.provider_message_id, reply["id"], late["id"], own["id"]} <= await gmail_ids(
        seeder, user.address
    )


async def test_c6_c7_revoked_grant_needs_reauth_then_the_gap_is_caught_up_without_pre_connection_mail(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Callable[[str], str]
) -> None:
    sub = fresh("sub")
    address = f"{fresh('ada')}@gmail.example"
    await seeder.gmail.create_mailbox(address)
    contact = await seeder.add_contact(
        sub, "ct_dora", f"{fresh('dora')}@contact.example", assigned_user_id="usr_ada"
    )
    older = await seeder.gmail.deliver_inbound(
        address, sender=contact.address, subject="Before you connected", text="An old question."
    )
    await asyncio.sleep(LATER)
    user = await connect_gmail_mailbox(seeder, sub, "usr_ada", address)

    first = await send(crm, user, contact, "Quote", "Our quote for the project.")
    await asyncio.sleep(LATER)
    reply_1 = await seeder.gmail.deliver_inbound(
        address,
        sender=contact.address,
        subject="Re: Quote",
        text="Can you lower it?",
        in_reply_to=first.internet_message_id,
        references=first.internet_message_id,
    )
    await crm.conversation_with(sub, contact.contact_id, lambda m: len(m) == 2)

    # C6: the user changes the Google password mid-conversation; the next sync finds the grant dead.
    assert await seeder.gmail.change_password(address) >= 1
    await asyncio.sleep(LATER)
    reply_2 = await seeder.gmail.deliver_inbound(
        address,
        sender=contact.address,
        subject="Re: Quote",
        text="Still waiting for an answer.",
        in_reply_to=reply_1["headers"]["Message-ID"],
        references=f"{first.internet_message_id} {reply_1['headers']['Message-ID']}",
    )
    lost = await sender_applied(seeder, user.connection_id, "reauth_required")
    assert (lost.status, lost.reason) == ("needs_reauth", "invalid_grant")
    shown = await connection_status(http, product.endpoints, user)
    assert (shown["status"], shown["reason"]) == ("needs_reauth", "invalid_grant")

    # While it needs re-authentication nothing is sent through it, and mail keeps arriving unsynced.
    refused = await send(crm, user, contact, "Re: Quote", "We can do 10% less.")
    assert (refused.status, refused.reason, refused.provider_message_id) == (
        "refused",
        SendFailureReason.CONNECTION_NEEDS_REAUTH,
        None,
    )
    assert await gmail_ids(seeder, address, "SENT") == {first.provider_message_id}
    await asyncio.sleep(LATER)
    reply_3 = await seeder.gmail.deliver_inbound(
        address,
        sender=contact.address,
        subject="Re: Quote",
        text="Hello?",
        in_reply_to=reply_2["headers"]["Message-ID"],
        references=f"{first.internet_message_id} {reply_2['headers']['Message-ID']}",
    )
    await wait_idle(http, product.endpoints)
    assert len(await crm.conversation(sub, contact.contact_id)) == 2
    # The gap outlives Gmail's history: catching up has to recover by date, over the pre-connection mail.
    await seeder.gmail.expire_history(address)
    recoveries_before = await metric_total(http, product.endpoints.ingest_gmail_url, "mailsync_resyncs")

    # The user signs in again: same connection, active, and the gap is caught up in order.
    status, body = await authorize(http, product.endpoints, "gmail", sub, "usr_ada", address=address)
    assert (status, body["change"], body["connection_id"], body["status"]) == (
        200,
        "reauthenticated",
        user.connection_id,
        "active",
    )
    await sender_applied(seeder, user.connection_id, "reauthenticated")
    conversation = await crm.conversation_with(sub, contact.contact_id, lambda m: len(m) >= 4)
    assert [m["provider_message_id"] for m in conversation] == [
        first.provider_message_id,
        reply_1["id"],
        reply_2["id"],
        reply_3["id"],
    ]

    # Sending through the mailbox works again, in the same thread.
    reply_3_id = reply_3["headers"]["Message-ID"]
    again = await send(
        crm,
        user,
        contact,
        "Re: Quote",
        "Sorry for the delay: 10% less.",
        reply_context=ReplyContext(
            provider_thread_id=first.provider_thread_id,
            in_reply_to=reply_3_id,
            references=(first.internet_message_id or "", reply_3_id),
        ),
    )
    assert (again.status, again.route, again.provider_thread_id) == (
        "sent",
        "mailbox",
        first.provider_thread_id,
    )
    assert await gmail_ids(seeder, address, "SENT") == {first.provider_message_id, again.provider_message_id}

    # C7: mail from before the connection was never imported, even by the catch-up; D2: nothing twice.
    await wait_idle(http, product.endpoints)
    conversation = await crm.conversation(sub, contact.contact_id)
    assert [m["provider_message_id"] for m in conversation] == [
        first.provider_message_id,
        reply_1["id"],
        reply_2["id"],
        reply_3["id"],
        again.provider_message_id,
    ]
    assert older["id"] not in recorded_ids(crm, sub)
    assert not_synced(crm, older["id"]) == []
    recoveries = await metric_total(http, product.endpoints.ingest_gmail_url, "mailsync_resyncs")
    assert recoveries > recoveries_before, "the catch-up did not recover the gap by date"


async def test_c7_mail_from_before_the_connection_is_never_imported_but_later_mail_in_its_thread_is(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Callable[[str], str]
) -> None:
    sub = fresh("sub")
    address = f"{fresh('ada')}@gmail.example"
    await seeder.gmail.create_mailbox(address)
    contact = await seeder.add_contact(
        sub, "ct_dora", f"{fresh('dora')}@contact.example", assigned_user_id="usr_ada"
    )
    old_in = await seeder.gmail.deliver_inbound(
        address, sender=contact.address, subject="Pricing", text="What are your prices?"
    )
    old_out = await seeder.gmail.reply_as_user(address, old_in["id"], "Prices are on our website.")
    await asyncio.sleep(LATER)

    user = await connect_gmail_mailbox(seeder, sub, "usr_ada", address)
    connected_at = at((await connection_status(http, product.endpoints, user))["connected_at"])
    assert connected_at - timedelta(seconds=LATER) > datetime.fromtimestamp(
        int(old_out["internalDate"]) / 1000, UTC
    )

    await asyncio.sleep(LATER)
    follow_up = await seeder.gmail.deliver_inbound(
        address,
        sender=contact.address,
        subject="Re: Pricing",
        text="And for 100 units?",
        in_reply_to=old_out["headers"]["Message-ID"],
        references=f"{old_in['headers']['Message-ID']} {old_out['headers']['Message-ID']}",
    )
    assert follow_up["threadId"] == old_in["threadId"]
    conversation = await crm.conversation_with(sub, contact.contact_id, lambda m: len(m) >= 1)

    await wait_idle(http, product.endpoints)
    conversation = await crm.conversation(sub, contact.contact_id)
    assert [(m["direction"], m["provider_message_id"]) for m in conversation] == [
        ("inbound", follow_up["id"])
    ]
    assert recorded_ids(crm, sub).isdisjoint({old_in["id"], old_out["id"]})
    # Sync started at the connection: the older messages were never read, so never reported either.
    assert not_synced(crm, old_in["id"]) == []
    assert not_synced(crm, old_out["id"]) == []
    assert {old_in["id"], old_out["id"], follow_up["id"]} <= await gmail_ids(seeder, address)


async def test_c4_c1_update_email_in_one_subaccount_reports_old_mailbox_mail_replaced_while_another_keeps_it(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Callable[[str], str]
) -> None:
    sub_1, sub_2 = fresh("sub"), fresh("sub")
    old_address, new_address = f"{fresh('ada')}@gmail.example", f"{fresh('ada.new')}@gmail.example"
    ada_1 = await seeder.add_gmail_user(sub_1, "usr_ada", old_address)
    ada_2 = await connect_gmail_mailbox(seeder, sub_2, "usr_ada", old_address)
    await seeder.gmail.create_mailbox(new_address)
    carl_address = f"{fresh('carl')}@contact.example"
    carl_1 = await seeder.add_contact(sub_1, "ct_carl", carl_address, assigned_user_id=ada_1.user_id)
    carl_2 = await seeder.add_contact(sub_2, "ct_carl", carl_address, assigned_user_id=ada_2.user_id)

    # C4 in the first subaccount; C1: the second subaccount's connection still reads the old mailbox.
    status, body = await update_email(http, product.endpoints, ada_1, new_address)
    assert (status, body["change"], body["email_address"]) == (200, "mailbox_replaced", new_address)
    await sender_applied(seeder, ada_1.connection_id, "mailbox_replaced")
    shown = await connection_status(http, product.endpoints, ada_2)
    assert (shown["status"], shown["email_address"]) == ("active", old_address)
    assert (await seeder.gmail.mailbox(old_address))["watch"] is not None

    await asyncio.sleep(LATER)
    mail = await seeder.gmail.deliver_inbound(
        old_address, sender=carl_address, subject="Order", text="Two more boxes, please."
    )
    await crm.conversation_with(
        sub_2, carl_2.contact_id, lambda m: [x["provider_message_id"] for x in m] == [mail["id"]]
    )
    await wait_idle(http, product.endpoints)
    assert await crm.conversation(sub_1, carl_1.contact_id) == []
    assert [(e.subaccount_id, e.reason) for e in not_synced(crm, mail["id"])] == [
        (sub_1, NotSyncedReason.MAILBOX_REPLACED)
    ]
    assert [e.connection_id for e in not_synced(crm, mail["id"])] == [ada_1.connection_id]


async def test_c6_outlook_revoked_sessions_need_reauth_and_the_crm_thread_catches_up_after_signing_in_again(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Callable[[str], str]
) -> None:
    sub = fresh("sub")
    user = await seeder.add_outlook_user(sub, "usr_grace", f"{fresh('grace')}@sandbox.onmicrosoft.com")
    contact = await seeder.add_contact(
        sub, "ct_alan", f"{fresh('alan')}@contact.example", assigned_user_id=user.user_id
    )
    first = await send(crm, user, contact, "Contract", "The contract terms.")
    assert (first.status, first.route, first.provider) == ("sent", "mailbox", "outlook")
    await asyncio.sleep(LATER)
    reply_1 = await seeder.graph.deliver_inbound(
        user.address, sender=contact.address, body="Terms look fine.", in_reply_to=first.provider_message_id
    )
    await crm.conversation_with(sub, contact.contact_id, lambda m: len(m) == 2)

    # C6: the user's sessions are revoked; Graph tells the subscriptions to reauthorize.
    assert await seeder.graph.revoke(user.address) != []
    lost = await sender_applied(seeder, user.connection_id, "reauth_required")
    assert (lost.status, lost.reason) == ("needs_reauth", "invalid_grant")
    shown = await connection_status(http, product.endpoints, user)
    assert (shown["status"], shown["reason"]) == ("needs_reauth", "invalid_grant")

    await asyncio.sleep(LATER)
    reply_2 = await seeder.graph.deliver_inbound(
        user.address, sender=contact.address, body="Signed and sent back.", in_reply_to=reply_1["id"]
    )
    assert reply_2["conversationId"] == first.provider_thread_id
    refused = await send(crm, user, contact, "RE: Contract", "Thanks!")
    assert (refused.status, refused.reason) == ("refused", SendFailureReason.CONNECTION_NEEDS_REAUTH)
    assert [m["id"] for m in await seeder.graph.folder(user.address, "sentitems")] == [
        first.provider_message_id
    ]
    await wait_idle(http, product.endpoints)
    assert len(await crm.conversation(sub, contact.contact_id)) == 2

    # Signing in again resumes the sync where it stopped: the reply that came meanwhile is caught up.
    status, body = await authorize(
        http, product.endpoints, "outlook", sub, user.user_id, address=user.address
    )
    assert (status, body["change"], body["connection_id"], body["status"]) == (
        200,
        "reauthenticated",
        user.connection_id,
        "active",
    )
    await sender_applied(seeder, user.connection_id, "reauthenticated")
    await crm.conversation_with(sub, contact.contact_id, lambda m: len(m) >= 3)
    await asyncio.sleep(LATER)
    again = await send(
        crm,
        user,
        contact,
        "RE: Contract",
        "Thanks, countersigned.",
        reply_context=ReplyContext(
            provider_thread_id=first.provider_thread_id, in_reply_to=reply_2["internetMessageId"]
        ),
    )
    assert (again.status, again.route, again.provider_thread_id) == (
        "sent",
        "mailbox",
        first.provider_thread_id,
    )

    await wait_idle(http, product.endpoints)
    conversation = await crm.conversation(sub, contact.contact_id)
    assert [(m["direction"], m["provider_message_id"]) for m in conversation] == [
        ("outbound", first.provider_message_id),
        ("inbound", reply_1["id"]),
        ("inbound", reply_2["id"]),
        ("outbound", again.provider_message_id),
    ]
    sent_items = {m["id"]: m for m in await seeder.graph.folder(user.address, "sentitems")}
    assert set(sent_items) == {first.provider_message_id, again.provider_message_id}
    assert sent_items[again.provider_message_id]["conversationId"] == first.provider_thread_id


async def test_c5_d1_outlook_disconnect_deletes_the_subscriptions_and_keeps_the_crm_thread_on_both_sides(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Callable[[str], str]
) -> None:
    sub = fresh("sub")
    user = await seeder.add_outlook_user(sub, "usr_grace", f"{fresh('grace')}@sandbox.onmicrosoft.com")
    contact = await seeder.add_contact(
        sub, "ct_alan", f"{fresh('alan')}@contact.example", assigned_user_id=user.user_id
    )
    first = await send(crm, user, contact, "Delivery", "Delivery is on Friday.")
    await asyncio.sleep(LATER)
    reply = await seeder.graph.deliver_inbound(
        user.address, sender=contact.address, body="Friday is fine.", in_reply_to=first.provider_message_id
    )
    await crm.conversation_with(sub, contact.contact_id, lambda m: len(m) == 2)

    status, body = await disconnect(http, product.endpoints, user)
    assert (status, body["status"]) == (200, "disconnected")
    await sender_applied(seeder, user.connection_id, "disconnected")
    graph_user_id = user.mailbox_id.removeprefix("outlook:")
    subscriptions = [s for s in await seeder.graph.subscriptions() if graph_user_id in str(s.get("resource"))]
    assert subscriptions == []

    # Later messages of the CRM-started thread, both ways, do not sync; new CRM mail leaves by SMTP.
    await asyncio.sleep(LATER)
    late = await seeder.graph.deliver_inbound(
        user.address, sender=contact.address, body="Can it be Thursday?", in_reply_to=reply["id"]
    )
    own = await seeder.graph.reply(user.address, late["id"], "Thursday works.")
    assert {late["conversationId"], own["conversationId"]} == {first.provider_thread_id}
    after = await send(crm, user, contact, "Delivery moved", "Delivery is now on Thursday.")
    assert (after.status, after.route, after.provider) == ("sent", "subaccount_provider", None)

    # D1: the CRM conversation and the mailbox keep everything.
    await wait_idle(http, product.endpoints)
    conversation = await crm.conversation(sub, contact.contact_id)
    assert [m["provider_message_id"] for m in conversation] == [first.provider_message_id, reply["id"]]
    assert recorded_ids(crm, sub).isdisjoint({late["id"], own["id"]})
    assert not_synced(crm, late["id"]) == []
    assert not_synced(crm, own["id"]) == []
    sent_items = {m["id"] for m in await seeder.graph.folder(user.address, "sentitems")}
    assert sent_items == {first.provider_message_id, own["id"]}
    assert {reply["id"], late["id"]} <= {m["id"] for m in await seeder.graph.folder(user.address, "inbox")}
