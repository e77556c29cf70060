"""Individual mail through the user's Gmail mailbox, end to end: Kafka in, Gmail sandbox, Kafka out.

Each test starts the sender on its own topics and database, connects Ada's mailbox (the ingest double holds
the grant; the sender's read model learns it from `ConnectionChanged`), publishes `SendEmail` commands and
reads the results and the sandbox mailbox back.
"""

from __future__ import annotations

import asyncio
import base64
import email
import time
from datetime import UTC, datetime, timedelta
from email import policy

import pytest
from services.sender.tests.conftest import (
    ADA,
    GRACE,
    RunningGmail,
    Sending,
    connection_event,
    eventually,
    send_email,
)

from mailsync.common.contracts import (
    SEND_COMMANDS,
    AttachmentMeta,
    BlobRef,
    DeadLettered,
    ReplyContext,
    SendFailureReason,
    dead_letter_topic,
)
from mailsync.sender.adapters.blob_store import GridFsBlobStore
from mailsync.sender.adapters.quota_ledger import QuotaLedger
from mailsync.sender.domain import message_id_for, quota_day

pytestmark = [pytest.mark.kafka, pytest.mark.mongodb]


async def raw_message(gmail: RunningGmail, address: str, message_id: str) -> email.message.EmailMessage:
    summary = await gmail.admin.message(address, message_id)
    parsed = email.message_from_bytes(base64.b64decode(summary["raw_base64"]), policy=policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


async def test_s1_individual_mail_goes_out_through_the_users_gmail_and_reports_its_ids(
    sending: Sending,
) -> None:
    start_sender, bus, _database, _ingest, gmail, smtp_server = (
        sending.start,
        sending.bus,
        sending.database,
        sending.ingest,
        sending.gmail,
        sending.smtp,
    )
    await start_sender()
    await sending.connect("conn_ada", ADA)

    await bus.send(send_email("req-s1"))
    result = (await bus.wait_for(["req-s1"]))["req-s1"]

    assert result.status == "sent"
    assert result.route == "mailbox"
    assert (result.provider, result.connection_id, result.mailbox_address) == ("gmail", "conn_ada", ADA)
    assert result.mailbox_id == f"mbx_gmail_{ADA}"
    assert result.internet_message_id == message_id_for("req-s1", "send.mailsync.local")
    sent = await gmail.sent(ADA)
    assert [m["id"] for m in sent] == [result.provider_message_id]
    assert sent[0]["threadId"] == result.provider_thread_id
    stored = await raw_message(gmail, ADA, sent[0]["id"])
    assert stored["Message-ID"] == result.internet_message_id
    assert stored["To"] == f"{GRACE.name} <{GRACE.email}>"
    assert smtp_server.sink.messages == []
    assert (result.contact_id, result.subaccount_id, result.kind) == ("con_grace", "loc_acme", "individual")


async def test_s6_a_reply_joins_the_gmail_thread_with_headers_and_subject(sending: Sending) -> None:
    start_sender, bus, _database, _ingest, gmail = (
        sending.start,
        sending.bus,
        sending.database,
        sending.ingest,
        sending.gmail,
    )
    await start_sender()
    await sending.connect("conn_ada", ADA)
    await bus.send(send_email("req-first"))
    first = (await bus.wait_for(["req-first"]))["req-first"]
    assert first.internet_message_id is not None
    grace_reply_id = "<grace-reply-1@navy.example>"
    await gmail.admin.deliver_inbound(
        ADA,
        sender=GRACE.email,
        to=[ADA],
        subject="Re: Your quote",
        text="Thanks! One question.",
        message_id=grace_reply_id,
        in_reply_to=first.internet_message_id,
        references=first.internet_message_id,
    )
    # Known thread id (the CRM has it) and unknown (the sender looks the parent up by its Message-ID).
    await bus.send(
        send_email(
            "req-reply-known",
            text="Sure, ask away.",
            reply_context=ReplyContext(
                provider_thread_id=first.provider_thread_id,
                in_reply_to=grace_reply_id,
                references=(first.internet_message_id,),
            ),
        )
    )
    await bus.send(
        send_email(
            "req-reply-lookup",
            subject="Re: Your quote",
            text="And one more thing.",
            reply_context=ReplyContext(in_reply_to=grace_reply_id, references=(first.internet_message_id,)),
        )
    )
    results = await bus.wait_for(["req-reply-known", "req-reply-lookup"])

    for result in results.values():
        assert result.status == "sent"
        assert result.provider_thread_id == first.provider_thread_id
    threads = {t["threadId"]: t["messageIds"] for t in await gmail.admin.threads(ADA)}
    assert threads == {
        first.provider_thread_id: [
            first.provider_message_id,
            threads[first.provider_thread_id][1],  # Grace's reply, received
            results["req-reply-known"].provider_message_id,
            results["req-reply-lookup"].provider_message_id,
        ]
    }
    reply = await raw_message(gmail, ADA, str(results["req-reply-lookup"].provider_message_id))
    assert reply["Subject"] == "Re: Your quote"
    assert reply["In-Reply-To"] == grace_reply_id
    assert reply["References"].split() == [first.internet_message_id, grace_reply_id]


async def test_s7_a_command_delivered_three_times_sends_once_and_answers_the_same_result(
    sending: Sending,
) -> None:
    start_sender, bus, _database, _ingest, gmail = (
        sending.start,
        sending.bus,
        sending.database,
        sending.ingest,
        sending.gmail,
    )
    await start_sender()
    await sending.connect("conn_ada", ADA)
    command = send_email("req-dup")
    for _ in range(3):
        await bus.send(command)
    # The same request id in a new command (new event id): still the same request (S7).
    await bus.send(send_email("req-dup", text="A different body"))

    async def four_results() -> bool:
        return len(bus.results.get("req-dup", [])) == 4

    await eventually(four_results, 60, "four answers")
    answers = bus.results["req-dup"]
    assert {a.event_id for a in answers} == {answers[0].event_id}
    assert answers[0].status == "sent"
    assert len(await gmail.sent(ADA)) == 1


async def test_invalid_commands_are_refused_with_invalid_command_and_never_sent(sending: Sending) -> None:
    start_sender, bus, _database, _ingest, gmail = (
        sending.start,
        sending.bus,
        sending.database,
        sending.ingest,
        sending.gmail,
    )
    await start_sender()
    await sending.connect("conn_ada", ADA)
    no_recipient = send_email("req-no-recipient").model_dump(mode="json") | {"to": []}
    await bus.send(no_recipient)
    await bus.send(send_email("req-injection", subject="Hi\r\nBcc: everyone@example.com"))
    bad_address = send_email("req-bad-address").model_dump(mode="json")
    bad_address["to"] = [{"email": "grace,hopper@navy.example"}]
    await bus.send(bad_address)
    results = await bus.wait_for(["req-no-recipient", "req-injection", "req-bad-address"])

    for result in results.values():
        assert (result.status, result.reason) == ("refused", SendFailureReason.INVALID_COMMAND)
        assert result.detail
    assert "recipient" in results["req-no-recipient"].detail
    assert "line break" in results["req-injection"].detail
    assert results["req-no-recipient"].subaccount_id == "loc_acme"
    assert await gmail.sent(ADA) == []


async def test_undecodable_commands_go_to_the_dead_letter_topic(sending: Sending) -> None:
    start_sender, bus, _database, settings, unique_name = (
        sending.start,
        sending.bus,
        sending.database,
        sending.settings,
        sending.unique_name,
    )
    letters: list[DeadLettered] = []

    @bus.broker.subscriber(
        dead_letter_topic(settings.topic(SEND_COMMANDS)),
        group_id=unique_name("dlt"),
        auto_offset_reset="earliest",
    )
    async def on_letter(letter: DeadLettered) -> None:
        letters.append(letter)

    await bus.broker.start()  # starts the subscriber added after the broker started
    await start_sender()
    await bus.send({"kind": "individual", "note": "no request id"})
    await bus.send(send_email("req-after-poison"))
    await bus.wait_for(["req-after-poison"])

    async def dead_lettered() -> bool:
        return len(letters) == 1

    await eventually(dead_lettered, 60, "the dead letter")
    assert letters[0].reason.startswith("unanswerable_command")


async def test_s3_the_ledger_refuses_sends_over_the_connections_limit_with_the_reset_time(
    sending: Sending,
) -> None:
    start_sender, bus, _database, _ingest, gmail = (
        sending.start,
        sending.bus,
        sending.database,
        sending.ingest,
        sending.gmail,
    )
    await start_sender()
    await sending.connect("conn_ada", ADA, daily_send_limit=3)
    ids = [f"req-q{i}" for i in range(5)]
    for request_id in ids:
        await bus.send(send_email(request_id))
    results = await bus.wait_for(ids)

    statuses = sorted((r.status, r.reason) for r in results.values())
    assert statuses == [("refused", "quota_exceeded")] * 2 + [("sent", None)] * 3
    day = quota_day(datetime.now(UTC))
    for result in results.values():
        if result.status == "refused":
            assert result.quota_resets_at == day.resets_at
            assert result.route == "mailbox"
            assert "resets" in result.detail
    assert len(await gmail.sent(ADA)) == 3


async def test_s3_a_permanently_failed_send_gives_its_quota_back(sending: Sending) -> None:
    start_sender, bus, _database, _ingest, _gmail = (
        sending.start,
        sending.bus,
        sending.database,
        sending.ingest,
        sending.gmail,
    )
    await start_sender()
    await sending.connect("conn_ada", ADA, daily_send_limit=1)
    # A thread id the mailbox does not have: Gmail answers 404, the send fails for good.
    broken = send_email(
        "req-unknown-thread",
        reply_context=ReplyContext(provider_thread_id="18c0ffee00000000", in_reply_to="<x@navy.example>"),
    )
    await bus.send(broken)
    failed = (await bus.wait_for(["req-unknown-thread"]))["req-unknown-thread"]
    assert (failed.status, failed.reason) == ("failed", SendFailureReason.PROVIDER_REJECTED)
    await bus.send(send_email("req-after-failure"))
    result = (await bus.wait_for(["req-after-failure"]))["req-after-failure"]
    assert result.status == "sent"


async def test_c6_a_revoked_grant_fails_the_send_with_connection_needs_reauth(sending: Sending) -> None:
    start_sender, bus, _database, ingest, gmail = (
        sending.start,
        sending.bus,
        sending.database,
        sending.ingest,
        sending.gmail,
    )
    await start_sender()
    await sending.connect("conn_ada", ADA)
    await bus.send(send_email("req-before-revoke"))
    await bus.wait_for(["req-before-revoke"])
    await gmail.admin.revoke(ADA)  # the cached access token and the refresh token die together
    await bus.send(send_email("req-after-revoke"))
    result = (await bus.wait_for(["req-after-revoke"]))["req-after-revoke"]

    assert (result.status, result.reason) == ("failed", SendFailureReason.CONNECTION_NEEDS_REAUTH)
    assert result.provider_message_id is None
    assert len(await gmail.sent(ADA)) == 1
    assert ingest.connections["conn_ada"].status == "needs_reauth"


async def test_c6_a_connection_known_to_need_reauth_is_refused_without_calling_gmail(
    sending: Sending,
) -> None:
    start_sender, bus, _database, ingest, gmail = (
        sending.start,
        sending.bus,
        sending.database,
        sending.ingest,
        sending.gmail,
    )
    await start_sender()
    await sending.connect("conn_ada", ADA)
    await sending.apply(connection_event("conn_ada", ADA, change="reauth_required"))
    await bus.send(send_email("req-reauth"))
    result = (await bus.wait_for(["req-reauth"]))["req-reauth"]

    assert (result.status, result.reason) == ("refused", SendFailureReason.CONNECTION_NEEDS_REAUTH)
    assert ingest.requests == 0
    assert await gmail.sent(ADA) == []


async def test_s4_attachments_over_25_mb_are_refused_before_anything_is_read_or_sent(
    sending: Sending,
) -> None:
    start_sender, bus, _database, _ingest, gmail = (
        sending.start,
        sending.bus,
        sending.database,
        sending.ingest,
        sending.gmail,
    )
    await start_sender()
    await sending.connect("conn_ada", ADA)
    size = 25 * 1024 * 1024 + 1
    never_stored = BlobRef(store="gridfs", id="0" * 24, size_bytes=size, sha256="0" * 64)
    attachment = AttachmentMeta(
        filename="scan.pdf", content_type="application/pdf", size_bytes=size, blob=never_stored
    )
    await bus.send(send_email("req-too-large", attachments=(attachment,)))
    result = (await bus.wait_for(["req-too-large"]))["req-too-large"]

    assert (result.status, result.reason) == ("refused", SendFailureReason.ATTACHMENT_TOO_LARGE)
    assert "25 MB" in result.detail
    assert await gmail.sent(ADA) == []


async def test_s1_large_messages_use_the_upload_endpoint_and_keep_their_attachments(sending: Sending) -> None:
    start_sender, bus, database, _ingest, gmail = (
        sending.start,
        sending.bus,
        sending.database,
        sending.ingest,
        sending.gmail,
    )
    await start_sender(gmail_simple_upload_max_bytes=64 * 1024)
    await sending.connect("conn_ada", ADA)
    content = bytes(range(256)) * 1024  # 256 KiB
    blob = await GridFsBlobStore(database, "blobs").write(content, "quote.pdf")
    attachment = AttachmentMeta(
        filename="quote.pdf", content_type="application/pdf", size_bytes=len(content), blob=blob
    )
    missing = blob.model_copy(update={"id": "0" * 24})
    gone = AttachmentMeta(
        filename="gone.pdf", content_type="application/pdf", size_bytes=len(content), blob=missing
    )
    await bus.send(send_email("req-upload", attachments=(attachment,)))
    await bus.send(send_email("req-missing-blob", attachments=(gone,)))
    results = await bus.wait_for(["req-upload", "req-missing-blob"])

    assert results["req-upload"].status == "sent"
    stored = await raw_message(gmail, ADA, str(results["req-upload"].provider_message_id))
    parts = [p for p in stored.iter_attachments() if isinstance(p, email.message.EmailMessage)]
    assert [(p.get_filename(), p.get_content()) for p in parts] == [("quote.pdf", content)]
    missing_result = results["req-missing-blob"]
    assert (missing_result.status, missing_result.reason) == (
        "refused",
        SendFailureReason.ATTACHMENT_UNAVAILABLE,
    )
    assert len(await gmail.sent(ADA)) == 1


async def test_transient_gmail_errors_are_retried_honouring_retry_after_and_send_once(
    sending: Sending,
) -> None:
    start_sender, bus, _database, _ingest, gmail = (
        sending.start,
        sending.bus,
        sending.database,
        sending.ingest,
        sending.gmail,
    )
    await start_sender()
    await sending.connect("conn_ada", ADA)
    await gmail.admin.add_fault("error", status=429, count=1, path_pattern="messages/send")
    await gmail.admin.add_fault("error", status=503, count=2, path_pattern="messages/send")
    started = time.monotonic()
    await bus.send(send_email("req-transient"))
    result = (await bus.wait_for(["req-transient"]))["req-transient"]

    assert result.status == "sent"
    assert time.monotonic() - started >= 1.0  # the 429's Retry-After: 1
    assert len(await gmail.sent(ADA)) == 1


async def test_a_send_whose_answer_was_lost_is_found_in_the_sent_folder_not_sent_again(
    sending: Sending,
) -> None:
    start_sender, bus, _database, _ingest, gmail = (
        sending.start,
        sending.bus,
        sending.database,
        sending.ingest,
        sending.gmail,
    )
    # Gmail takes 2 s and the sender gives up waiting after 1 s: the send happens, its answer is lost.
    await start_sender(provider_timeout_seconds=1.0, send_outcome_settle_seconds=2.0)
    await sending.connect("conn_ada", ADA)
    await gmail.admin.add_fault("slow", count=1, delay_seconds=2.0, path_pattern="messages/send")
    await bus.send(send_email("req-lost-answer"))
    result = (await bus.wait_for(["req-lost-answer"]))["req-lost-answer"]

    sent = await gmail.sent(ADA)
    assert result.status == "sent"
    assert [m["id"] for m in sent] == [result.provider_message_id]


async def test_gmail_down_for_longer_than_the_retries_fails_with_provider_unavailable_and_frees_quota(
    sending: Sending,
) -> None:
    start_sender, bus, database, _ingest, gmail = (
        sending.start,
        sending.bus,
        sending.database,
        sending.ingest,
        sending.gmail,
    )
    await start_sender()
    await sending.connect("conn_ada", ADA, daily_send_limit=1)
    await gmail.admin.add_fault("error", status=429, count=4, path_pattern="messages/send")
    await bus.send(send_email("req-unavailable"))
    result = (await bus.wait_for(["req-unavailable"]))["req-unavailable"]

    assert (result.status, result.reason) == ("failed", SendFailureReason.PROVIDER_UNAVAILABLE)
    assert (
        await QuotaLedger(database).used(QuotaLedger.key("conn_ada", quota_day(datetime.now(UTC)).key)) == 0
    )


async def test_s7_a_request_another_live_instance_is_sending_is_not_sent_again_until_its_lease_ends(
    sending: Sending,
) -> None:
    await sending.start(send_attempt_lease_seconds=60.0)
    await sending.connect("conn_ada", ADA)
    # Another sender instance claimed this request and is (as far as anyone knows) calling Gmail right now.
    leased_until = datetime.now(UTC) + timedelta(seconds=4)
    await sending.database["send_requests"].insert_one(
        {
            "_id": "req-leased",
            "state": "attempting",
            "route": "mailbox",
            "connection_id": "conn_ada",
            "attempt_owner": "another-instance",
            "attempt_until": leased_until,
            "received_at": datetime.now(UTC),
        }
    )
    await sending.bus.send(send_email("req-leased"))
    await asyncio.sleep(2)
    assert await sending.gmail.sent(ADA) == []  # waits for the other instance's lease
    result = (await sending.bus.wait_for(["req-leased"]))["req-leased"]

    assert result.status == "sent"
    assert result.occurred_at >= leased_until
    assert len(await sending.gmail.sent(ADA)) == 1
