"""Commands consumed as one batch are decided concurrently, without changing what any of them gets: a
request id twice in a batch sends once (S7), a reply waits for its sender's earlier commands (S6), and the
quota stays exact (S3, see test_quota.py, whose 600 commands arrive in batches).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from services.sender.tests.conftest import ADA, Sending, connection_event, eventually, send_email

from mailsync.common.contracts import ReplyContext
from mailsync.sender.adapters.connection_store import ConnectionStore
from mailsync.sender.domain import BatchItem, message_id_for, plan_batch

pytestmark = [pytest.mark.kafka, pytest.mark.mongodb]

SLOW_SEND_SECONDS = 0.5


def test_s7_a_plan_decides_each_request_id_once_by_its_first_record() -> None:
    ada = ("loc_acme", "usr_ada")
    plan = plan_batch(
        [
            BatchItem("req-1", ada, is_reply=False),
            BatchItem("req-2", ada, is_reply=False),
            BatchItem("req-1", ada, is_reply=True),
            BatchItem("req-3", None, is_reply=False),
        ]
    )
    assert plan.work == (0, 1, 3)
    assert plan.waits_for == {}


def test_s6_a_plan_starts_a_reply_after_its_senders_earlier_commands_only() -> None:
    ada, bob = ("loc_acme", "usr_ada"), ("loc_acme", "usr_bob")
    plan = plan_batch(
        [
            BatchItem("req-ada-1", ada, is_reply=False),
            BatchItem("req-bob-1", bob, is_reply=False),
            BatchItem("req-ada-2", ada, is_reply=False),
            BatchItem("req-ada-reply", ada, is_reply=True),
            BatchItem("req-bob-reply", bob, is_reply=True),
            BatchItem("req-ada-3", ada, is_reply=False),
        ]
    )
    assert plan.work == (0, 1, 2, 3, 4, 5)
    assert plan.waits_for == {3: (0, 2), 4: (1,)}


async def test_s7_s6_one_batch_is_sent_concurrently_once_per_request_and_a_reply_after_its_parent(
    sending: Sending,
) -> None:
    # Everything is published before the sender starts, so its first poll takes it as one batch.
    request_ids = [f"req-batch-{n:02d}" for n in range(12)]
    parent_id = message_id_for(request_ids[0], sending.settings.message_id_domain)
    # Ada's connection is in the read model before the sender starts, so no command races its event.
    await sending.ingest.connect("conn_ada", ADA)
    await ConnectionStore(sending.database).apply(connection_event("conn_ada", ADA))
    await sending.gmail.admin.add_fault("slow", delay_seconds=SLOW_SEND_SECONDS, path_pattern="messages/send")
    for request_id in request_ids:
        await sending.bus.send(send_email(request_id))
    await sending.bus.send(send_email(request_ids[0], text="A redelivery with another body"))
    reply = send_email(
        "req-batch-reply", subject="Re: Your quote", reply_context=ReplyContext(in_reply_to=parent_id)
    )
    await sending.bus.send(reply)
    started = time.monotonic()
    await sending.start()
    results = await sending.bus.wait_for([*request_ids, "req-batch-reply"], within=120)
    elapsed = time.monotonic() - started

    assert {r.status for r in results.values()} == {"sent"}
    assert len(await sending.gmail.sent(ADA)) == 13
    answers = sending.bus.results[request_ids[0]]

    async def both_records_answered() -> bool:
        return len(answers) >= 2

    await eventually(both_records_answered, within=30, what="an answer for each record of req-batch-00")
    await asyncio.sleep(0.5)
    assert len(answers) == 2
    assert {a.event_id for a in answers} == {answers[0].event_id}
    assert results["req-batch-reply"].provider_thread_id == results[request_ids[0]].provider_thread_id
    # Sequentially, 13 sends of 0.5 s and the reply's lookup would take over 6.5 s.
    assert elapsed < 13 * SLOW_SEND_SECONDS
