"""The admin API through its Python client: acting as users, reading mailboxes, history control, reset."""

from __future__ import annotations

import asyncio
import base64
import socket
from typing import Any

import aiohttp
import pytest
from aiosmtpd.controller import Controller

from mailsync.gmail_sandbox.admin_client import AdminApiError

ALICE = "alice@example.com"
BOB = "bob@corp.example"
CAROL = "carol@outside.example"


async def test_send_with_cc_and_bcc_between_sandbox_mailboxes(running: Any) -> None:
    admin = running.admin
    await admin.create_mailbox(BOB, kind="workspace", display_name="Bob")
    sent = await admin.send_as_user(
        ALICE,
        to=[CAROL],
        cc=[BOB],
        bcc=["dave@outside.example"],
        subject="Kick-off",
        text="Agenda attached",
        attachments=[
            {
                "filename": "agenda.txt",
                "mime_type": "text/plain",
                "data_base64": base64.b64encode(b"1. hi").decode(),
            }
        ],
    )
    assert sent["labelIds"] == ["SENT"]
    assert sent["headers"]["Bcc"] == "dave@outside.example"  # the sender's copy keeps Bcc

    inbox = await admin.messages(BOB, label="INBOX")
    assert len(inbox) == 1
    received = inbox[0]
    assert "Bcc" not in received["headers"]  # recipients never see Bcc
    assert received["headers"]["Message-ID"] == sent["headers"]["Message-ID"]
    assert received["labelIds"] == ["INBOX", "UNREAD"]

    reply = await admin.reply_as_user(BOB, received["id"], "Works for me", reply_all=True)
    assert reply["headers"]["To"] == f"Alice Example <{ALICE}>"
    assert CAROL in reply["headers"]["Cc"]
    alice_inbox = await admin.messages(ALICE, label="INBOX")
    assert alice_inbox[0]["threadId"] == sent["threadId"]  # the colleague's reply joins Alice's thread

    forwarded = await admin.forward_as_user(ALICE, sent["id"], to=["erin@outside.example"], text="FYI")
    assert forwarded["headers"]["Subject"] == "Fwd: Kick-off"
    raw = base64.b64decode((await admin.message(ALICE, forwarded["id"]))["raw_base64"])
    assert b"---------- Forwarded message ---------" in raw

    sent_folder = await admin.messages(ALICE, label="SENT")
    assert [m["id"] for m in sent_folder] == [forwarded["id"], sent["id"]]
    threads = await admin.threads(ALICE)
    assert any(t["threadId"] == sent["threadId"] and len(t["messageIds"]) >= 2 for t in threads)


async def test_history_paging_filters_and_retention(running: Any) -> None:
    admin = running.admin
    await admin.create_mailbox("erin@example.com", history_retention_seconds=3600)
    headers = await running.auth_headers("erin@example.com")
    start = (await admin.mailbox("erin@example.com"))["history_id"]
    delivered = [
        await admin.deliver_inbound("erin@example.com", sender=CAROL, subject=f"m{i}", text="x")
        for i in range(5)
    ]
    url = f"{running.base_url}/gmail/v1/users/me/history"
    async with aiohttp.ClientSession() as session:
        ids: list[str] = []
        params: dict[str, str] = {"startHistoryId": start, "maxResults": "2"}
        pages = 0
        while True:
            async with session.get(url, headers=headers, params=params) as response:
                body = await response.json()
            pages += 1
            ids += [r["messagesAdded"][0]["message"]["id"] for r in body.get("history", [])]
            if "nextPageToken" not in body:
                break
            params["pageToken"] = body["nextPageToken"]
        assert pages == 3
        assert ids == [m["id"] for m in delivered]

        modify = f"{running.base_url}/gmail/v1/users/me/messages/{delivered[0]['id']}/modify"
        async with session.post(modify, headers=headers, json={"addLabelIds": ["STARRED"]}) as response:
            assert response.status == 200
        params = {"startHistoryId": start, "labelId": "STARRED"}
        async with session.get(url, headers=headers, params=params) as response:
            starred = (await response.json())["history"]
        assert [r["labelsAdded"][0]["labelIds"] for r in starred] == [["STARRED"]]

        await running.clock.advance(3601)
        headers = await running.auth_headers("erin@example.com")
        async with session.get(url, headers=headers, params={"startHistoryId": start}) as response:
            assert response.status == 404

        current = (await admin.mailbox("erin@example.com"))["history_id"]
        async with session.get(url, headers=headers, params={"startHistoryId": current}) as response:
            assert response.status == 200
        await admin.deliver_inbound("erin@example.com", sender=CAROL, subject="later", text="x")
        await admin.expire_history("erin@example.com")
        async with session.get(url, headers=headers, params={"startHistoryId": current}) as response:
            assert response.status == 404


async def test_reset_and_admin_errors(running: Any) -> None:
    admin = running.admin
    await admin.create_mailbox(BOB)
    await admin.add_fault("error", count=5)
    await admin.reset()
    addresses = [m["address"] for m in (await admin._call("GET", "/mailboxes"))["mailboxes"]]
    assert addresses == [ALICE]
    assert await admin.faults() == []
    with pytest.raises(AdminApiError) as missing:
        await admin.mailbox(BOB)
    assert missing.value.status == 404
    with pytest.raises(AdminApiError):
        await admin.create_mailbox("not-an-address")


async def test_registered_client_and_manual_clock(running: Any) -> None:
    await running.admin.register_client("crm.apps.googleusercontent.com", "s3cret", ["http://127.0.0.1/cb"])
    tokens = await running.admin.issue_tokens(
        ALICE, ["https://www.googleapis.com/auth/gmail.readonly"], client_id="crm.apps.googleusercontent.com"
    )
    assert tokens["refresh_token"]
    before = running.clock.now()
    assert await running.admin.advance_clock(30) == pytest.approx(before + 30)


async def test_metadata_scope_limits(running: Any) -> None:
    delivered = await running.admin.deliver_inbound(ALICE, sender=CAROL, subject="s", text="t")
    headers = await running.auth_headers(scopes=["https://www.googleapis.com/auth/gmail.metadata"])
    base = f"{running.base_url}/gmail/v1/users/me/messages"
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{base}/{delivered['id']}", headers=headers, params={"format": "full"}
        ) as response:
            assert response.status == 403
        async with session.get(base, headers=headers, params={"q": "in:inbox"}) as response:
            assert response.status == 403
        async with session.get(
            f"{base}/{delivered['id']}", headers=headers, params={"format": "metadata"}
        ) as r:
            assert r.status == 200


async def test_mail_to_outside_addresses_is_logged_and_relayed_by_smtp(start_sandbox: Any) -> None:
    received: list[tuple[str, list[str], bytes]] = []

    class Sink:
        async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
            received.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content)))
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    await asyncio.to_thread(controller.start)
    try:
        running = await start_sandbox(smtp_relay=f"127.0.0.1:{port}")
        sent = await running.admin.send_as_user(
            ALICE, to=[CAROL], bcc=["crm-bcc@crm.example"], subject="Hello", text="Hi Carol"
        )
        await running.sandbox.outbound.wait_idle()
    finally:
        await asyncio.to_thread(controller.stop)
    [logged] = await running.admin.outbound()
    assert logged["id"] == sent["id"]
    assert logged["recipients"] == [CAROL, "crm-bcc@crm.example"]
    assert logged["relay_status"] == "relayed"
    [(mail_from, rcpt_tos, data)] = received
    assert (mail_from, rcpt_tos) == (ALICE, [CAROL, "crm-bcc@crm.example"])
    assert b"Bcc:" not in data
    assert b"Subject: Hello" in data
