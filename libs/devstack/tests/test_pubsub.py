"""Google's Pub/Sub emulator, started by the plugin, works with the official client."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from google.api_core.exceptions import DeadlineExceeded
from google.cloud import pubsub_v1

if TYPE_CHECKING:
    from collections.abc import Callable

PROJECT = "mailsync-test"


@pytest.fixture
def emulator(pubsub_emulator_host: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator_host)
    return pubsub_emulator_host


def _pull_within(subscriber: pubsub_v1.SubscriberClient, subscription: str, *, seconds: float) -> list[bytes]:
    try:
        response = subscriber.pull(subscription=subscription, max_messages=10, timeout=seconds)
    except DeadlineExceeded:
        return []
    return [received.message.data for received in response.received_messages]


@pytest.mark.pubsub
def test_publish_pull_ack_round_trip_keeps_data_and_attributes(
    emulator: str, unique_name: Callable[[str], str]
) -> None:
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(PROJECT, unique_name("topic"))
    subscription = subscriber.subscription_path(PROJECT, unique_name("sub"))
    try:
        publisher.create_topic(name=topic)
        subscriber.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=10)

        message_id = publisher.publish(
            topic, b'{"historyId": "1234"}', emailAddress="ada@example.com", kind="gmail"
        ).result(timeout=30)

        response = subscriber.pull(subscription=subscription, max_messages=10, timeout=30)
        assert len(response.received_messages) == 1
        received = response.received_messages[0]
        assert received.message.message_id == message_id
        assert received.message.data == b'{"historyId": "1234"}'
        assert dict(received.message.attributes) == {"emailAddress": "ada@example.com", "kind": "gmail"}

        subscriber.acknowledge(subscription=subscription, ack_ids=[received.ack_id])
        # Expiring the deadline at once would redeliver the message right away had the ack not taken.
        subscriber.modify_ack_deadline(
            subscription=subscription, ack_ids=[received.ack_id], ack_deadline_seconds=0
        )
        assert _pull_within(subscriber, subscription, seconds=3) == []
    finally:
        subscriber.close()
        publisher.stop()
