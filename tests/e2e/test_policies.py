"""Attachment policies and idempotent sending, end to end: Outlook's attachment policy on inbound mail (O3)
and on sends (S5), Gmail's 25 MB attachment cap (S4), and a send command delivered twice (S7).

Sends with attachments declare them as stored (`declared_attachment`) without storing any content: a send
the policy refuses must be refused from the declaration alone, and one the policy lets through then fails
to read the content (`attachment_unavailable`), which shows exactly where the policy draws its line.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

import aiohttp
import pytest

from mailsync.common.contracts import NotSyncedReason, SendFailureReason
from mailsync.devstack.crm import Crm
from mailsync.devstack.observe import wait_idle
from mailsync.devstack.product import Product
from mailsync.devstack.scenarios import (
    MB,
    all_results,
    declared_attachment,
    not_synced,
    send_command,
    wait_not_synced,
)
from mailsync.devstack.seed import Seeder

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.kafka,
    pytest.mark.mongodb,
    pytest.mark.pubsub,
]

GRAPH_SECOND = 1.1
"""Graph's message times have whole seconds; steps that must be ordered in time wait this long."""

OUTLOOK_LIMIT = 3 * MB
GMAIL_LIMIT = 25 * MB

Fresh = Callable[[str], str]


def attachment(name: str, content_type: str, size: int) -> dict[str, str]:
    """An attachment as the Graph sandbox's admin API takes it."""
    return {
        "name": name,
        "content_type": content_type,
        "content_base64": base64.b64encode(b"x" * size).decode(),
    }


async def test_o3_outlook_replies_with_a_disallowed_type_or_over_3_mb_are_not_synced_and_the_crm_is_told_why(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Fresh
) -> None:
    sub = fresh("sub")
    user = await seeder.add_outlook_user(sub, "usr_grace", f"{fresh('grace')}@sandbox.onmicrosoft.com")
    contact = await seeder.add_contact(
        sub, "ct_alan", f"{fresh('alan')}@contact.example", assigned_user_id=user.user_id
    )
    started = await crm.result(
        await crm.send_email(
            subaccount_id=sub,
            user_id=user.user_id,
            contact_id=contact.contact_id,
            to=[contact.address],
            subject="Contract",
            text="Please send the signed copy.",
        )
    )
    assert (started.status, started.route) == ("sent", "mailbox")
    assert started.provider_message_id is not None

    await asyncio.sleep(GRAPH_SECOND)
    allowed = await seeder.graph.deliver_inbound(
        user.address,
        sender=contact.address,
        body="Signed copy attached.",
        in_reply_to=started.provider_message_id,
        attachments=[attachment("signed.pdf", "application/pdf", 2048)],
    )
    wrong_type = await seeder.graph.deliver_inbound(
        user.address,
        sender=contact.address,
        body="And the tool to open it.",
        in_reply_to=started.provider_message_id,
        attachments=[attachment("viewer.exe", "application/octet-stream", 2048)],
    )
    too_large = await seeder.graph.deliver_inbound(
        user.address,
        sender=contact.address,
        body="And the full scan.",
        in_reply_to=started.provider_message_id,
        attachments=[attachment("scan.pdf", "application/pdf", OUTLOOK_LIMIT + 1)],
    )
    thread = started.provider_thread_id
    assert {m["conversationId"] for m in (allowed, wrong_type, too_large)} == {thread}

    conversation = await crm.conversation_with(sub, contact.contact_id, lambda m: len(m) == 2)
    assert [(m["direction"], m["provider_message_id"]) for m in conversation] == [
        ("outbound", started.provider_message_id),
        ("inbound", allowed["id"]),
    ]
    assert [a["filename"] for a in conversation[1]["attachments"]] == ["signed.pdf"]
    for message, name in ((wrong_type, "viewer.exe"), (too_large, "scan.pdf")):
        skip = (await wait_not_synced(crm, user.mailbox_id, message["id"], [sub]))[sub]
        assert (skip.reason, skip.connection_id) == (NotSyncedReason.ATTACHMENT_POLICY, user.connection_id)
        assert name in skip.detail

    await wait_idle(http, product.endpoints)
    assert len(await crm.conversation(sub, contact.contact_id)) == 2
    assert not_synced(crm, user.mailbox_id, allowed["id"]) == {}
    inbox = {m["id"] for m in await seeder.graph.folder(user.address, "inbox")}
    assert {allowed["id"], wrong_type["id"], too_large["id"]} <= inbox


