"""The router as a running service on the real Kafka broker and MongoDB-wire server.

Events go in on the contract topics (directory, connections, send results, ingested messages); the test
reads what comes out (recorded / not-synced events) and what the read API serves.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

from mailsync.common.contracts import (
    CONNECTIONS_CHANGED,
    CONVERSATION_MESSAGES_RECORDED,
    CRM_DIRECTORY,
    MESSAGES_INGESTED,
    MESSAGES_NOT_SYNCED,
    SEND_RESULTS,
    Address,
    ConnectionChanged,
    ContactUpserted,
    ConversationMessageRecorded,
    MessageBody,
    MessageIngested,
    MessageNotSynced,
    NotSyncedReason,
    SendCompleted,
    SubaccountUserUpserted,
    contract_for,
)
from mailsync.common.topics_admin import contract_topic_names, ensure_topics
from mailsync.devstack.ports import free_port
from mailsync.router.app import create_app
from mailsync.router.domain import conversation_id_for
from mailsync.router.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.mongodb]

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
MAILBOX = "gmail:ada@acme.example"


@dataclass
class Outputs:
    recorded: list[ConversationMessageRecorded] = field(default_factory=list)
    not_synced: list[MessageNotSynced] = field(default_factory=list)


@pytest.fixture
def settings(kafka_bootstrap_servers: str, mongodb_uri: str, unique_name: Callable[[str], str]) -> Settings:
    return Settings(
        kafka_bootstrap_servers=kafka_bootstrap_servers,
        mongodb_uri=mongodb_uri,  # type: ignore[arg-type]  # pydantic wraps it in SecretStr
        kafka_topic_prefix=unique_name("t") + ".",
        mongodb_database=unique_name("router"),
        kafka_ensure_topics=True,
    )


@pytest.fixture
async def crm(
    settings: Settings, unique_name: Callable[[str], str]
) -> AsyncIterator[tuple[KafkaBroker, Outputs]]:
    """A CRM-side client: publishes inputs and collects the router's outputs."""
    topics = contract_topic_names(settings.kafka_topic_prefix)
    await ensure_topics(settings.kafka_bootstrap_servers, topics, partitions=3, replication=1)
    broker = KafkaBroker(settings.kafka_bootstrap_servers)
    outputs = Outputs()
    group = unique_name("crm")

    @broker.subscriber(
        settings.topic(CONVERSATION_MESSAGES_RECORDED), group_id=group, auto_offset_reset="earliest"
    )
    async def on_recorded(event: ConversationMessageRecorded) -> None:
        outputs.recorded.append(event)

    @broker.subscriber(
        settings.topic(MESSAGES_NOT_SYNCED), group_id=f"{group}-not-synced", auto_offset_reset="earliest"
    )
    async def on_not_synced(event: MessageNotSynced) -> None:
        outputs.not_synced.append(event)

    await broker.start()
    yield broker, outputs
    await broker.stop()


async def publish(broker: KafkaBroker, settings: Settings, topic: str, event: Any) -> None:
    contract = contract_for(topic)
    await broker.publish(
        contract.serialize(event), topic=settings.topic(topic), key=contract.key_of(event).encode()
    )


async def eventually(
    condition: Callable[[], bool], within: float = 30.0, state: Callable[[], object] = lambda: ""
) -> None:
    try:
        async with asyncio.timeout(within):
            while not condition():  # noqa: ASYNC110 - polls state that consumers mutate
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"condition not met within {within} s {state()}")


def user(subaccount: str, user_id: str = "usr_ada", bcc: str | None = None) -> SubaccountUserUpserted:
    return SubaccountUserUpserted(
        occurred_at=T0,
        subaccount_id=subaccount,
        user_id=user_id,
        email_addresses=("ada@acme.example",),
        bcc_address=bcc,
        revision=1,
    )


def contact(
    subaccount: str, contact_id: str, address: str, assigned: str | None = "usr_ada"
) -> ContactUpserted:
    return ContactUpserted(
        occurred_at=T0,
        subaccount_id=subaccount,
        contact_id=contact_id,
        email_addresses=(address,),
        assigned_user_id=assigned,
        created_at=T0,
        revision=1,
    )


def connected(subaccount: str, connection_id: str) -> ConnectionChanged:
    return ConnectionChanged(
        occurred_at=T0,
        connection_id=connection_id,
        subaccount_id=subaccount,
        user_id="usr_ada",
        provider="gmail",
        mailbox_id=MAILBOX,
        email_address="ada@acme.example",
        status="active",
        change="connected",
        connected_at=T0,
    )


