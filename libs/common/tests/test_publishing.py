"""The producer of `create_broker` holds records for `kafka_linger_ms`, so records published close together
share one produce request (fewer requests for the broker to serve when the sender answers many commands at
once)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from mailsync.common.contracts import MAILBOX_CHANGED, MailboxChanged
from mailsync.common.service import create_runtime
from mailsync.common.settings import ServiceSettings

pytestmark = pytest.mark.kafka

LINGER_SECONDS = 0.4


def mailbox_hint() -> MailboxChanged:
    return MailboxChanged(
        provider="gmail",
        mailbox_id="gmail:ada@example.com",
        email_address="ada@example.com",
        source="push",
        history_id=1234,
        received_at=datetime.now(UTC),
    )


async def test_a_record_waits_for_the_linger_before_it_is_sent(service_settings: ServiceSettings) -> None:
    settings = service_settings.model_copy(update={"kafka_linger_ms": int(LINGER_SECONDS * 1000)})
    runtime = create_runtime(settings)
    await runtime.broker.start()
    try:
        await runtime.publisher.publish(MAILBOX_CHANGED, mailbox_hint())  # connects and creates the topic
        started = time.perf_counter()
        await runtime.publisher.publish(MAILBOX_CHANGED, mailbox_hint())
        alone = time.perf_counter() - started
        started = time.perf_counter()
        await asyncio.gather(*(runtime.publisher.publish(MAILBOX_CHANGED, mailbox_hint()) for _ in range(20)))
        together = time.perf_counter() - started
    finally:
        await runtime.broker.stop()
    # The producer held the record for the linger: it was not sent as soon as it was published.
    assert alone >= LINGER_SECONDS * 0.95
    # Twenty records published at once waited for one linger together, not twenty in turn.
    assert together < LINGER_SECONDS * 5
