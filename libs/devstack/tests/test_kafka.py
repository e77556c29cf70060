"""The real Kafka broker, started by the plugin, accepts topics, produce and fetch."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from mailsync.devstack.kafka import answers_api_versions

if TYPE_CHECKING:
    from collections.abc import Callable


@pytest.mark.kafka
def test_broker_answers_api_versions(kafka_bootstrap_servers: str) -> None:
    host, port = kafka_bootstrap_servers.rsplit(":", 1)
    assert answers_api_versions(host, int(port))


@pytest.mark.kafka
async def test_create_topic_produce_and_consume_one_record(
    kafka_bootstrap_servers: str, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("devstack")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name=topic, num_partitions=2, replication_factor=1)])
        described = await admin.describe_topics([topic])
        assert len(described[0]["partitions"]) == 2
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap_servers, enable_idempotence=True)
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, b"hello", key=b"thread-1", headers=[("kind", b"test")])
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap_servers,
        group_id=unique_name("group"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    assert (record.partition, record.offset) == (sent.partition, sent.offset)
    assert record.key == b"thread-1"
    assert record.value == b"hello"
    assert list(record.headers) == [("kind", b"test")]
