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
filings do not wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
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

        Raises `TransientError` like `wait_until_current`, and the next call waits again.
        """
        if not self._backlog_applied:
            await self.wait_until_current(datetime.now(UTC))
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
            targets = [(group, await self._end_offsets(topic)) for group, topic in self._groups]
            deadline = time.monotonic() + self._timeout
            for group, ends in targets:
                while not await self._caught_up(group, ends):
                    if time.monotonic() > deadline:
                        raise TransientError(
                            f"consumer group {group} has not applied its backlog yet", retry_after=1
                        )
                    await asyncio.sleep(0.1)
            self._current_as_of = began

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
