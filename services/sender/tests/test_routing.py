"""Which way mail goes out (S1, S2, C4, C5), end to end: Kafka, the Gmail sandbox and a real SMTP server."""

from __future__ import annotations

import email
from email import policy

import pytest
from services.sender.tests.conftest import (
    ADA,
    ADA_NEW,
    Sending,
    connection_event,
    send_email,
)

from mailsync.common.contracts import Address

pytestmark = [pytest.mark.kafka, pytest.mark.mongodb]


def parsed(content: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(content, policy=policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


async def test_s2_bulk_and_workflow_mail_goes_through_the_subaccount_smtp_provider_never_the_mailbox(
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
    await sending.connect("conn_ada", ADA, daily_send_limit=1)
    hidden = Address(email="audit@acme.example")
    await bus.send(send_email("req-bulk", kind="bulk", bcc=(hidden,)))
    await bus.send(send_email("req-workflow", kind="workflow", user_id=None))
    await bus.send(send_email("req-individual"))  # the mailbox's one send of the day is still free
    results = await bus.wait_for(["req-bulk", "req-workflow", "req-individual"])

    for request_id in ("req-bulk", "req-workflow"):
        result = results[request_id]
        assert (result.status, result.route, result.connection_id) == ("sent", "subaccount_provider", None)
    assert results["req-individual"].route == "mailbox"
    assert results["req-individual"].status == "sent"
    received = {parsed(m.content)["Message-ID"]: m for m in smtp_server.sink.messages}
    bulk = received[results["req-bulk"].internet_message_id]
    assert bulk.mail_from == "crm@mail.acme.example"
    assert set(bulk.recipients) == {"grace@navy.example", "audit@acme.example"}
    assert "Bcc" not in parsed(bulk.content)
    assert results["req-workflow"].internet_message_id in received
    assert len(smtp_server.sink.messages) == 2
    assert [m["id"] for m in await gmail.sent(ADA)] == [results["req-individual"].provider_message_id]


async def test_c5_individual_mail_of_a_user_without_an_active_connection_goes_through_smtp(
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
    await sending.apply(connection_event("conn_ada", ADA, change="disconnected"))
    await bus.send(send_email("req-disconnected"))
    await bus.send(send_email("req-never-connected", user_id="usr_bob"))
    results = await bus.wait_for(["req-disconnected", "req-never-connected"])

    for result in results.values():
        assert (result.status, result.route) == ("sent", "subaccount_provider")
    assert await gmail.sent(ADA) == []
    assert len(smtp_server.sink.messages) == 2


async def test_c5_a_disconnect_the_read_model_has_not_seen_yet_still_reroutes_to_smtp(
    sending: Sending,
) -> None:
    start_sender, bus, _database, ingest, gmail, smtp_server = (
        sending.start,
        sending.bus,
        sending.database,
        sending.ingest,
        sending.gmail,
        sending.smtp,
    )
    await start_sender()
    await sending.connect("conn_ada", ADA)
    ingest.connections["conn_ada"].status = "disconnected"  # ingest answers 410 before its event arrives
    await bus.send(send_email("req-racing-disconnect"))
    result = (await bus.wait_for(["req-racing-disconnect"]))["req-racing-disconnect"]

    assert (result.status, result.route) == ("sent", "subaccount_provider")
    assert await gmail.sent(ADA) == []
    assert len(smtp_server.sink.messages) == 1


async def test_c4_after_a_mailbox_switch_new_mail_goes_out_through_the_new_mailbox(sending: Sending) -> None:
    start_sender, bus, _database, ingest, gmail = (
        sending.start,
        sending.bus,
        sending.database,
        sending.ingest,
        sending.gmail,
    )
    await start_sender()
    await sending.connect("conn_ada", ADA)
    await bus.send(send_email("req-old-mailbox"))
    await bus.wait_for(["req-old-mailbox"])
    await ingest.connect("conn_ada", ADA_NEW)
    await sending.apply(connection_event("conn_ada", ADA_NEW, change="mailbox_replaced", previous=ADA))
    await bus.send(send_email("req-new-mailbox"))
    result = (await bus.wait_for(["req-new-mailbox"]))["req-new-mailbox"]

    assert (result.status, result.mailbox_address, result.connection_id) == ("sent", ADA_NEW, "conn_ada")
    assert result.mailbox_id == f"mbx_gmail_{ADA_NEW}"
    assert [m["id"] for m in await gmail.sent(ADA_NEW)] == [result.provider_message_id]
    assert len(await gmail.sent(ADA)) == 1
