"""S3 and S2 end to end: a consumer Gmail connection sends 500 individual emails a day; the 501st is refused
with `quota_exceeded` and the reset time, never attempted, while bulk mail keeps flowing through the
subaccount's SMTP provider."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from mailsync.common.contracts import SendFailureReason
from mailsync.devstack.crm import Crm
from mailsync.devstack.product import Product
from mailsync.devstack.seed import Seeder

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.kafka,
    pytest.mark.mongodb,
    pytest.mark.pubsub,
]

CONSUMER_DAILY_LIMIT = 500


async def test_s3_s2_501st_individual_gmail_send_is_refused_while_bulk_mail_still_flows_via_smtp(
    product: Product, crm: Crm, seeder: Seeder, fresh: Callable[[str], str]
) -> None:
    sub = fresh("sub")
    user = await seeder.add_gmail_user(sub, "usr_sam", f"{fresh('sam')}@gmail.example")
    recipient = f"{fresh('lead')}@prospects.example"

    async def individual(n: int) -> str:
        return await crm.send_email(
            subaccount_id=sub,
            user_id=user.user_id,
            to=[recipient],
            subject=f"Follow-up {n}",
            text=f"Individual email number {n}.",
        )

    # Concurrent commands: the sender's quota ledger must count every one exactly once.
    requests = await asyncio.gather(*(individual(n) for n in range(CONSUMER_DAILY_LIMIT)))
    await crm.wait_until(
        lambda: all(r in crm.results for r in requests), within=150.0, what="500 send results"
    )
    statuses = {(crm.results[r].status, crm.results[r].route) for r in requests}
    assert statuses == {("sent", "mailbox")}
    sent = await seeder.gmail.messages(user.address, label="SENT")
    assert len(sent) == CONSUMER_DAILY_LIMIT

    over = await crm.result(await individual(CONSUMER_DAILY_LIMIT))
    assert (over.status, over.reason) == ("refused", SendFailureReason.QUOTA_EXCEEDED)
    assert over.quota_resets_at is not None
    assert over.quota_resets_at > datetime.now(UTC)
    assert over.provider_message_id is None
    assert "quota" in over.detail.lower() or over.detail == ""

    # S2: bulk mail of the same subaccount and user goes through the SMTP provider, outside the quota.
    bulk = await crm.result(
        await crm.send_email(
            subaccount_id=sub,
            user_id=user.user_id,
            kind="bulk",
            to=[recipient],
            subject="Our November newsletter",
            text="News for everyone.",
        )
    )
    assert (bulk.status, bulk.route, bulk.provider) == ("sent", "subaccount_provider", None)
    assert bulk.internet_message_id is not None
    received = [m for m in product.smtp.messages if m.message["Message-ID"] == bulk.internet_message_id]
    assert len(received) == 1
    assert received[0].recipients == (recipient,)
    assert received[0].message["Subject"] == "Our November newsletter"

    # Nothing more left the mailbox: the refused send was never attempted.
    assert len(await seeder.gmail.messages(user.address, label="SENT")) == CONSUMER_DAILY_LIMIT
