"""The official google-api-python-client, built offline from its shipped discovery document, against the
sandbox.

Every response is also validated against the discovery document's schemas.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Callable
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any

import pytest
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaIoBaseUpload

from mailsync.gmail_sandbox.notifications import RecordingPublisher

ALICE = "alice@example.com"
TOPIC = "projects/mailsync-local/topics/gmail"


def _raw(message: EmailMessage) -> str:
    return base64.urlsafe_b64encode(message.as_bytes()).decode()


def _mail(
    subject: str, to: str = "carol@outside.example", text: str = "Hello", **headers: str
) -> EmailMessage:
    message = EmailMessage()
    message["To"] = to
    message["Subject"] = subject
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(text)
    return message


@pytest.fixture
async def client(running: Any, gmail_service: Callable[..., Any]) -> Any:
    tokens = await running.token_for()
    return gmail_service(running, tokens).users()


async def test_profile_watch_history_and_schemas(
    start_sandbox: Any, gmail_service: Any, gmail_schema: Any, run: Any
) -> None:
    publisher = RecordingPublisher()
    running = await start_sandbox(publisher=publisher)
    users = gmail_service(running, await running.token_for()).users()

    profile = await run(users.getProfile(userId="me"))
    gmail_schema.validate(profile, "Profile")
    assert profile["emailAddress"] == ALICE

    watch = await run(users.watch(userId="me", body={"topicName": TOPIC, "labelIds": ["INBOX"]}))
    gmail_schema.validate(watch, "WatchResponse")
    assert watch["historyId"] == profile["historyId"]
    expiration_ms = int(watch["expiration"])
    assert expiration_ms - running.clock.now() * 1000 == pytest.approx(7 * 86400 * 1000, abs=1000)
    assert len(publisher.messages) == 1  # the immediate notification after watch

    delivered = await running.admin.deliver_inbound(
        ALICE, sender="Bob <bob@outside.example>", subject="Quote", text="Numbers attached"
    )
    history = await run(users.history().list(userId="me", startHistoryId=watch["historyId"]))
    gmail_schema.validate(history, "ListHistoryResponse")
    added = [
        entry["message"]["id"] for record in history["history"] for entry in record.get("messagesAdded", [])
    ]
    assert added == [delivered["id"]]
    assert int(history["historyId"]) > int(watch["historyId"])

    only_labels = await run(
        users.history().list(userId="me", startHistoryId=watch["historyId"], historyTypes=["labelAdded"])
    )
    gmail_schema.validate(only_labels, "ListHistoryResponse")
    assert "history" not in only_labels

    await run(users.stop(userId="me"))


async def test_get_in_every_format(client: Any, running: Any, gmail_schema: Any, run: Any) -> None:
    attachment = b"%PDF-1.4 " + bytes(range(256)) * 40
    delivered = await running.admin.deliver_inbound(
        ALICE,
        sender="Bob <bob@outside.example>",
        subject="Invoice =?utf-8?q?caf=C3=A9?=",
        text="Please find the invoice attached.",
        html="<p>Please find the <b>invoice</b> attached.</p>",
        attachments=[
            {
                "filename": "invoice.pdf",
                "mime_type": "application/pdf",
                "data_base64": base64.b64encode(attachment).decode(),
            }
        ],
    )
    message_id = delivered["id"]

    listed = await run(client.messages().list(userId="me"))
    gmail_schema.validate(listed, "ListMessagesResponse")
    assert listed["messages"] == [{"id": message_id, "threadId": delivered["threadId"]}]

    minimal = await run(client.messages().get(userId="me", id=message_id, format="minimal"))
    gmail_schema.validate(minimal, "Message")
    assert "payload" not in minimal
    assert set(minimal["labelIds"]) == {"INBOX", "UNREAD"}

    metadata = await run(
        client.messages().get(
            userId="me", id=message_id, format="metadata", metadataHeaders=["subject", "From"]
        )
    )
    gmail_schema.validate(metadata, "Message")
    assert {h["name"] for h in metadata["payload"]["headers"]} == {"Subject", "From"}

    full = await run(client.messages().get(userId="me", id=message_id, format="full"))
    gmail_schema.validate(full, "Message")
    payload = full["payload"]
    assert payload["mimeType"] == "multipart/mixed"
    assert payload["partId"] == ""
    alternative, pdf = payload["parts"]
    assert alternative["mimeType"] == "multipart/alternative"
    assert [p["partId"] for p in alternative["parts"]] == ["0.0", "0.1"]
    text = base64.urlsafe_b64decode(alternative["parts"][0]["body"]["data"])
    assert text.strip() == b"Please find the invoice attached."
    assert pdf["filename"] == "invoice.pdf"
    assert "data" not in pdf["body"]
    assert pdf["body"]["size"] == len(attachment)
    assert full["snippet"] == "Please find the invoice attached."

    part_body = await run(
        client.messages().attachments().get(userId="me", messageId=message_id, id=pdf["body"]["attachmentId"])
    )
    gmail_schema.validate(part_body, "MessagePartBody")
    assert base64.urlsafe_b64decode(part_body["data"]) == attachment

    raw = await run(client.messages().get(userId="me", id=message_id, format="raw"))
    gmail_schema.validate(raw, "Message")
    assert "payload" not in raw
    parsed = BytesParser(policy=default_policy).parsebytes(base64.urlsafe_b64decode(raw["raw"]))
    assert str(parsed["Subject"]) == "Invoice café"

    labels = await run(client.labels().list(userId="me"))
    gmail_schema.validate(labels, "ListLabelsResponse")
    assert {"INBOX", "SENT", "UNREAD"} <= {label["id"] for label in labels["labels"]}


async def test_send_and_reply_in_the_same_thread(
    client: Any, running: Any, gmail_schema: Any, run: Any
) -> None:
    first = await run(client.messages().send(userId="me", body={"raw": _raw(_mail("Proposal"))}))
    gmail_schema.validate(first, "Message")
    assert first["labelIds"] == ["SENT"]
    sent = await run(client.messages().get(userId="me", id=first["id"], format="metadata"))
    headers = {h["name"].lower(): h["value"] for h in sent["payload"]["headers"]}
    assert headers["from"] == f"Alice Example <{ALICE}>"  # From is the mailbox
    assert headers["message-id"].endswith("@mail.gmail.com>")  # Gmail adds a Message-ID
    original_id = headers["message-id"]

    reply = _mail("Re: Proposal", In_Reply_To=original_id, References=original_id)
    answered = await run(
        client.messages().send(userId="me", body={"raw": _raw(reply), "threadId": first["threadId"]})
    )
    assert answered["threadId"] == first["threadId"]

    thread = await run(client.threads().get(userId="me", id=first["threadId"]))
    gmail_schema.validate(thread, "Thread")
    assert [m["id"] for m in thread["messages"]] == [first["id"], answered["id"]]

    no_headers = await run(
        client.messages().send(
            userId="me", body={"raw": _raw(_mail("Re: Proposal")), "threadId": first["threadId"]}
        )
    )
    assert no_headers["threadId"] != first["threadId"]


async def test_media_upload_paths(client: Any, running: Any, gmail_schema: Any, run: Any) -> None:
    first = await run(client.messages().send(userId="me", body={"raw": _raw(_mail("Large files"))}))
    original = await run(client.messages().get(userId="me", id=first["id"], format="metadata"))
    message_id = next(h["value"] for h in original["payload"]["headers"] if h["name"].lower() == "message-id")
    big = _mail("Re: Large files", text="x" * 200_000, In_Reply_To=message_id, References=message_id)

    multipart = await run(
        client.messages().send(
            userId="me",
            body={"threadId": first["threadId"]},
            media_body=MediaIoBaseUpload(io.BytesIO(big.as_bytes()), mimetype="message/rfc822"),
        )
    )
    gmail_schema.validate(multipart, "Message")
    assert multipart["threadId"] == first["threadId"]

    media_only = await run(
        client.messages().send(
            userId="me", media_body=MediaIoBaseUpload(io.BytesIO(big.as_bytes()), mimetype="message/rfc822")
        )
    )
    assert media_only["threadId"] != first["threadId"]  # no threadId: a new thread

    resumable = await run(
        client.messages().send(
            userId="me",
            body={"threadId": first["threadId"]},
            media_body=MediaIoBaseUpload(
                io.BytesIO(big.as_bytes()), mimetype="message/rfc822", chunksize=256 * 1024, resumable=True
            ),
        )
    )
    gmail_schema.validate(resumable, "Message")
    assert resumable["threadId"] == first["threadId"]
    stored = await running.admin.message(ALICE, resumable["id"])
    assert base64.b64decode(stored["raw_base64"]).endswith(big.as_bytes().split(b"\n\n", 1)[1])


async def test_insert_and_import(client: Any, gmail_schema: Any, run: Any) -> None:
    message = _mail(
        "Archived", to=ALICE, From="Dan <dan@outside.example>", Date="Tue, 02 Jan 2024 10:00:00 +0000"
    )
    inserted = await run(
        client.messages().insert(
            userId="me", internalDateSource="dateHeader", body={"raw": _raw(message), "labelIds": ["INBOX"]}
        )
    )
    gmail_schema.validate(inserted, "Message")
    fetched = await run(client.messages().get(userId="me", id=inserted["id"], format="minimal"))
    assert fetched["internalDate"] == "1704189600000"
    assert fetched["labelIds"] == ["INBOX"]

    imported = await run(
        client.messages().import_(
            userId="me",
            body={"labelIds": ["INBOX", "UNREAD"]},
            media_body=MediaIoBaseUpload(io.BytesIO(_mail("Imported").as_bytes()), mimetype="message/rfc822"),
        )
    )
    assert set(imported["labelIds"]) == {"INBOX", "UNREAD"}

    found = await run(client.messages().list(userId="me", q="after:2023/12/31 before:2024/01/03"))
    assert [m["id"] for m in found["messages"]] == [inserted["id"]]


async def test_errors_reach_the_client_as_http_errors(client: Any, running: Any, run: Any) -> None:
    with pytest.raises(HttpError) as stale:
        await run(client.history().list(userId="me", startHistoryId="1"))
    assert stale.value.status_code == 404
    assert stale.value.error_details[0]["reason"] == "notFound"

    with pytest.raises(HttpError) as missing:
        await run(client.messages().get(userId="me", id="ffffffffffffffff"))
    assert missing.value.status_code == 404

    with pytest.raises(HttpError) as delegation:
        await run(client.getProfile(userId="someone@else.example"))
    assert delegation.value.status_code == 403


async def test_batch_of_gets(
    running: Any, gmail_service: Callable[..., Any], gmail_schema: Any, run: Any
) -> None:
    service = gmail_service(running, await running.token_for())
    users = service.users()
    delivered = [
        await running.admin.deliver_inbound(
            ALICE, sender="Bob <bob@outside.example>", subject=f"m{i}", text="x"
        )
        for i in range(3)
    ]
    results: dict[str, Any] = {}

    def collect(request_id: str, response: Any, exception: Exception | None) -> None:
        results[request_id] = exception or response

    batch = service.new_batch_http_request(callback=collect)
    for message in delivered:
        batch.add(users.messages().get(userId="me", id=message["id"], format="minimal"))
    batch.add(users.messages().get(userId="me", id="ffffffffffffffff"))
    await asyncio.to_thread(batch.execute)

    assert len(results) == 4
    for index, message in enumerate(delivered, start=1):
        gmail_schema.validate(results[str(index)], "Message")
        assert results[str(index)]["id"] == message["id"]
    assert isinstance(results["4"], HttpError)
    assert results["4"].status_code == 404
