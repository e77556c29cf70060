"""Steps the end-to-end scenarios share beyond `Seeder` and `Crm`: the same mailbox connected in several
subaccounts (M1-M3), send commands with copies and attachments, every result a request produced (S7), the
and the reasons a message was not synced. To wait until the pipeline has settled, use `observe.wait_idle`.

Everything goes through the product's public interfaces: the ingest services' OAuth flow, the CRM's Kafka
topics and the sandboxes' admin APIs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from aiokafka import AIOKafkaConsumer

from mailsync.common.contracts import (
    SEND_COMMANDS,
    SEND_RESULTS,
    Address,
    AttachmentMeta,
    BlobRef,
    MessageBody,
    MessageNotSynced,
    ReplyContext,
    SendCompleted,
    SendEmail,
    contract_for,
)
from mailsync.devstack.connect import connect_gmail
from mailsync.devstack.seed import ConnectedUser

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from mailsync.devstack.crm import Crm
    from mailsync.devstack.product import ProductEndpoints
    from mailsync.devstack.seed import Seeder

MB = 1024 * 1024


async def connect_gmail_elsewhere(
    seeder: Seeder, subaccount_id: str, user_id: str, address: str
) -> ConnectedUser:
    """The owner of an already connected Gmail mailbox connects it in one more subaccount (M1-M3): the CRM
    knows the user there, and the user goes through Google's consent again."""
    await seeder.crm.upsert_user(subaccount_id, user_id, [address])
    body = await connect_gmail(
        seeder.http, seeder.endpoints.ingest_gmail_url, subaccount_id, user_id, address
    )
    connected = ConnectedUser(
        subaccount_id, user_id, address, "gmail", str(body["connection_id"]), str(body["mailbox_id"])
    )
    await seeder.sender_caught_up(connected.connection_id)
    return connected


def declared_attachment(filename: str, content_type: str, size_bytes: int) -> AttachmentMeta:
    """An attachment the command declares as stored, whose content no store holds.

    A send refused for the attachment's size or type must be refused from the declaration alone: had the
    sender read the content first, it would answer `attachment_unavailable` instead.
    """
    digest = hashlib.sha256(f"{filename}:{size_bytes}".encode()).hexdigest()
    blob = BlobRef(
        store="gridfs", id=f"never-stored-{uuid.uuid4().hex}", size_bytes=size_bytes, sha256=digest
    )
    return AttachmentMeta(filename=filename, content_type=content_type, size_bytes=size_bytes, blob=blob)


async def send_command(
    crm: Crm,
    *,
    subaccount_id: str,
    user_id: str,
    to: Sequence[str],
    subject: str,
    text: str,
    contact_id: str | None = None,
    cc: Sequence[str] = (),
    attachments: Sequence[AttachmentMeta] = (),
    reply_context: ReplyContext | None = None,
    kind: Literal["individual", "bulk", "workflow"] = "individual",
    request_id: str | None = None,
) -> str:
    """Publish an individual `SendEmail` with the fields `Crm.send_email` leaves out; its request id."""
    command = SendEmail(
        request_id=request_id or f"crm:{uuid.uuid4()}",
        kind=kind,
        subaccount_id=subaccount_id,
        user_id=user_id,
        contact_id=contact_id,
        to=tuple(Address(email=a) for a in to),
        cc=tuple(Address(email=a) for a in cc),
        subject=subject,
        body=MessageBody(text=text),
        attachments=tuple(attachments),
        reply_context=reply_context,
        requested_at=datetime.now(UTC),
    )
    await crm.publish(SEND_COMMANDS, command)
    return command.request_id


@contextlib.asynccontextmanager
async def _reading(endpoints: ProductEndpoints, topic: str, within: float) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer of every partition of contract topic `topic`, from its beginning."""
    consumer = AIOKafkaConsumer(
        endpoints.topic(topic),
        bootstrap_servers=endpoints.kafka_bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + within
        while not consumer.assignment():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no partition of {topic} assigned within {within} s")
            await asyncio.sleep(0.05)
        yield consumer
    finally:
        await consumer.stop()


async def all_results(
    endpoints: ProductEndpoints, request_id: str, *, within: float = 30.0
) -> list[SendCompleted]:
    """Every `SendCompleted` published for `request_id` so far, in topic order (S7: one per delivery)."""
    async with _reading(endpoints, SEND_RESULTS, within) as consumer:
        deadline = time.monotonic() + within
        partitions = list(consumer.assignment())
        ends = await consumer.end_offsets(partitions)
        found: list[SendCompleted] = []
        key = request_id.encode()

        async def behind() -> bool:
            return any([await consumer.position(p) < ends[p] for p in partitions])

        while await behind():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{SEND_RESULTS} not read to its end within {within} s")
            batches = await consumer.getmany(timeout_ms=500)
            for record in (r for records in batches.values() for r in records):
                if record.key == key and record.value is not None:
                    event = contract_for(SEND_RESULTS).parse(record.value)
                    if isinstance(event, SendCompleted):
                        found.append(event)
        return found


def not_synced(crm: Crm, mailbox_id: str, provider_message_id: str) -> dict[str | None, MessageNotSynced]:
    """The reported skips of one message, per subaccount."""
    return {
        e.subaccount_id: e
        for e in crm.not_synced
        if e.mailbox_id == mailbox_id and e.provider_message_id == provider_message_id
    }


async def wait_not_synced(
    crm: Crm, mailbox_id: str, provider_message_id: str, subaccounts: Sequence[str | None]
) -> dict[str | None, MessageNotSynced]:
    """Wait until the message was reported not synced for each of `subaccounts`; the reports."""
    await crm.wait_until(
        lambda: set(subaccounts) <= set(not_synced(crm, mailbox_id, provider_message_id)),
        what=f"MessageNotSynced of {provider_message_id} for {list(subaccounts)}",
    )
    return not_synced(crm, mailbox_id, provider_message_id)


def recorded_in(crm: Crm, subaccount_id: str) -> list[tuple[str, str]]:
    """(contact id, provider message id) of every filing announced for a subaccount."""
    return [(e.contact_id, e.provider_message_id) for e in crm.recorded if e.subaccount_id == subaccount_id]
