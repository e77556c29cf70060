"""Attachment content end to end, through the product's HTTP APIs only.

Outbound: the CRM uploads a 1 MB PDF to the sender (`POST /v1/attachments`), sends a `SendEmail` carrying
the answered `BlobRef`, and the message in the provider's mailbox carries the same bytes, through Gmail
(S1, S4) and through Outlook within its policy (S1, S5). Inbound: a contact's mail with an attachment is
filed (G3), and the `BlobRef` the router's read API serves downloads the same bytes from ingest-gmail.
"""

from __future__ import annotations

import base64
import email
import hashlib
from collections.abc import Callable
from email import policy

import aiohttp
import pytest

from mailsync.common.contracts import BlobRef
from mailsync.devstack.attachments import download_blob, pdf_document, upload_attachment
from mailsync.devstack.crm import Crm
from mailsync.devstack.product import Product
from mailsync.devstack.scenarios import MB, send_command
from mailsync.devstack.seed import Seeder

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.kafka,
    pytest.mark.mongodb,
    pytest.mark.pubsub,
]

Fresh = Callable[[str], str]


async def test_s1_s4_a_crm_send_with_an_uploaded_1_mb_pdf_reaches_the_gmail_mailbox_intact(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Fresh
) -> None:
    sub = fresh("sub")
    user = await seeder.add_gmail_user(sub, "usr_ada", f"{fresh('ada')}@gmail.example")
    contact = await seeder.add_contact(
        sub, "ct_dora", f"{fresh('dora')}@contact.example", assigned_user_id=user.user_id
    )
    content = pdf_document(MB, seed=sub)
    attachment = await upload_attachment(
        http, product.endpoints, content, filename="proposal.pdf", content_type="application/pdf"
    )
    assert attachment.blob == BlobRef(
        store="gridfs",
        id=hashlib.sha256(content).hexdigest(),
        size_bytes=MB,
        sha256=hashlib.sha256(content).hexdigest(),
    )

    result = await crm.result(
        await send_command(
            crm,
            subaccount_id=sub,
            user_id=user.user_id,
            contact_id=contact.contact_id,
            to=[contact.address],
            subject="Proposal",
            text="The proposal is attached.",
            attachments=[attachment],
        )
    )

    assert (result.status, result.route, result.provider) == ("sent", "mailbox", "gmail")
    stored = await seeder.gmail.message(user.address, str(result.provider_message_id))
    assert "SENT" in stored["labelIds"]
    sent = email.message_from_bytes(base64.b64decode(stored["raw_base64"]), policy=policy.default)
    assert isinstance(sent, email.message.EmailMessage)
    parts = [p for p in sent.iter_attachments() if isinstance(p, email.message.EmailMessage)]
    assert [(p.get_filename(), p.get_content_type()) for p in parts] == [("proposal.pdf", "application/pdf")]
    assert parts[0].get_content() == content


async def test_s1_s5_a_crm_send_with_an_uploaded_1_mb_pdf_reaches_the_outlook_mailbox_intact(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Fresh
) -> None:
    sub = fresh("sub")
    user = await seeder.add_outlook_user(sub, "usr_grace", f"{fresh('grace')}@sandbox.onmicrosoft.com")
    contact = await seeder.add_contact(
        sub, "ct_alan", f"{fresh('alan')}@contact.example", assigned_user_id=user.user_id
    )
    content = pdf_document(MB, seed=sub)
    attachment = await upload_attachment(
        http, product.endpoints, content, filename="contract.pdf", content_type="application/pdf"
    )

    result = await crm.result(
        await send_command(
            crm,
            subaccount_id=sub,
            user_id=user.user_id,
            contact_id=contact.contact_id,
            to=[contact.address],
            subject="Contract",
            text="The contract is attached.",
            attachments=[attachment],
        )
    )

    assert (result.status, result.route, result.provider) == ("sent", "mailbox", "outlook")
    sent_items = await seeder.graph.folder(user.address, "sentitems")
    assert [m["id"] for m in sent_items] == [result.provider_message_id]
    tokens = await seeder.graph.mint_tokens(user.address, ["Mail.Read"])
    async with http.get(
        f"{product.endpoints.graph_sandbox_http_url}/v1.0/me/messages/{result.provider_message_id}/attachments",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    ) as response:
        assert response.status == 200, await response.text()
        attachments = (await response.json())["value"]
    assert [(a["name"], a["contentType"], a["size"]) for a in attachments] == [
        ("contract.pdf", "application/pdf", MB)
    ]
    assert base64.b64decode(attachments[0]["contentBytes"]) == content


async def test_g3_an_inbound_gmail_attachment_is_filed_and_downloads_from_ingest_gmail_by_its_blob_ref(
    product: Product, crm: Crm, seeder: Seeder, http: aiohttp.ClientSession, fresh: Fresh
) -> None:
    sub = fresh("sub")
    user = await seeder.add_gmail_user(sub, "usr_ada", f"{fresh('ada')}@gmail.example")
    contact = await seeder.add_contact(
        sub, "ct_dora", f"{fresh('dora')}@contact.example", assigned_user_id=user.user_id
    )
    content = pdf_document(MB // 2, seed=sub)

    inbound = await seeder.gmail.deliver_inbound(
        user.address,
        sender=contact.address,
        subject="Signed order",
        text="The signed order is attached.",
        attachments=[
            {
                "filename": "order.pdf",
                "mime_type": "application/pdf",
                "data_base64": base64.b64encode(content).decode(),
            }
        ],
    )

    (filed,) = await crm.conversation_with(sub, contact.contact_id, lambda m: len(m) == 1)
    assert (filed["direction"], filed["provider_message_id"]) == ("inbound", inbound["id"])
    (meta,) = filed["attachments"]
    assert (meta["filename"], meta["content_type"], meta["size_bytes"]) == (
        "order.pdf",
        "application/pdf",
        len(content),
    )
    blob = BlobRef.model_validate(meta["blob"])
    downloaded, headers = await download_blob(http, product.endpoints.service_urls["ingest-gmail"], blob)
    assert downloaded == content
    assert hashlib.sha256(downloaded).hexdigest() == blob.sha256
    assert (headers["Content-Length"], headers["ETag"]) == (str(len(content)), f'"{blob.sha256}"')
    assert headers["Content-Type"] == "application/pdf"
