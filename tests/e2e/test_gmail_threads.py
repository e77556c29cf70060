"""Gmail end to end (G1a, G2, S1, S6, D2): a thread the CRM starts, answered in Gmail and again from the CRM,
is one thread in the mailbox and one conversation in the CRM."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest

from mailsync.common.contracts import ReplyContext
from mailsync.devstack.crm import Crm
from mailsync.devstack.observe import wait_idle
from mailsync.devstack.product import Product
from mailsync.devstack.seed import Seeder

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.kafka,
    pytest.mark.mongodb,
    pytest.mark.pubsub,
]

REPLY_DELAY = 1.1
"""Conversations are ordered by `sent_at` and a Date header has whole seconds: replies come later."""


async def test_g1a_g2_s1_s6_d2_crm_started_gmail_thread_replied_in_gmail_and_from_the_crm_is_one_thread(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Callable[[str], str]
) -> None:
    sub = fresh("sub")
    user = await seeder.add_gmail_user(sub, "usr_ada", f"{fresh('ada')}@gmail.example")
    contact = await seeder.add_contact(
        sub, "ct_dora", f"{fresh('dora')}@contact.example", assigned_user_id=user.user_id
    )

    # G1a/S1: the CRM starts the thread; it leaves through the user's mailbox.
    first = await crm.result(
        await crm.send_email(
            subaccount_id=sub,
            user_id=user.user_id,
            contact_id=contact.contact_id,
            to=[contact.address],
            subject="Your proposal",
            text="Here is the proposal we discussed.",
        )
    )
    assert (first.status, first.route, first.provider, first.mailbox_address) == (
        "sent",
        "mailbox",
        "gmail",
        user.address,
    )
    assert first.provider_message_id is not None
    assert first.provider_thread_id is not None
    assert first.internet_message_id is not None
    sent = await seeder.gmail.messages(user.address, label="SENT")
    assert [m["id"] for m in sent] == [first.provider_message_id]
    assert sent[0]["headers"]["Message-ID"] == first.internet_message_id
    assert user.address in sent[0]["headers"]["From"]

    # G2: the contact replies in Gmail; the reply joins the Gmail thread and the CRM conversation.
    await asyncio.sleep(REPLY_DELAY)
    reply = await seeder.gmail.deliver_inbound(
        user.address,
        sender=contact.address,
        subject="Re: Your proposal",
        text="Looks good, one question though.",
        in_reply_to=first.internet_message_id,
        references=first.internet_message_id,
    )
    assert reply["threadId"] == first.provider_thread_id
    conversation = await crm.conversation_with(sub, contact.contact_id, lambda m: len(m) == 2)
    assert [m["direction"] for m in conversation] == ["outbound", "inbound"]
    assert conversation[1]["provider_message_id"] == reply["id"]
    assert conversation[1]["rule"] == "G2"

    # S6: the CRM replies again, in the same thread on both sides.
    await asyncio.sleep(REPLY_DELAY)
    reply_id = reply["headers"]["Message-ID"]
    second = await crm.result(
        await crm.send_email(
            subaccount_id=sub,
            user_id=user.user_id,
            contact_id=contact.contact_id,
            to=[contact.address],
            subject="Re: Your proposal",
            text="Happy to answer it.",
            reply_context=ReplyContext(
                provider_thread_id=conversation[1]["provider_thread_id"],
                in_reply_to=reply_id,
                references=(first.internet_message_id, reply_id),
            ),
        )
    )
    assert (second.status, second.route) == ("sent", "mailbox")
    assert second.provider_thread_id == first.provider_thread_id

    threads = await seeder.gmail.threads(user.address)
    assert len(threads) == 1
    sent = await seeder.gmail.messages(user.address, label="SENT")
    assert {m["id"] for m in sent} == {first.provider_message_id, second.provider_message_id}
    assert {m["threadId"] for m in sent} == {first.provider_thread_id}
    second_sent = next(m for m in sent if m["id"] == second.provider_message_id)
    assert second_sent["headers"]["In-Reply-To"] == reply_id
    assert second_sent["headers"]["Subject"] == "Re: Your proposal"

    # D2: once both Sent-folder copies have been ingested and routed, each message is in the CRM once.
    await wait_idle(http, product.endpoints)
    conversation = await crm.conversation(sub, contact.contact_id)
    assert [m["direction"] for m in conversation] == ["outbound", "inbound", "outbound"]
    assert [m["provider_message_id"] for m in conversation] == [
        first.provider_message_id,
        reply["id"],
        second.provider_message_id,
    ]
    assert {m["provider_thread_id"] for m in conversation} == {first.provider_thread_id}
    assert {m["conversation_id"] for m in conversation} == {conversation[0]["conversation_id"]}
