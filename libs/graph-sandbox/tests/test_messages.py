"""Graph mail endpoints (read, send, reply, attachments, upload sessions), checked with msgraph-sdk models."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from msgraph.generated.models.attachment import Attachment
from msgraph.generated.models.attachment_collection_response import AttachmentCollectionResponse
from msgraph.generated.models.file_attachment import FileAttachment
from msgraph.generated.models.mail_folder import MailFolder
from msgraph.generated.models.message import Message
from msgraph.generated.models.message_collection_response import MessageCollectionResponse
from msgraph.generated.models.upload_session import UploadSession

from mailsync.graph_sandbox import GraphSandboxAdmin, ManualClock
from mailsync.graph_sandbox.admin_client import attachment
from mailsync.graph_sandbox.testing import GraphTestClient

SdkParse = Callable[[type[Any], Any], Any]

ALICE = "alice@contoso.example"


def _message_payload(to: str, subject: str = "Quote", **extra: Any) -> dict[str, Any]:
    return {
        "message": {
            "subject": subject,
            "body": {"contentType": "Text", "content": "Hello from the CRM"},
            "toRecipients": [{"emailAddress": {"address": to, "name": "Customer"}}],
            **extra,
        }
    }


async def test_requests_without_a_valid_token_are_401(
    graph: GraphTestClient, alice: dict[str, Any], clock: ManualClock
) -> None:
    status, headers, body = await graph.call("GET", "/v1.0/me/messages", auth=False)
    assert status == 401
    assert body["error"]["code"] == "InvalidAuthenticationToken"
    assert body["error"]["message"] == "Access token is empty."
    assert {"date", "request-id", "client-request-id"} <= body["error"]["innerError"].keys()
    assert headers["WWW-Authenticate"].startswith("Bearer")

    status, _, body = await graph.call(
        "GET", "/v1.0/me/messages", headers={"Authorization": "Bearer abc"}, auth=False
    )
    assert status == 401

    clock.advance(3600 + 301)
    status, _, body = await graph.call("GET", "/v1.0/me/messages")
    assert status == 401
    assert "expired" in body["error"]["message"]


async def test_missing_permission_and_other_mailboxes_are_403(
    graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any]
) -> None:
    bob = await admin.create_mailbox("bob@contoso.example")
    status, _, body = await graph.call("GET", f"/v1.0/users/{bob['id']}/messages")
    assert (status, body["error"]["code"]) == (403, "ErrorAccessDenied")

    graph.token = (await admin.mint_tokens(ALICE, ["Mail.Read"]))["access_token"]
    status, _, body = await graph.call("POST", "/v1.0/me/sendMail", _message_payload("x@fabrikam.example"))
    assert (status, body["error"]["code"]) == (403, "ErrorAccessDenied")

    status, _, body = await graph.call("GET", "/v1.0/users/nobody@contoso.example/messages")
    assert (status, body["error"]["code"]) == (404, "ErrorInvalidUser")


async def test_inbound_mail_is_listed_and_parsed_by_the_sdk(
    graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any], sdk_parse: SdkParse
) -> None:
    for number in range(3):
        await admin.deliver_inbound(
            ALICE,
            sender="customer@fabrikam.example",
            subject=f"Order {number}",
            body="<p>Hi</p>",
            content_type="html",
        )
    status, _, body = await graph.call("GET", "/v1.0/me/mailFolders/inbox/messages?$top=2")
    assert status == 200
    page = sdk_parse(MessageCollectionResponse, body)
    assert [m.subject for m in page.value] == ["Order 2", "Order 1"]
    assert page.value[0].from_.email_address.address == "customer@fabrikam.example"
    assert page.value[0].body_preview == "Hi"
    assert page.odata_next_link is not None
    status, _, rest = await graph.call("GET", page.odata_next_link)
    assert [m["subject"] for m in rest["value"]] == ["Order 0"]
    assert "@odata.nextLink" not in rest

    status, _, folder = await graph.call("GET", "/v1.0/me/mailFolders/Inbox")
    parsed_folder = sdk_parse(MailFolder, folder)
    assert (parsed_folder.total_item_count, parsed_folder.unread_item_count) == (3, 3)


async def test_select_and_filter(
    graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any], sdk_parse: SdkParse
) -> None:
    first = await admin.deliver_inbound(ALICE, sender="a@fabrikam.example", subject="Alpha")
    await admin.deliver_inbound(ALICE, sender="b@fabrikam.example", subject="Beta")
    imid = first["internetMessageId"]
    status, _, body = await graph.call(
        "GET",
        f"/v1.0/me/messages?$filter=internetMessageId eq '{imid}'&$select=subject,internetMessageHeaders",
    )
    assert status == 200
    assert len(body["value"]) == 1
    message = sdk_parse(Message, body["value"][0])
    assert message.subject == "Alpha"
    assert message.body is None
    names = {h.name for h in message.internet_message_headers}
    assert {"Message-ID", "From", "Subject"} <= names

    status, _, full = await graph.call("GET", f"/v1.0/me/messages/{first['id']}")
    assert "internetMessageHeaders" not in full
    sdk_parse(Message, full)

    status, _, error = await graph.call("GET", "/v1.0/me/messages?$filter=startswith(subject,'A')")
    assert (status, error["error"]["code"]) == (400, "BadRequest")
    status, _, error = await graph.call("GET", "/v1.0/me/messages?$select=nonsense")
    assert status == 400
    status, _, error = await graph.call("GET", "/v1.0/me/messages/AAMkAGnotthere=")
    assert (status, error["error"]["code"]) == (404, "ErrorItemNotFound")


async def test_send_mail_is_202_without_body_and_lands_in_sent_items(
    graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any]
) -> None:
    await admin.create_mailbox("bob@contoso.example")
    payload = _message_payload(
        "customer@fabrikam.example",
        ccRecipients=[{"emailAddress": {"address": "bob@contoso.example"}}],
        bccRecipients=[{"emailAddress": {"address": "audit@fabrikam.example"}}],
        internetMessageHeaders=[{"name": "x-crm-id", "value": "42"}],
    )
    status, headers, body = await graph.call("POST", "/v1.0/me/sendMail", payload)
    assert (status, body) == (202, None)
    assert headers.get("Content-Length", "0") == "0"

    sent = await admin.folder(ALICE, "sentitems")
    assert [m["subject"] for m in sent] == ["Quote"]
    header_map = {h["name"]: h["value"] for h in sent[0]["internetMessageHeaders"]}
    assert header_map["x-crm-id"] == "42"
    assert header_map["Message-ID"] == sent[0]["internetMessageId"]
    bob_inbox = await admin.folder("bob@contoso.example", "inbox")
    assert bob_inbox[0]["internetMessageId"] == sent[0]["internetMessageId"]
    assert bob_inbox[0]["bccRecipients"] == []
    external = await admin.external_mail()
    assert sorted(external[0]["recipients"]) == ["audit@fabrikam.example", "customer@fabrikam.example"]

    status, _, _ = await graph.call(
        "POST",
        "/v1.0/me/sendMail",
        {**_message_payload("c@fabrikam.example", "Unsaved"), "saveToSentItems": False},
    )
    assert status == 202
    assert [m["subject"] for m in await admin.folder(ALICE, "sentitems")] == ["Quote"]


async def test_send_mail_rejects_what_graph_rejects(graph: GraphTestClient, alice: dict[str, Any]) -> None:
    status, _, body = await graph.call(
        "POST",
        "/v1.0/me/sendMail",
        _message_payload(
            "c@fabrikam.example", internetMessageHeaders=[{"name": "In-Reply-To", "value": "<a@b>"}]
        ),
    )
    assert (status, body["error"]["code"]) == (400, "InvalidInternetMessageHeader")
    status, _, body = await graph.call(
        "POST", "/v1.0/me/sendMail", _message_payload("c@fabrikam.example", bogus=1)
    )
    assert (status, body["error"]["code"]) == (400, "RequestBodyRead")
    status, _, body = await graph.call("POST", "/v1.0/me/sendMail", {"message": {"subject": "nobody"}})
    assert (status, body["error"]["code"]) == (400, "ErrorInvalidRecipients")


async def test_reply_keeps_the_conversation_and_sets_threading_headers(
    graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any]
) -> None:
    inbound = await admin.deliver_inbound(
        ALICE, sender="customer@fabrikam.example", subject="Pricing question"
    )
    status, _, body = await graph.call(
        "POST", f"/v1.0/me/messages/{inbound['id']}/reply", {"comment": "Thanks!"}
    )
    assert (status, body) == (202, None)
    reply = (await admin.folder(ALICE, "sentitems"))[0]
    assert reply["conversationId"] == inbound["conversationId"]
    assert reply["subject"] == "RE: Pricing question"
    assert reply["toRecipients"][0]["emailAddress"]["address"] == "customer@fabrikam.example"
    headers = {h["name"]: h["value"] for h in reply["internetMessageHeaders"]}
    assert headers["In-Reply-To"] == inbound["internetMessageId"]
    assert headers["References"] == inbound["internetMessageId"]
    assert (
        base64.b64decode(reply["conversationIndex"])[:22]
        == base64.b64decode(inbound["conversationIndex"])[:22]
    )

    customer_reply = await admin.deliver_inbound(
        ALICE, sender="customer@fabrikam.example", in_reply_to=reply["id"], body="Great"
    )
    assert customer_reply["conversationId"] == inbound["conversationId"]
    assert customer_reply["subject"] == "RE: RE: Pricing question" or customer_reply["subject"].startswith(
        "RE:"
    )
    conversation = await admin.conversation(ALICE, inbound["conversationId"])
    assert [m["id"] for m in conversation] == [inbound["id"], reply["id"], customer_reply["id"]]

    unrelated = await admin.deliver_inbound(
        ALICE, sender="customer@fabrikam.example", subject="Pricing question"
    )
    assert unrelated["conversationId"] != inbound["conversationId"]

    status, _, body = await graph.call(
        "POST",
        f"/v1.0/me/messages/{inbound['id']}/reply",
        {"comment": "a", "message": {"body": {"contentType": "text", "content": "b"}}},
    )
    assert status == 400


async def test_create_reply_then_patch_then_send(
    graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any], sdk_parse: SdkParse
) -> None:
    inbound = await admin.deliver_inbound(ALICE, sender="customer@fabrikam.example", subject="Contract")
    status, _, draft = await graph.call("POST", f"/v1.0/me/messages/{inbound['id']}/createReply", {})
    assert status == 201
    parsed = sdk_parse(Message, draft)
    assert parsed.is_draft is True
    assert parsed.conversation_id == inbound["conversationId"]
    status, _, patched = await graph.call(
        "PATCH",
        f"/v1.0/me/messages/{draft['id']}",
        {
            "body": {"contentType": "HTML", "content": "<p>Signed copy attached</p>"},
            "ccRecipients": [{"emailAddress": {"address": "legal@contoso.example"}}],
        },
    )
    assert status == 200
    assert patched["ccRecipients"][0]["emailAddress"]["address"] == "legal@contoso.example"
    status, _, _ = await graph.call(
        "POST",
        f"/v1.0/me/messages/{draft['id']}/attachments",
        {
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": "contract.pdf",
            "contentType": "application/pdf",
            "contentBytes": base64.b64encode(b"%PDF-1.7").decode(),
        },
    )
    assert status == 201
    status, _, body = await graph.call("POST", f"/v1.0/me/messages/{draft['id']}/send")
    assert (status, body) == (202, None)
    sent = await admin.message(ALICE, draft["id"])
    assert sent["folder"] == "sentitems"
    assert sent["isDraft"] is False
    assert sent["hasAttachments"] is True
    status, _, body = await graph.call("POST", f"/v1.0/me/messages/{draft['id']}/send")
    assert status == 400
    status, _, body = await graph.call("PATCH", f"/v1.0/me/messages/{draft['id']}", {"subject": "changed"})
    assert (status, body["error"]["code"]) == (400, "ErrorInvalidPropertyUpdateSentMessage")


async def test_user_actions_in_outlook(
    graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any]
) -> None:
    inbound = await admin.deliver_inbound(
        ALICE, sender="customer@fabrikam.example", subject="Hello", cc=["colleague@fabrikam.example"]
    )
    reply_all = await admin.reply(
        ALICE, inbound["id"], "See below", reply_all=True, bcc=["crm@contoso.example"]
    )
    assert {r["emailAddress"]["address"] for r in reply_all["toRecipients"]} == {"customer@fabrikam.example"}
    assert {r["emailAddress"]["address"] for r in reply_all["ccRecipients"]} == {"colleague@fabrikam.example"}
    assert reply_all["bccRecipients"][0]["emailAddress"]["address"] == "crm@contoso.example"
    forward = await admin.forward(ALICE, inbound["id"], ["boss@fabrikam.example"], "FYI")
    assert forward["subject"] == "FW: Hello"
    assert forward["conversationId"] == inbound["conversationId"]
    fresh = await admin.send(ALICE, to=["new@fabrikam.example"], subject="New thread")
    assert fresh["conversationId"] != inbound["conversationId"]
    await admin.update_message(ALICE, inbound["id"], is_read=True)
    _status, _, body = await graph.call("GET", f"/v1.0/me/messages/{inbound['id']}?$select=isRead")
    assert body["isRead"] is True
    await admin.delete_message(ALICE, inbound["id"])
    assert (await admin.message(ALICE, inbound["id"]))["folder"] == "deleteditems"


async def test_attachments_inline_limit_and_reading(
    graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any], sdk_parse: SdkParse
) -> None:
    inbound = await admin.deliver_inbound(
        ALICE,
        sender="customer@fabrikam.example",
        subject="Files",
        attachments=[attachment("report.csv", b"a,b\n1,2\n", "text/csv")],
    )
    status, _, listing = await graph.call("GET", f"/v1.0/me/messages/{inbound['id']}/attachments")
    parsed = sdk_parse(AttachmentCollectionResponse, listing)
    assert isinstance(parsed.value[0], FileAttachment)
    assert parsed.value[0].content_bytes == b"a,b\n1,2\n"
    attachment_id = listing["value"][0]["id"]
    status, _, one = await graph.call("GET", f"/v1.0/me/messages/{inbound['id']}/attachments/{attachment_id}")
    assert sdk_parse(Attachment, one).name == "report.csv"
    status, headers, _ = await graph.call(
        "GET", f"/v1.0/me/messages/{inbound['id']}/attachments/{attachment_id}/$value"
    )
    assert status == 200
    assert headers["Content-Type"].startswith("text/csv")

    too_big = base64.b64encode(b"x" * (3 * 1024 * 1024 + 1)).decode()
    status, _, _body = await graph.call(
        "POST",
        f"/v1.0/me/messages/{inbound['id']}/attachments",
        {"@odata.type": "#microsoft.graph.fileAttachment", "name": "big.bin", "contentBytes": too_big},
    )
    assert status == 413


async def test_upload_session_in_chunks(
    graph: GraphTestClient, alice: dict[str, Any], sdk_parse: SdkParse
) -> None:
    status, _, draft = await graph.call("POST", "/v1.0/me/messages", {"subject": "Big file"})
    assert status == 201
    base = f"/v1.0/me/messages/{draft['id']}/attachments/createUploadSession"
    status, _, error = await graph.call(
        "POST", base, {"AttachmentItem": {"attachmentType": "file", "name": "s", "size": 1024}}
    )
    assert (status, error["error"]["code"]) == (400, "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize")
    status, _, error = await graph.call(
        "POST",
        base,
        {"AttachmentItem": {"attachmentType": "file", "name": "s", "size": 150 * 1024 * 1024 + 1}},
    )
    assert status == 400

    content = bytes(range(256)) * (4 * 1024 * 16 + 7)  # a little over 16 MiB / 16 * ... ~ 4.2 MB
    size = len(content)
    status, _, session = await graph.call(
        "POST", base, {"AttachmentItem": {"attachmentType": "file", "name": "video.bin", "size": size}}
    )
    assert status == 201
    parsed = sdk_parse(UploadSession, session)
    assert parsed.next_expected_ranges == ["0-"]
    upload_url = session["uploadUrl"]

    chunk = 2 * 1024 * 1024
    status, _, _ = await graph.call(
        "PUT", upload_url, data=content[:chunk], headers={"Content-Range": f"bytes 0-{chunk - 1}/{size}"}
    )
    assert status == 401  # the upload URL is pre-authenticated: an Authorization header is refused
    offset = 0
    while offset < size:
        end = min(offset + chunk, size) - 1
        status, headers, body = await graph.call(
            "PUT",
            upload_url,
            data=content[offset : end + 1],
            auth=False,
            headers={
                "Content-Range": f"bytes {offset}-{end}/{size}",
                "Content-Type": "application/octet-stream",
            },
        )
        offset = end + 1
        if offset < size:
            assert status == 200
            assert body["nextExpectedRanges"] == [str(offset)]
            status, _, body = await graph.call(
                "PUT", upload_url, data=b"zz", auth=False, headers={"Content-Range": f"bytes 0-1/{size}"}
            )
            assert status == 400  # out of order
    assert status == 201
    assert "/Attachments('" in headers["Location"]
    status, _, listing = await graph.call("GET", f"/v1.0/me/messages/{draft['id']}/attachments")
    assert listing["value"][0]["size"] == size
    assert base64.b64decode(listing["value"][0]["contentBytes"]) == content


async def test_paths_by_user_principal_name_paging_cap_and_unknown_segments(
    graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any]
) -> None:
    for number in range(3):
        await admin.deliver_inbound(ALICE, sender="c@fabrikam.example", subject=f"m{number}")
    status, _, body = await graph.call("GET", f"/v1.0/users/{ALICE}/messages?$top=5000")
    assert status == 200
    assert len(body["value"]) == 3
    status, _, body = await graph.call("GET", f"/v1.0/users/{alice['id']}/mailFolders/sentitems/messages")
    assert (status, body["value"]) == (200, [])
    status, _, body = await graph.call("GET", "/v1.0/me/calendars")
    assert (status, body["error"]["code"]) == (400, "BadRequest")
    status, _, body = await graph.call("PUT", "/v1.0/me/messages")
    assert status == 405


async def test_upload_session_cancel(graph: GraphTestClient, alice: dict[str, Any]) -> None:
    _, _, draft = await graph.call("POST", "/v1.0/me/messages", {"subject": "Big"})
    size = 3 * 1024 * 1024
    _, _, session = await graph.call(
        "POST",
        f"/v1.0/me/messages/{draft['id']}/attachments/createUploadSession",
        {"AttachmentItem": {"attachmentType": "file", "name": "x.bin", "size": size}},
    )
    status, _, _ = await graph.call("DELETE", session["uploadUrl"], auth=False)
    assert status == 204
    status, _, body = await graph.call(
        "PUT", session["uploadUrl"], data=b"a", auth=False, headers={"Content-Range": f"bytes 0-0/{size}"}
    )
    assert (status, body["error"]["code"]) == (404, "ErrorItemNotFound")


async def test_prefer_body_content_type(
    graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any]
) -> None:
    message = await admin.deliver_inbound(
        ALICE,
        sender="c@fabrikam.example",
        subject="Rich",
        body="<p>Hello <b>there</b> &amp; bye</p>",
        content_type="html",
    )
    prefer = {"Prefer": 'outlook.body-content-type="text"'}
    status, headers, body = await graph.call("GET", f"/v1.0/me/messages/{message['id']}", headers=prefer)
    assert status == 200
    assert headers["Preference-Applied"] == 'outlook.body-content-type="text"'
    assert body["body"] == {"contentType": "text", "content": "Hello there & bye"}
    status, headers, page = await graph.call(
        "GET",
        "/v1.0/me/mailFolders/inbox/messages/delta",
        headers={"Prefer": 'odata.maxpagesize=5, outlook.body-content-type="text"'},
    )
    assert page["value"][0]["body"]["contentType"] == "text"
    assert "odata.maxpagesize=5" in headers["Preference-Applied"]


async def test_mime_send_mail_keeps_the_clients_threading_headers(
    graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any]
) -> None:
    inbound = await admin.deliver_inbound(ALICE, sender="c@fabrikam.example", subject="Renewal")
    parent_id = inbound["internetMessageId"]
    mime = (
        "From: alice@contoso.example\r\nTo: c@fabrikam.example\r\nSubject: RE: Renewal\r\n"
        f"Message-ID: <crm-1@contoso.example>\r\nIn-Reply-To: {parent_id}\r\nReferences: {parent_id}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nDeal.\r\n"
    )
    status, _, body = await graph.call(
        "POST",
        "/v1.0/me/sendMail",
        data=base64.b64encode(mime.encode()),
        headers={"Content-Type": "text/plain"},
    )
    assert (status, body) == (202, None)
    sent = (await admin.folder(ALICE, "sentitems"))[0]
    assert sent["internetMessageId"] == "<crm-1@contoso.example>"
    assert sent["conversationId"] == inbound["conversationId"]
    headers = {h["name"]: h["value"] for h in sent["internetMessageHeaders"]}
    assert headers["In-Reply-To"] == inbound["internetMessageId"]
    status, _, body = await graph.call(
        "POST", "/v1.0/me/sendMail", data=b"not base64!", headers={"Content-Type": "text/plain"}
    )
    assert (status, body["error"]["code"]) == (400, "ErrorMimeContentInvalidBase64String")


async def test_reply_all_and_forward_through_graph_with_message_overrides(
    graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any]
) -> None:
    inbound = await admin.deliver_inbound(
        ALICE, sender="c@fabrikam.example", subject="Team", cc=["d@fabrikam.example"]
    )
    status, _, _ = await graph.call(
        "POST",
        f"/v1.0/me/messages/{inbound['id']}/replyAll",
        {
            "message": {
                "body": {"contentType": "html", "content": "<p>All</p>"},
                "bccRecipients": [{"emailAddress": {"address": "crm@contoso.example"}}],
                "internetMessageHeaders": [{"name": "x-crm", "value": "1"}],
            }
        },
    )
    assert status == 202
    status, _, body = await graph.call(
        "POST", f"/v1.0/me/messages/{inbound['id']}/forward", {"comment": "FYI"}
    )
    assert (status, body["error"]["code"]) == (400, "ErrorInvalidRecipients")
    status, _, _ = await graph.call(
        "POST",
        f"/v1.0/me/messages/{inbound['id']}/forward",
        {"Comment": "FYI", "ToRecipients": [{"emailAddress": {"address": "boss@fabrikam.example"}}]},
    )
    assert status == 202
    status, _, draft = await graph.call(
        "POST",
        f"/v1.0/me/messages/{inbound['id']}/createForward",
        {"toRecipients": [{"emailAddress": {"address": "x@fabrikam.example"}}]},
    )
    assert (status, draft["subject"], draft["isDraft"]) == (201, "FW: Team", True)
    sent = await admin.folder(ALICE, "sentitems")
    forward, reply_all = sent[0], sent[1]
    assert forward["subject"] == "FW: Team"
    assert reply_all["body"] == {"contentType": "html", "content": "<p>All</p>"}
    assert {r["emailAddress"]["address"] for r in reply_all["ccRecipients"]} == {"d@fabrikam.example"}
    assert reply_all["bccRecipients"][0]["emailAddress"]["address"] == "crm@contoso.example"
    assert {"name": "x-crm", "value": "1"} in reply_all["internetMessageHeaders"]


async def test_move_delete_and_permanent_delete_through_graph(
    graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any]
) -> None:
    message = await admin.deliver_inbound(
        ALICE,
        sender="c@fabrikam.example",
        subject="Tidy",
        attachments=[attachment("a.txt", b"a", "text/plain")],
    )
    status, _, expanded = await graph.call("GET", f"/v1.0/me/messages/{message['id']}?$expand=attachments")
    assert expanded["attachments"][0]["name"] == "a.txt"
    status, _, moved = await graph.call(
        "POST", f"/v1.0/me/messages/{message['id']}/move", {"DestinationId": "drafts"}
    )
    assert (status, moved["parentFolderId"]) == (201, alice["folders"]["drafts"])
    status, _, _ = await graph.call("DELETE", f"/v1.0/me/messages/{message['id']}")
    assert status == 204
    assert (await admin.message(ALICE, message["id"]))["folder"] == "deleteditems"
    status, _, _ = await graph.call("DELETE", f"/v1.0/me/messages/{message['id']}")
    assert status == 204
    status, _, _ = await graph.call("GET", f"/v1.0/me/messages/{message['id']}")
    assert status == 404
    other = await admin.deliver_inbound(ALICE, sender="c@fabrikam.example", subject="Gone")
    status, _, _ = await graph.call("POST", f"/v1.0/me/messages/{other['id']}/permanentDelete")
    assert status == 204
    status, _, _ = await graph.call("POST", f"/v1.0/me/messages/{other['id']}/move", {"destinationId": "x"})
    assert status == 404
    status, _, folders = await graph.call("GET", "/v1.0/me/mailFolders")
    assert {f["displayName"] for f in folders["value"]} == {"Inbox", "Sent Items", "Drafts", "Deleted Items"}
