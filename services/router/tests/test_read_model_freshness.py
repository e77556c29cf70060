"""How long the router waits for its read models, against the real Kafka broker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from mailsync.common.delivery import TransientError
from mailsync.common.topics_admin import ensure_topics
from mailsync.router.adapters.read_model_freshness import ReadModelFreshness

pytestmark = pytest.mark.kafka


@pytest.fixture
async def producer(kafka_bootstrap_servers: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap_servers)
    await producer.start()
    yield producer
    await producer.stop()


async def commit(bootstrap: str, group: str, partition: TopicPartition, offset: int) -> None:
    """What a read-model consumer of `group` commits once it has applied the first `offset` events."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([partition])
        await consumer.commit({partition: offset})
    finally:
        await consumer.stop()


async def test_the_start_up_wait_keeps_its_first_target_while_events_keep_coming(
    kafka_bootstrap_servers: str, unique_name: Callable[[str], str], producer: AIOKafkaProducer
) -> None:
    """The backlog found at start-up is fixed at the first try: events published after it cannot keep the
    first batch waiting, however long a read model takes to catch up with them."""
    topic, group = unique_name("directory"), unique_name("router-directory")
    await ensure_topics(kafka_bootstrap_servers, [topic], partitions=1, replication=1)
    partition = TopicPartition(topic, 0)
    for n in range(3):
        await producer.send_and_wait(topic, f"before {n}".encode())
    freshness = ReadModelFreshness(kafka_bootstrap_servers, [(group, topic)], timeout=0.5)
    await freshness.start()
    try:
        with pytest.raises(TransientError):
            await freshness.wait_until_caught_up()  # nothing applied yet

        for n in range(3):
            await producer.send_and_wait(topic, f"after {n}".encode())
        await commit(kafka_bootstrap_servers, group, partition, 3)

        await freshness.wait_until_caught_up()  # the three events found at the first try are applied
        with pytest.raises(TransientError):
            await freshness.wait_until_current(datetime.now(UTC))  # the later three are not
        await freshness.wait_until_caught_up()  # and later calls return at once
    finally:
        await freshness.stop()
