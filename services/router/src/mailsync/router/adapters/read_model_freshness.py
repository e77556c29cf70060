"""Whether the router's read models have applied every event published so far to the topics that feed them.

The router's consumers of the CRM directory, connection changes and send results run beside the message
consumer, in their own consumer groups, so a message can be routed a moment before the contact, connection or
CRM-started thread it needs has been applied. A decision *not* to sync is only final once it is: before,
`wait_until_current` takes the topics' end offsets now and waits until the groups have committed past them,
so every event published before the message was applied. Under continuous directory traffic this still
ends, because the target is fixed when the wait begins. A finished wait covers every message that was
published before it began.

At start-up every topic's backlog races the others, and a filing decision can be as wrong as a skip: a
message filed in one subaccount of a mailbox whose other subaccount's connection is still in the backlog
is never filed there (M1). So the first batch waits for the backlog (`wait_until_caught_up`); later
filings do not wait. A rebalance is not covered: when a router instance stops, the read-model partitions
it consumed wait for their group to hand them to another instance, and routers already running file
meanwhile without waiting for that backlog.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from mailsync.common.delivery import TransientError

# Producers' clocks may run slightly ahead of the router's.
_CLOCK_SKEW_SECONDS = 2.0


class ReadModelFreshness:
    """Tracks the consumer groups (with their topics) that feed the read models."""

    def __init__(
        self, bootstrap_servers: str, groups: Sequence[tuple[str, str]], *, timeout: float = 10.0
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._groups = list(groups)
        self._timeout = timeout
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._current_as_of = 0.0
        self._backlog: list[tuple[str, dict[TopicPartition, int]]] | None = None
        self._backlog_applied = False
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap_servers, enable_auto_commit=False)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap_servers)
        await self._consumer.start()
        await self._admin.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._admin is not None:
            await self._admin.close()

    def _clients(self) -> tuple[AIOKafkaConsumer, AIOKafkaAdminClient]:
        if self._consumer is None or self._admin is None:
            raise RuntimeError("ReadModelFreshness.start() was not called")
        return self._consumer, self._admin

    async def wait_until_caught_up(self) -> None:
        """Return once the read models have applied what was published before the first call (the backlog
        found at start-up); every later call returns at once.

        Raises `TransientError` like `wait_until_current`; the next call keeps waiting for the same backlog,
        so a read model that keeps receiving events cannot hold routing back for ever.
        """
        if self._backlog_applied:
            return
        async with self._lock:  # a call that waited for the lock finds the backlog applied at once
            if self._backlog is None:
                self._backlog = await self._targets()
            await self._wait_for(self._backlog)
            self._backlog_applied = True

    async def wait_until_current(self, published_at: datetime) -> None:
        """Return once everything published to the read models' topics before `published_at` is applied.

        Raises `TransientError` if the groups do not catch up within the timeout (the message is retried).
        """
        if published_at.timestamp() + _CLOCK_SKEW_SECONDS < self._current_as_of:
            return
        async with self._lock:
            if published_at.timestamp() + _CLOCK_SKEW_SECONDS < self._current_as_of:
                return
            began = time.time()
            await self._wait_for(await self._targets())
            self._current_as_of = began

    async def _targets(self) -> list[tuple[str, dict[TopicPartition, int]]]:
        """Each group with its topic's end offsets now."""
        try:
            return [(group, await self._end_offsets(topic)) for group, topic in self._groups]
        except KafkaError as error:
            raise TransientError(f"Kafka: {error}", retry_after=1) from error

    async def _wait_for(self, targets: list[tuple[str, dict[TopicPartition, int]]]) -> None:
        """Return once every group has committed up to its targets; `TransientError` after the timeout."""
        deadline = time.monotonic() + self._timeout
        try:
            for group, ends in targets:
                while not await self._caught_up(group, ends):
                    if time.monotonic() > deadline:
                        raise TransientError(
                            f"consumer group {group} has not applied its backlog yet", retry_after=1
                        )
                    await asyncio.sleep(0.1)
        except KafkaError as error:
            raise TransientError(f"Kafka: {error}", retry_after=1) from error

    async def _end_offsets(self, topic: str) -> dict[TopicPartition, int]:
        consumer, admin = self._clients()
        described = await admin.describe_topics([topic])
        partitions = [
            TopicPartition(topic, p["partition"]) for d in described for p in d.get("partitions", ())
        ]
        offsets: dict[TopicPartition, int] = await consumer.end_offsets(partitions) if partitions else {}
        return offsets

    async def _caught_up(self, group: str, ends: dict[TopicPartition, int]) -> bool:
        _, admin = self._clients()
        committed = await admin.list_consumer_group_offsets(group, partitions=list(ends))
        for partition, end in ends.items():
            if end == 0:
                continue
            position = committed.get(partition)
            if position is None or position.offset < end:
                return False
        return True