async def test_s5_o3_outlook_sends_breaking_the_attachment_policy_are_refused_with_the_reason_and_not_sent(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Fresh
) -> None:
    sub = fresh("sub")
    user = await seeder.add_outlook_user(sub, "usr_grace", f"{fresh('grace')}@sandbox.onmicrosoft.com")
    contact = await seeder.add_contact(
        sub, "ct_alan", f"{fresh('alan')}@contact.example", assigned_user_id=user.user_id
    )

    async def send(*attachments: tuple[str, str, int]) -> str:
        return await send_command(
            crm,
            subaccount_id=sub,
            user_id=user.user_id,
            contact_id=contact.contact_id,
            to=[contact.address],
            subject="Files",
            text="See attached.",
            attachments=[declared_attachment(*a) for a in attachments],
        )

    wrong_type, too_large, within = await asyncio.gather(
        send(("notes.txt", "text/plain", 100), ("macro.xlsm", "application/octet-stream", 100)),
        send(("scan.pdf", "application/pdf", OUTLOOK_LIMIT + 1)),
        send(("scan.pdf", "application/pdf", OUTLOOK_LIMIT), ("photo.JPG", "image/jpeg", 100)),
    )

    refused_type = await crm.result(wrong_type)
    assert (refused_type.status, refused_type.reason) == (
        "refused",
        SendFailureReason.ATTACHMENT_TYPE_NOT_ALLOWED,
    )
    assert "macro.xlsm" in refused_type.detail
    refused_size = await crm.result(too_large)
    assert (refused_size.status, refused_size.reason) == ("refused", SendFailureReason.ATTACHMENT_TOO_LARGE)
    assert "scan.pdf" in refused_size.detail
    for result in (refused_type, refused_size):
        assert result.provider_message_id is None
    # Within the policy, the send goes on to read the (never stored) content.
    passed = await crm.result(within)
    assert (passed.status, passed.reason) == ("refused", SendFailureReason.ATTACHMENT_UNAVAILABLE)

    await wait_idle(http, product.endpoints)
    assert await seeder.graph.folder(user.address, "sentitems") == []
    assert await seeder.graph.folder(user.address, "drafts") == []
    assert await crm.conversation(sub, contact.contact_id) == []


async def test_s4_gmail_sends_with_over_25_mb_of_attachments_are_refused_with_the_reason_and_not_sent(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Fresh
) -> None:
    sub = fresh("sub")
    user = await seeder.add_gmail_user(sub, "usr_ada", f"{fresh('ada')}@gmail.example")
    contact = await seeder.add_contact(
        sub, "ct_dora", f"{fresh('dora')}@contact.example", assigned_user_id=user.user_id
    )
    half = GMAIL_LIMIT // 2

    async def send(*sizes: int) -> str:
        return await send_command(
            crm,
            subaccount_id=sub,
            user_id=user.user_id,
            contact_id=contact.contact_id,
            to=[contact.address],
            subject="Videos",
            text="Both clips attached.",
            attachments=[declared_attachment(f"clip{n}.mp4", "video/mp4", s) for n, s in enumerate(sizes)],
        )

    over, at_cap = await asyncio.gather(send(half + 1, half), send(half, half))

    refused = await crm.result(over)
    assert (refused.status, refused.reason) == ("refused", SendFailureReason.ATTACHMENT_TOO_LARGE)
    assert str(GMAIL_LIMIT + 1) in refused.detail
    assert refused.provider_message_id is None
    # 25 MB in total is allowed: that send goes on to read the (never stored) content.
    passed = await crm.result(at_cap)
    assert (passed.status, passed.reason) == ("refused", SendFailureReason.ATTACHMENT_UNAVAILABLE)

    await wait_idle(http, product.endpoints)
    assert await seeder.gmail.messages(user.address, label="SENT") == []
    assert (await seeder.gmail.mailbox(user.address))["messages"] == 0
    assert await crm.conversation(sub, contact.contact_id) == []


async def test_s7_a_send_command_delivered_twice_sends_once_and_answers_the_same_result_twice(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Fresh
) -> None:
    sub = fresh("sub")
    user = await seeder.add_gmail_user(sub, "usr_ada", f"{fresh('ada')}@gmail.example")
    contact = await seeder.add_contact(
        sub, "ct_dora", f"{fresh('dora')}@contact.example", assigned_user_id=user.user_id
    )

    async def send(request_id: str, subject: str) -> str:
        return await send_command(
            crm,
            subaccount_id=sub,
            user_id=user.user_id,
            contact_id=contact.contact_id,
            to=[contact.address],
            subject=subject,
            text="Sent once, whatever happens.",
            request_id=request_id,
        )

    # Redelivered after it was answered, and delivered twice at once.
    later, together = f"crm:{fresh('later')}", f"crm:{fresh('together')}"
    first = await crm.result(await send(later, "Invoice"))
    assert (first.status, first.route) == ("sent", "mailbox")
    await send(later, "Invoice")
    await asyncio.gather(send(together, "Receipt"), send(together, "Receipt"))
    await crm.result(together)

    await wait_idle(http, product.endpoints)
    sent = await seeder.gmail.messages(user.address, label="SENT")
    assert sorted(m["headers"]["Subject"] for m in sent) == ["Invoice", "Receipt"]
    answered: list[str] = []
    for request_id in (later, together):
        results = await all_results(product.endpoints, request_id)
        assert len(results) == 2
        assert results[0] == results[1]
        assert results[0].status == "sent"
        assert results[0].provider_message_id is not None
        answered.append(results[0].provider_message_id)
    assert sorted(answered) == sorted(m["id"] for m in sent)
    conversation = await crm.conversation(sub, contact.contact_id)
    assert sorted(m["provider_message_id"] for m in conversation) == sorted(answered)
