"""Outlook end to end (O1, O2, S1): a thread started in Outlook never syncs, and says why; a thread the CRM
starts next to it in the same mailbox syncs both ways."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest

from mailsync.common.contracts import MessageNotSynced, NotSyncedReason
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

GRAPH_SECOND = 1.1
"""Graph's message times have whole seconds; steps that must be ordered in time wait this long."""


async def test_o1_o2_outlook_started_thread_is_not_synced_but_a_crm_started_one_beside_it_is(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Callable[[str], str]
) -> None:
    sub = fresh("sub")
    user = await seeder.add_outlook_user(sub, "usr_grace", f"{fresh('grace')}@sandbox.onmicrosoft.com")
    contact = await seeder.add_contact(
        sub, "ct_alan", f"{fresh('alan')}@contact.example", assigned_user_id=user.user_id
    )

    # O1: the user starts a thread from Outlook with a known, assigned contact; the contact answers. The
    # user waits a second first: in the second of connecting, Graph's whole-second times look older (C7).
    await asyncio.sleep(GRAPH_SECOND)
    started = await seeder.graph.send(user.address, to=[contact.address], subject="Lunch?", body="Tomorrow?")
    answer = await seeder.graph.deliver_inbound(
        user.address, sender=contact.address, body="Sure, noon.", in_reply_to=started["id"]
    )
    assert answer["conversationId"] == started["conversationId"]

    # O1/S1: the CRM starts another thread with the same contact, through the same mailbox.
    result = await crm.result(
        await crm.send_email(
            subaccount_id=sub,
            user_id=user.user_id,
            contact_id=contact.contact_id,
            to=[contact.address],
            subject="Contract",
            text="Please find the contract terms below.",
        )
    )
    assert (result.status, result.route, result.provider, result.mailbox_address) == (
        "sent",
        "mailbox",
        "outlook",
        user.address,
    )
    assert result.provider_message_id is not None
    sent_items = await seeder.graph.folder(user.address, "sentitems")
    sent_copy = next(m for m in sent_items if m["id"] == result.provider_message_id)
    assert sent_copy["conversationId"] == result.provider_thread_id
    assert sent_copy["subject"] == "Contract"

    # O2: the contact's reply in the CRM-started thread syncs.
    await asyncio.sleep(GRAPH_SECOND)
    reply = await seeder.graph.deliver_inbound(
        user.address, sender=contact.address, body="Signed.", in_reply_to=result.provider_message_id
    )
    assert reply["conversationId"] == result.provider_thread_id
    await crm.conversation_with(sub, contact.contact_id, lambda m: len(m) == 2)

    await wait_idle(http, product.endpoints)
    conversation = await crm.conversation(sub, contact.contact_id)
    assert [(m["direction"], m["provider_message_id"]) for m in conversation] == [
        ("outbound", result.provider_message_id),
        ("inbound", reply["id"]),
    ]
    assert {m["provider_thread_id"] for m in conversation} == {result.provider_thread_id}

    # O1: both messages of the Outlook-started thread were reported, with the reason, and filed nowhere.
    outlook_started = {started["id"], answer["id"]}

    def skipped_here() -> dict[str, MessageNotSynced]:
        return {e.provider_message_id: e for e in crm.not_synced if e.mailbox_id == user.mailbox_id}

    await crm.wait_until(lambda: outlook_started <= set(skipped_here()), what="both MessageNotSynced")
    skipped = skipped_here()
    for message_id in outlook_started:
        event = skipped[message_id]
        assert event.reason == NotSyncedReason.OUTLOOK_THREAD_NOT_CRM_STARTED
        assert (event.subaccount_id, event.connection_id) == (sub, user.connection_id)
        assert event.provider_thread_id == started["conversationId"]
    assert reply["id"] not in skipped
    recorded = {e.provider_message_id for e in crm.recorded if e.subaccount_id == sub}
    assert recorded.isdisjoint(outlook_started)
