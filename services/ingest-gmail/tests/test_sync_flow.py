"""End to end: OAuth connect through the sandbox, watch, signed push, the worker, events on Kafka."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from mailsync.common.contracts import MAILBOX_CHANGED

pytestmark = [pytest.mark.kafka, pytest.mark.mongodb]

ALICE = "alice@example.com"
CONTACT = "dora@contact.example"
Harness = Any  # the conftest's harness (test modules cannot import the conftest under importlib mode)


async def test_g3_inbound_message_becomes_exactly_one_event(harness: Harness) -> None:
    connection = await harness.connect("sub-1", "user-1", ALICE)
    assert connection["status"] == "active"
    assert connection["mailbox_id"] == "gmail:alice@example.com"
    await harness.tap.wait_until(lambda: len(harness.tap.connection_changes()) == 1)

    delivered = await harness.admin.deliver_inbound(
        ALICE,
        sender=CONTACT,
        subject="Quote request",
        text="Hello Alice",
        attachments=[{"filename": "q.pdf", "mime_type": "application/pdf", "data_base64": "JVBERi0xLjQK"}],
    )
    await harness.tap.wait_until(lambda: len(harness.tap.messages()) == 1)
    event = harness.tap.messages()[0]
    assert event.provider_message_id == delivered["id"]
    assert event.direction == "inbound"
    assert not event.sent_by_owner
    assert event.from_.email == CONTACT
    assert [a.email for a in event.to] == [ALICE]
    assert event.subject == "Quote request"
    assert event.body.text is not None
    assert "Hello Alice" in event.body.text
    assert event.connection_ids == (connection["connection_id"],)
    assert "INBOX" in event.folders
    assert event.internet_message_id is not None
    assert [a.filename for a in event.attachments] == ["q.pdf"]
    assert event.attachments[0].blob is not None
    hints = [e for _, e in harness.tap.records[MAILBOX_CHANGED]]
    assert {h.source for h in hints} == {"push"}
    status = await harness.status(connection["connection_id"])
    assert status["last_synced_at"] is not None


async def test_g2_message_the_user_sends_from_gmail_is_an_outbound_event(harness: Harness) -> None:
    await harness.connect("sub-1", "user-1", ALICE)
    inbound = await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="Hi", text="question")
    await harness.tap.wait_until(lambda: len(harness.tap.messages()) == 1)
    reply = await harness.admin.reply_as_user(ALICE, inbound["id"], "answer")
    await harness.tap.wait_until(lambda: len(harness.tap.messages()) == 2)
    first, event = harness.tap.messages()
    assert event.provider_message_id == reply["id"]
    assert event.direction == "outbound"
    assert event.sent_by_owner
    assert "SENT" in event.folders
    assert event.from_.email == ALICE
    assert [a.email for a in event.to] == [CONTACT]
    assert event.subject == "Re: Hi"
    assert event.in_reply_to == first.internet_message_id
    assert event.references == (first.internet_message_id,)
    assert event.provider_thread_id == first.provider_thread_id


async def test_d2_duplicate_and_out_of_order_notifications_publish_nothing_twice(harness: Harness) -> None:
    await harness.connect("sub-1", "user-1", ALICE)
    first = await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="one", text="1")
    second = await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="two", text="2")
    await harness.tap.wait_until(lambda: len(harness.tap.messages()) == 2)
    token = await harness.admin.sign_push_token(
        "https://ingest-gmail.test/v1/pubsub/push", harness.sandbox.config.push_service_account
    )
    # Replays of both notifications, newest first, several times each, with string and numeric ids.
    for history_id in (second["historyId"], first["historyId"], int(second["historyId"]), first["historyId"]):
        assert await harness.push(harness.push_envelope(ALICE, history_id), token) == 204
    await harness.tap.wait_until(
        lambda: sum(1 for _, h in harness.tap.records[MAILBOX_CHANGED] if h.source == "push") >= 6
    )
    await harness.tap.wait_until(lambda: _coalesced(harness) >= 4)
    ids = [m.provider_message_id for m in harness.tap.messages()]
    assert sorted(ids) == sorted([first["id"], second["id"]])


def _coalesced(harness: Harness) -> float:
    return float(harness.sample("mailsync_hints_coalesced_total"))


async def test_stale_cursor_404_recovers_the_gap_without_duplicates_or_older_mail_c7(
    start_harness: Any,
) -> None:
    harness = await start_harness(push=False)
    old = await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="before connecting", text="old")
    connection = await harness.connect("sub-1", "user-1", ALICE)
    token = await harness.admin.sign_push_token(
        "https://ingest-gmail.test/v1/pubsub/push", harness.sandbox.config.push_service_account
    )
    synced = await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="synced", text="a")
    assert await harness.push(harness.push_envelope(ALICE, synced["historyId"]), token) == 204
    await harness.tap.wait_until(lambda: len(harness.tap.messages()) == 1)

    missed = [
        await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject=f"missed {i}", text="b")
        for i in range(3)
    ]
    sent = await harness.admin.send_as_user(ALICE, to=[CONTACT], subject="sent while missed", text="c")
    await harness.admin.expire_history(ALICE)
    assert await harness.push(harness.push_envelope(ALICE, sent["historyId"]), token) == 204
    await harness.tap.wait_until(lambda: len(harness.tap.messages()) == 5)

    ids = [m.provider_message_id for m in harness.tap.messages()]
    assert ids == [synced["id"], *(m["id"] for m in missed), sent["id"]]  # oldest first, each once
    assert old["id"] not in ids
    assert await harness.metric("mailsync_resyncs_total", {"cause": "history_expired"}) == 1
    later = await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="after recovery", text="d")
    assert await harness.push(harness.push_envelope(ALICE, later["historyId"]), token) == 204
    await harness.tap.wait_until(lambda: len(harness.tap.messages()) == 6)
    assert harness.tap.messages()[-1].provider_message_id == later["id"]
    assert connection["connection_id"] in harness.tap.messages()[-1].connection_ids


async def test_injected_5xx_and_429_faults_still_deliver_every_message_once(start_harness: Any) -> None:
    harness = await start_harness(sync_consumers=3)
    await harness.connect("sub-1", "user-1", ALICE)
    await harness.admin.add_fault("error", status=503, rate=0.05, path_pattern="^/gmail/v1/")
    await harness.admin.add_fault("error", status=429, rate=0.05, path_pattern="^/gmail/v1/")
    delivered = [
        await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject=f"m{i}", text=str(i))
        for i in range(30)
    ]
    await harness.tap.wait_until(lambda: len(harness.tap.messages()) >= 30, within=120)
    fired = sum(f["fired"] for f in await harness.admin.faults())
    await harness.admin.clear_faults()
    ids = [m.provider_message_id for m in harness.tap.messages()]
    assert sorted(ids) == sorted(d["id"] for d in delivered)
    assert fired > 0
    assert harness.sample_total("mailsync_dead_lettered_total") == 0
    assert harness.sample_total("mailsync_handler_retries_total") > 0


async def test_watchdog_syncs_a_mailbox_whose_notifications_stopped(start_harness: Any) -> None:
    harness = await start_harness(push=False, watchdog_stale_after_seconds=1)
    await harness.connect("sub-1", "user-1", ALICE)
    delivered = await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject="unnoticed", text="x")
    await asyncio.sleep(1.1)
    await harness.maintenance.run_once()
    await harness.tap.wait_until(lambda: len(harness.tap.messages()) == 1)
    assert harness.tap.messages()[0].provider_message_id == delivered["id"]
    assert any(h.source == "watchdog" for _, h in harness.tap.records[MAILBOX_CHANGED])


async def test_watch_is_renewed_when_due(harness: Harness) -> None:
    await harness.connect("sub-1", "user-1", ALICE)
    mailboxes = harness.database["gmail_mailboxes"]
    before = await mailboxes.find_one({"_id": "gmail:alice@example.com"})
    assert before["watch_expires_at"] is not None
    assert before["watch_renew_at"] > before["watch_expires_at"] - timedelta(days=7)
    await mailboxes.update_one({"_id": before["_id"]}, {"$set": {"watch_renew_at": before["created_at"]}})
    await harness.maintenance.run_once()
    after = await mailboxes.find_one({"_id": before["_id"]})
    assert after["watch_renew_at"] > before["created_at"] + timedelta(hours=12)
    assert (
        await harness.metric(
            "mailsync_push_channel_operations_total", {"operation": "watch", "outcome": "ok"}
        )
        == 2
    )


async def test_large_bodies_and_attachments_are_stored_once_in_gridfs(harness: Harness) -> None:
    await harness.connect("sub-1", "user-1", ALICE)
    big_text = "lorem ipsum " * 10_000  # > 64 KiB: stored, not inline
    attachment = {"filename": "deck.pdf", "mime_type": "application/pdf", "data_base64": "JVBERi0xLjcK" * 100}
    for subject in ("first", "second"):
        await harness.admin.deliver_inbound(
            ALICE, sender=CONTACT, subject=subject, text=big_text, attachments=[attachment]
        )
        await asyncio.sleep(1.1)  # one notification per second per mailbox
    await harness.tap.wait_until(lambda: len(harness.tap.messages()) == 2)
    first, second = harness.tap.messages()
    assert first.body.text is None
    assert first.body.text_blob is not None
    assert first.body.text_blob.size_bytes > 64 * 1024
    assert first.body.text_blob == second.body.text_blob
    assert first.attachments[0].blob == second.attachments[0].blob
    files = harness.database["gmail_blobs.files"]
    assert await files.count_documents({}) == 2  # one body, one attachment, each stored once
    stored = await files.find_one({"_id": first.body.text_blob.id})
    assert stored["length"] == first.body.text_blob.size_bytes


async def test_a_failed_watch_at_connect_is_retried_by_maintenance(harness: Harness) -> None:
    await harness.admin.add_fault("error", status=503, count=1, path_pattern="/watch$")
    connection = await harness.connect("sub-1", "user-1", ALICE)
    assert connection["status"] == "active"  # the connection stands without its watch
    mailboxes = harness.database["gmail_mailboxes"]
    before = await mailboxes.find_one({"_id": "gmail:alice@example.com"})
    assert before["watch_expires_at"] is None
    assert (
        harness.sample("mailsync_push_channel_operations_total", {"operation": "watch", "outcome": "failed"})
        == 1
    )
    await harness.maintenance.run_once()
    after = await mailboxes.find_one({"_id": "gmail:alice@example.com"})
    assert after["watch_expires_at"] is not None
    assert harness.sandbox.store.find(ALICE).watch is not None
