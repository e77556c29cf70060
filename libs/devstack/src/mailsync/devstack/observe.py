"""Knowing when the running product has caught up, from the outside: Kafka end offsets and `/metrics`.

Every service counts the records its consumers processed, per topic
(`mailsync_received_processed_messages_total{handler="<topic>", status="acked"}`). A service has caught up
with a topic once that count reaches the number of records on the topic (the sum of its partitions' end
offsets). `wait_idle` waits for the whole pipeline in order (provider hints, then ingested messages, then
send commands), so a test can assert that something did *not* happen without sleeping for a guessed time.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer

from mailsync.common.contracts import CONNECTIONS_CHANGED, MAILBOX_CHANGED, MESSAGES_INGESTED, SEND_COMMANDS

if TYPE_CHECKING:
    import aiohttp

    from mailsync.devstack.product import ProductEndpoints

_SAMPLE = re.compile(r"^mailsync_received_processed_messages_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")

PIPELINE: tuple[tuple[str, str], ...] = (
    ("ingest-gmail", MAILBOX_CHANGED),
    ("ingest-outlook", MAILBOX_CHANGED),
    ("router", CONNECTIONS_CHANGED),
    ("sender", CONNECTIONS_CHANGED),
    ("sender", SEND_COMMANDS),
    ("router", MESSAGES_INGESTED),
)
"""(service, contract topic) pairs in the order mail flows through them."""


def processed_count(metrics_text: str, topic: str) -> float:
    """Records of `topic` a service's consumers processed successfully, from its Prometheus text."""
    total = 0.0
    for line in metrics_text.splitlines():
        match = _SAMPLE.match(line)
        if match and f'handler="{topic}"' in match["labels"] and 'status="acked"' in match["labels"]:
            total += float(match["value"])
    return total


async def processed(http: aiohttp.ClientSession, service_url: str, topic: str) -> float:
    """`processed_count` of the service at `service_url`."""
    async with http.get(f"{service_url}/metrics") as response:
        response.raise_for_status()
        return processed_count(await response.text(), topic)


async def records_on(bootstrap_servers: str, topic: str, *, within: float = 30.0) -> int:
    """How many records `topic` holds (sum of its partitions' end offsets).

    The partitions are learnt by subscribing and waiting for the assignment: a metadata request alone
    (`consumer.topics()`) does not fill the consumer's own cache, which would count nothing.
    """
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + within
        while not consumer.assignment():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no partition of {topic} assigned within {within} s")
            await asyncio.sleep(0.05)
        ends = await consumer.end_offsets(list(consumer.assignment()))
        return int(sum(ends.values()))
    finally:
        await consumer.stop()


async def caught_up(
    http: aiohttp.ClientSession, endpoints: ProductEndpoints, service: str, topic: str
) -> bool:
    """True once `service` has processed every record currently on contract topic `topic`."""
    physical = endpoints.topic(topic)
    total = await records_on(endpoints.kafka_bootstrap_servers, physical)
    return await processed(http, endpoints.service_urls[service], physical) >= total


async def wait_idle(
    http: aiohttp.ClientSession, endpoints: ProductEndpoints, *, settle: float = 1.5, within: float = 60.0
) -> None:
    """Wait `settle` seconds (provider notifications are batched per second), then until each stage of
    `PIPELINE` has caught up, twice in a row (a later stage may produce work for an earlier one)."""
    await asyncio.sleep(settle)
    deadline = time.monotonic() + within
    for _ in range(2):
        for service, topic in PIPELINE:
            while not await caught_up(http, endpoints, service, topic):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{service} did not catch up with {topic} within {within} s")
                await asyncio.sleep(0.2)