def inbound(
    n: int, sender: str = "grace@navy.example", thread: str | None = None, **extra: Any
) -> MessageIngested:
    at = T0 + timedelta(hours=1, seconds=n)
    fields: dict[str, Any] = {
        "occurred_at": at,
        "provider": "gmail",
        "mailbox_id": MAILBOX,
        "mailbox_address": "ada@acme.example",
        "connection_ids": (),
        "provider_message_id": f"m{n:05d}",
        "provider_thread_id": thread or f"t{n:05d}",
        "internet_message_id": f"<{n}@navy.example>",
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


async def seed(
    broker: KafkaBroker, settings: Settings, subaccounts: dict[str, list[ContactUpserted]]
) -> None:
    for subaccount, contacts in subaccounts.items():
        await publish(broker, settings, CRM_DIRECTORY, user(subaccount))
        for c in contacts:
            await publish(broker, settings, CRM_DIRECTORY, c)
        await publish(broker, settings, CONNECTIONS_CHANGED, connected(subaccount, f"conn_{subaccount}"))


async def test_g3_inbound_from_assigned_contact_is_filed_once_and_served(
    settings: Settings, crm: tuple[KafkaBroker, Outputs]
) -> None:
    """G3 and D2: filed in the contact's conversation, stored and announced once despite a redelivery."""
    broker, outputs = crm
    await seed(broker, settings, {"loc_a": [contact("loc_a", "con_grace", "Grace@Navy.example")]})
    async with TestClient(TestServer(create_app(settings))) as client:
        await asyncio.sleep(2)  # let the directory and connection consumers catch up first
        message = inbound(1)
        await publish(broker, settings, MESSAGES_INGESTED, message)
        await publish(broker, settings, MESSAGES_INGESTED, message)
        await eventually(lambda: len(outputs.recorded) == 1)
        await asyncio.sleep(1.5)
        assert len(outputs.recorded) == 1
        recorded = outputs.recorded[0]
        assert (recorded.subaccount_id, recorded.contact_id) == ("loc_a", "con_grace")
        assert recorded.conversation_id == conversation_id_for("loc_a", "con_grace")
        assert recorded.provider_message_id == "m00001"

        response = await client.get("/v1/subaccounts/loc_a/contacts/con_grace/messages")
        assert response.status == 200
        body = await response.json()
        assert [m["provider_message_id"] for m in body["messages"]] == ["m00001"]
        assert body["messages"][0]["message_id"] == recorded.message_id

        other = await client.get("/v1/subaccounts/loc_b/contacts/con_grace/messages")
        assert (await other.json())["messages"] == []


async def test_g1_unknown_sender_is_reported_not_synced(
    settings: Settings, crm: tuple[KafkaBroker, Outputs]
) -> None:
    broker, outputs = crm
    await seed(broker, settings, {"loc_a": []})
    async with TestClient(TestServer(create_app(settings))):
        await asyncio.sleep(2)
        await publish(broker, settings, MESSAGES_INGESTED, inbound(2, sender="stranger@spam.example"))
        await eventually(lambda: len(outputs.not_synced) == 1)
    assert outputs.not_synced[0].reason == NotSyncedReason.UNKNOWN_SENDER
    assert outputs.not_synced[0].subaccount_id == "loc_a"
    assert outputs.recorded == []


async def test_m1_m3_crm_started_thread_stays_in_its_subaccount(
    settings: Settings, crm: tuple[KafkaBroker, Outputs]
) -> None:
    """M1: a new inbound email reaches both subaccounts; M3: a reply in a CRM-started thread reaches one."""
    broker, outputs = crm
    grace = "grace@navy.example"
    await seed(
        broker,
        settings,
        {"loc_a": [contact("loc_a", "con_a", grace)], "loc_b": [contact("loc_b", "con_b", grace)]},
    )
    sent = SendCompleted(
        occurred_at=T0 + timedelta(minutes=30),
        request_id="crm:1",
        status="sent",
        route="mailbox",
        provider="gmail",
        connection_id="conn_loc_a",
        mailbox_address="ada@acme.example",
        mailbox_id=MAILBOX,
        provider_message_id="sent1",
        provider_thread_id="crm-thread",
        internet_message_id="<crm-1@acme.example>",
        subaccount_id="loc_a",
        user_id="usr_ada",
        contact_id="con_a",
        kind="individual",
    )
    async with TestClient(TestServer(create_app(settings))):
        await publish(broker, settings, SEND_RESULTS, sent)
        await asyncio.sleep(2)
        await publish(broker, settings, MESSAGES_INGESTED, inbound(3))  # a new thread: M1
        reply = inbound(4, thread="crm-thread", in_reply_to="<crm-1@acme.example>")
        await publish(broker, settings, MESSAGES_INGESTED, reply)  # the CRM-started thread: M3
        await eventually(lambda: len(outputs.recorded) == 3 and len(outputs.not_synced) == 1)
    by_message = sorted((r.provider_message_id, r.subaccount_id) for r in outputs.recorded)
    assert by_message == [("m00003", "loc_a"), ("m00003", "loc_b"), ("m00004", "loc_a")]
    assert outputs.not_synced[0].reason == NotSyncedReason.THREAD_CLAIMED_BY_OTHER_SUBACCOUNT
    assert outputs.not_synced[0].subaccount_id == "loc_b"


async def test_m1_after_a_restart_the_first_batch_waits_for_the_read_models_backlog(
    settings: Settings, crm: tuple[KafkaBroker, Outputs]
) -> None:
    """M1 at start-up: while the router was down, the mailbox was connected in a second subaccount, behind a
    backlog of other connections. Filed in the first subaccount only, the message would not even be reported
    as a skip: the router must first apply the backlog, then file it in both."""
    broker, outputs = crm
    grace = "grace@navy.example"
    for subaccount, contact_id in (("loc_a", "con_a"), ("loc_b", "con_b")):
        await publish(broker, settings, CRM_DIRECTORY, user(subaccount))
        await publish(broker, settings, CRM_DIRECTORY, contact(subaccount, contact_id, grace))
    await publish(broker, settings, CONNECTIONS_CHANGED, connected("loc_a", "conn_loc_a"))
    async with TestClient(TestServer(create_app(settings))):
        await publish(broker, settings, MESSAGES_INGESTED, inbound(4))
        await eventually(lambda: len(outputs.recorded) == 1, within=60)  # loc_a's read models are in

    others = [
        connected("loc_others", f"conn_other_{n}").model_copy(
            update={"mailbox_id": f"gmail:other{n}@acme.example", "user_id": f"usr_{n}"}
        )
        for n in range(1500)
    ]
    for start in range(0, len(others), 100):
        await asyncio.gather(
            *(publish(broker, settings, CONNECTIONS_CHANGED, e) for e in others[start : start + 100])
        )
    await publish(broker, settings, CONNECTIONS_CHANGED, connected("loc_b", "conn_loc_b"))
    await publish(broker, settings, MESSAGES_INGESTED, inbound(5))
    async with TestClient(TestServer(create_app(settings))):
        await eventually(lambda: len(outputs.recorded) == 3, within=60, state=lambda: outputs)
        await asyncio.sleep(1)
    filed = sorted((r.provider_message_id, r.subaccount_id) for r in outputs.recorded)
    assert filed == [("m00004", "loc_a"), ("m00005", "loc_a"), ("m00005", "loc_b")]
    assert outputs.not_synced == []


async def test_router_killed_mid_stream_loses_nothing_and_doubles_nothing(
    settings: Settings, crm: tuple[KafkaBroker, Outputs], tmp_path: Path
) -> None:
    """D2 across crashes: SIGKILL while filing 300 messages, restart, every message stored exactly once."""
    broker, outputs = crm
    database: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri.get_secret_value())
    stored = database[settings.mongodb_database]["conversation_messages"]
    env = {
        **os.environ,
        "MAILSYNC_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "MAILSYNC_MONGODB_URI": settings.mongodb_uri.get_secret_value(),
        "MAILSYNC_MONGODB_DATABASE": settings.mongodb_database,
        "MAILSYNC_KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "MAILSYNC_HTTP_PORT": str(free_port()),
        "MAILSYNC_KAFKA_ENSURE_TOPICS": "true",
    }
    total = 300
    first = start_router(env, tmp_path / "first.log")
    try:
        await seed(broker, settings, {"loc_a": [contact("loc_a", "con_grace", "grace@navy.example")]})
        probe = inbound(999)
        await publish(broker, settings, MESSAGES_INGESTED, probe)
        await eventually(lambda: len(outputs.recorded) == 1, within=60)  # the read models are current
        for n in range(total):
            await publish(broker, settings, MESSAGES_INGESTED, inbound(1000 + n))
        await eventually(lambda: len(outputs.recorded) >= 40, within=60)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert len(outputs.recorded) < total, "the crash came too late to test anything"
    second = start_router(env, tmp_path / "second.log")
    try:
        await eventually(
            lambda: len({r.message_id for r in outputs.recorded}) == total + 1,
            within=240,
            state=lambda: f"{len({r.message_id for r in outputs.recorded})} distinct recorded",
        )
        assert await stored.count_documents({}) == total + 1
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
        await database.close()
    assert outputs.not_synced == []


def start_router(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as stderr:
        return subprocess.Popen([sys.executable, "-m", "mailsync.router"], env=env, stderr=stderr)
