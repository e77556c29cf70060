"""Routing a batch gives the state that routing its messages one at a time gives (`domain.batch`).

Two databases on the real MongoDB-wire server get the same directory and connection; one routes a batch in a
single `route_messages` call, the other routes the same messages one by one, reloading the facts from the
database before each. The batch holds messages that depend on earlier ones of the same batch: a contact
created from the BCC address (P6) who writes again, two messages of a new thread (G3 then G2), a reply found
only through In-Reply-To (G2), the same message twice (D2) and an unknown sender (G1). The batch's filings
are announced and stored in parts (`Router.apply_part`); a redelivered batch announces nothing again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from mailsync.common.contracts import (
    CONVERSATION_MESSAGES_RECORDED,
    Address,
    ConnectionChanged,
    ContactUpserted,
    ConversationMessageRecorded,
    MessageBody,
    MessageIngested,
    SubaccountUserUpserted,
)
from mailsync.common.kafka import EventPublisher
from mailsync.common.mongo import Document
from mailsync.common.service import ServiceRuntime, create_runtime
from mailsync.router.adapters.connection_store import ConnectionStore
from mailsync.router.adapters.conversation_store import ConversationStore
from mailsync.router.adapters.directory_store import DirectoryStore
from mailsync.router.adapters.thread_store import ThreadStore
from mailsync.router.domain.facts import NO_POLICY, AttachmentPolicy
from mailsync.router.handlers import Router
from mailsync.router.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.mongodb]

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
MAILBOX = "gmail:ada@acme.example"
ADA_BCC = "ada.bcc@crm.example"


def message(n: int, sender: str, thread: str, **extra: Any) -> MessageIngested:
    at = T0 + timedelta(hours=1, seconds=n)
    fields: dict[str, Any] = {
        "occurred_at": at,
        "provider": "gmail",
        "mailbox_id": MAILBOX,
        "mailbox_address": "ada@acme.example",
        "connection_ids": (),
        "provider_message_id": f"m{n}",
        "provider_thread_id": thread,
        "internet_message_id": f"<{n}@mail.example>",
        "subject": f"Hello {n}",
        "from_": Address(email=sender),
        "to": (Address(email="ada@acme.example"),),
        "direction": "inbound",
        "sent_by_owner": False,
        "sent_at": at,
        "received_at": at,
        "body": MessageBody(text=f"body {n}"),
    }
    fields.update(extra)
    return MessageIngested(**fields)


BATCH = [
    message(
        1,
        "ada@acme.example",
        "t-new",
        to=(Address(email="newcomer@new.example"),),
        bcc=(Address(email=ADA_BCC),),
        direction="outbound",
        sent_by_owner=True,
    ),
    message(2, "newcomer@new.example", "t-new-2"),
    message(3, "grace@navy.example", "t-grace"),
    message(4, "grace@navy.example", "t-grace"),
    message(5, "grace@navy.example", "t-split", in_reply_to="<3@mail.example>"),
    message(3, "grace@navy.example", "t-grace"),
    message(6, "stranger@nowhere.example", "t-stranger"),
]


@pytest.fixture
def make_router(
    kafka_bootstrap_servers: str, mongodb_uri: str, unique_name: Callable[[str], str]
) -> Callable[[], AsyncIterator[tuple[Router, ServiceRuntime]]]:
    async def make() -> AsyncIterator[tuple[Router, ServiceRuntime]]:
        settings = Settings(
            kafka_bootstrap_servers=kafka_bootstrap_servers,
            mongodb_uri=mongodb_uri,  # type: ignore[arg-type]  # pydantic wraps it in SecretStr
            kafka_topic_prefix=unique_name("t") + ".",
            mongodb_database=unique_name("router"),
            kafka_ensure_topics=True,
        )
        runtime = create_runtime(settings)
        database = runtime.mongo[settings.mongodb_database]
        policies: dict[str, AttachmentPolicy] = {"outlook": AttachmentPolicy(), "gmail": NO_POLICY}
        router = Router(
            directory=DirectoryStore(database),
            connections=ConnectionStore(database),
            threads=ThreadStore(database),
            conversations=ConversationStore(database),
            publisher=runtime.publisher,
            attachment_policies=policies,  # type: ignore[arg-type]
            clock=lambda: T0 + timedelta(days=1),
        )
        await router.ensure_indexes()
        await router.apply_directory_event(
            SubaccountUserUpserted(
                occurred_at=T0,
                subaccount_id="loc_a",
                user_id="usr_ada",
                email_addresses=("ada@acme.example",),
                bcc_address=ADA_BCC,
                revision=1,
            )
        )
        await router.apply_directory_event(
            ContactUpserted(
                occurred_at=T0,
                subaccount_id="loc_a",
                contact_id="con_grace",
                email_addresses=("grace@navy.example",),
                assigned_user_id="usr_ada",
                created_at=T0,
                revision=1,
            )
        )
        await router.apply_connection_change(
            ConnectionChanged(
                occurred_at=T0,
                connection_id="conn_ada",
                subaccount_id="loc_a",
                user_id="usr_ada",
                provider="gmail",
                mailbox_id=MAILBOX,
                email_address="ada@acme.example",
                status="active",
                change="connected",
                connected_at=T0,
            )
        )
        await runtime.broker.start()
        try:
            yield router, runtime
        finally:
            await runtime.broker.stop()
            await runtime.mongo.drop_database(settings.mongodb_database)
            await runtime.mongo.close()

    return make


async def state(runtime: ServiceRuntime) -> dict[str, list[Document]]:
    database = runtime.mongo[runtime.settings.mongodb_database]
    found = {}
    for name, fields in (
        (
            "conversation_messages",
            {"conversation_id": 1, "contact_id": 1, "rule": 1, "provider_message_id": 1},
        ),
        ("thread_links", {"conversation_id": 1, "contact_id": 1, "started_by": 1}),
        ("directory_contacts", {"addresses": 1, "assigned_user_id": 1, "created_by_router": 1}),
    ):
        found[name] = await database[name].find({}, fields).sort("_id").to_list()
    return found


async def test_a_batch_is_routed_as_its_messages_one_at_a_time(
    make_router: Callable[[], AsyncIterator[tuple[Router, ServiceRuntime]]],
) -> None:
    """P6, G2, G3, G1, D2: effects of earlier messages of a batch are seen by the later ones."""
    async for router, runtime in make_router():
        await router.route_messages(BATCH)
        batched = await state(runtime)
    async for router, runtime in make_router():
        for m in BATCH:
            await router.route_message(m)
        one_by_one = await state(runtime)

    assert batched == one_by_one
    filed = {d["provider_message_id"]: d for d in batched["conversation_messages"]}
    assert sorted(filed) == ["m1", "m2", "m3", "m4", "m5"], "m3 twice is stored once; the stranger is not"
    assert filed["m1"]["rule"] == "P6"
    assert filed["m2"]["contact_id"] == filed["m1"]["contact_id"], "the contact created by m1 owns m2"
    assert filed["m4"]["rule"] == "G2"
    assert filed["m5"]["conversation_id"] == filed["m3"]["conversation_id"]
    assert [d["_id"] for d in batched["thread_links"]] == [
        f"{MAILBOX}|t-grace|loc_a",
        f"{MAILBOX}|t-new-2|loc_a",
        f"{MAILBOX}|t-new|loc_a",
    ], "one link per new thread; the split reply was found by In-Reply-To and links nothing"


@pytest.mark.parametrize("apply_part", [250, 2])
async def test_a_batch_is_announced_once_and_its_redelivery_not_again(
    make_router: Callable[[], AsyncIterator[tuple[Router, ServiceRuntime]]], apply_part: int
) -> None:
    """D2: every stored filing is announced exactly once, also when the batch is applied in parts of two
    (the duplicate m3 falls in another part) and when the whole batch is delivered again: filings in a
    thread linked before are looked up, and those are all stored by then."""
    async for made, runtime in make_router():
        publisher = AnnouncementsSeen(runtime.publisher)
        router = dataclasses.replace(made, apply_part=apply_part, publisher=publisher)  # type: ignore[arg-type]
        await router.route_messages(BATCH)
        first = list(publisher.recorded)
        await router.route_messages(BATCH)
        again = publisher.recorded[len(first) :]
        stored = (await state(runtime))["conversation_messages"]

    assert sorted(first) == sorted(d["_id"] for d in stored)
    assert len(first) == len(set(first)) == 5
    assert again == [], "a redelivered batch announces nothing that is already stored"


class AnnouncementsSeen:
    """The real publisher, noting the message id of every `ConversationMessageRecorded` it publishes."""

    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher
        self.recorded: list[str] = []

    async def publish_all(self, topic: str, events: Sequence[BaseModel]) -> None:
        await self._publisher.publish_all(topic, events)
        if topic == CONVERSATION_MESSAGES_RECORDED:
            self.recorded.extend(e.message_id for e in events if isinstance(e, ConversationMessageRecorded))
