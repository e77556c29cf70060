"""Individual mail through the user's Outlook mailbox (S1, S5/O3, S6), end to end with the Graph sandbox."""

from __future__ import annotations

import pytest
from services.sender.tests.conftest import ALAN, GRACE, RunningGraph, Sending, send_email

from mailsync.common.contracts import AttachmentMeta, BlobRef, ReplyContext, SendFailureReason
from mailsync.sender.adapters.blob_store import GridFsBlobStore

pytestmark = [pytest.mark.kafka, pytest.mark.mongodb]

MB = 1024 * 1024


async def test_s1_individual_mail_goes_out_through_the_users_outlook_and_reports_its_ids(
    sending: Sending, graph: RunningGraph
) -> None:
    await sending.start(graph_api_url=graph.base_url)
    await sending.connect("conn_alan", ALAN)
    await sending.bus.send(send_email("req-outlook"))
    result = (await sending.bus.wait_for(["req-outlook"]))["req-outlook"]

    assert (result.status, result.route, result.provider) == ("sent", "mailbox", "outlook")
    assert (result.connection_id, result.mailbox_address) == ("conn_alan", ALAN)
    sent = await graph.admin.folder(ALAN, "sentitems")
    assert [m["id"] for m in sent] == [result.provider_message_id]
    assert sent[0]["conversationId"] == result.provider_thread_id
    assert sent[0]["internetMessageId"] == result.internet_message_id
    assert sent[0]["subject"] == "Your quote"
    assert await graph.admin.folder(ALAN, "drafts") == []


async def test_s6_o2_a_reply_answers_the_threads_last_message_and_keeps_the_conversation(
    sending: Sending, graph: RunningGraph
) -> None:
    await sending.start(graph_api_url=graph.base_url)
    await sending.connect("conn_alan", ALAN)
    await sending.bus.send(send_email("req-outlook-first"))
    first = (await sending.bus.wait_for(["req-outlook-first"]))["req-outlook-first"]
    assert first.internet_message_id is not None
    reply = await graph.admin.deliver_inbound(
        ALAN,
        sender=GRACE.email,
        subject="Re: Your quote",
        body="Thanks! One question.",
        in_reply_to=first.provider_message_id,
    )
    grace_id = str(reply.get("internetMessageId"))
    await sending.bus.send(
        send_email(
            "req-outlook-reply",
            text="Sure, ask away.",
            reply_context=ReplyContext(in_reply_to=grace_id, references=(first.internet_message_id,)),
        )
    )
    answer = (await sending.bus.wait_for(["req-outlook-reply"]))["req-outlook-reply"]

    assert answer.status == "sent"
    assert answer.provider_thread_id == first.provider_thread_id
    conversation = await graph.admin.conversation(ALAN, str(first.provider_thread_id))
    assert [m["internetMessageId"] for m in conversation] == [
        first.internet_message_id,
        grace_id,
        answer.internet_message_id,
    ]


async def test_s5_o3_outlook_attachments_follow_the_reference_policy(
    sending: Sending, graph: RunningGraph
) -> None:
    await sending.start(graph_api_url=graph.base_url)
    await sending.connect("conn_alan", ALAN)
    blobs = GridFsBlobStore(sending.database, "blobs")
    small = await blobs.write(b"%PDF-1.7 quote", "quote.pdf")
    large = await blobs.write(b"x" * (4 * MB), "brochure.pdf")
    script = await blobs.write(b"MZ", "setup.exe")

    def meta(name: str, blob: BlobRef) -> AttachmentMeta:
        return AttachmentMeta(
            filename=name, content_type="application/octet-stream", size_bytes=blob.size_bytes, blob=blob
        )

    await sending.bus.send(send_email("req-o3-ok", attachments=(meta("quote.pdf", small),)))
    await sending.bus.send(send_email("req-o3-large", attachments=(meta("brochure.pdf", large),)))
    await sending.bus.send(send_email("req-o3-type", attachments=(meta("setup.exe", script),)))
    results = await sending.bus.wait_for(["req-o3-ok", "req-o3-large", "req-o3-type"])

    assert results["req-o3-ok"].status == "sent"
    refused = {r: (results[r].status, results[r].reason) for r in ("req-o3-large", "req-o3-type")}
    assert refused == {
        "req-o3-large": ("refused", SendFailureReason.ATTACHMENT_TOO_LARGE),
        "req-o3-type": ("refused", SendFailureReason.ATTACHMENT_TYPE_NOT_ALLOWED),
    }
    assert len(await graph.admin.folder(ALAN, "sentitems")) == 1


async def test_o3_a_larger_limit_setting_sends_big_attachments_through_upload_sessions(
    sending: Sending, graph: RunningGraph
) -> None:
    await sending.start(graph_api_url=graph.base_url, outlook_attachment_max_bytes=10 * MB)
    await sending.connect("conn_alan", ALAN)
    content = bytes(range(256)) * (20 * 1024)  # 5 MiB
    blob = await GridFsBlobStore(sending.database, "blobs").write(content, "brochure.pdf")
    attachment = AttachmentMeta(
        filename="brochure.pdf", content_type="application/pdf", size_bytes=len(content), blob=blob
    )
    await sending.bus.send(send_email("req-o3-upload", attachments=(attachment,)))
    result = (await sending.bus.wait_for(["req-o3-upload"]))["req-o3-upload"]

    assert result.status == "sent"
    message = await graph.admin.message(ALAN, str(result.provider_message_id))
    sizes = [a.get("size") for a in message.get("attachments", [])]
    assert sizes == [len(content)]


async def test_s7_an_outlook_send_whose_answer_was_lost_is_found_not_sent_again(
    sending: Sending, graph: RunningGraph
) -> None:
    # Graph takes 2 s to send and the sender gives up waiting after 1 s: the send happens, its answer is lost.
    await sending.start(
        graph_api_url=graph.base_url, provider_timeout_seconds=1.0, send_outcome_settle_seconds=2.0
    )
    await sending.connect("conn_alan", ALAN)
    await graph.admin.add_fault("slow", delay_s=2.0, count=1, path_contains="/send", method="POST")
    await graph.admin.add_fault(
        "throttle", retry_after_s=1, count=1, path_contains="/messages", method="POST"
    )
    await sending.bus.send(send_email("req-outlook-lost"))
    result = (await sending.bus.wait_for(["req-outlook-lost"]))["req-outlook-lost"]

    sent = await graph.admin.folder(ALAN, "sentitems")
    assert result.status == "sent"
    assert [m["id"] for m in sent] == [result.provider_message_id]
    assert await graph.admin.folder(ALAN, "drafts") == []
    assert await graph.admin.faults() == []  # both faults fired
