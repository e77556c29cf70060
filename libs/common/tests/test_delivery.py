"""At-least-once delivery through the real Kafka broker with the project's broker factory.

Covers the rules in `mailsync.common.delivery`: commit after work (a consumer killed before committing gets
the message again), retries of transient failures, dead letters for invalid payloads and permanent failures,
and a partition that waits (no commit) while a dependency stays down.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from faststream.kafka import KafkaBroker

from mailsync.common.contracts import MAILBOX_CHANGED, DeadLettered, MailboxChanged, dead_letter_topic
from mailsync.common.delivery import PermanentError, TransientError
from mailsync.common.service import ServiceRuntime, create_runtime
from mailsync.common.settings import ServiceSettings

pytestmark = pytest.mark.kafka


def hint(mailbox: str = "gmail:ada@example.com") -> MailboxChanged:
    return MailboxChanged(
        provider="gmail",
        mailbox_id=mailbox,
        email_address="ada@example.com",
        source="push",
        history_id=1234,
        received_at=datetime.now(UTC),
    )


@asynccontextmanager
async def running(runtime: ServiceRuntime) -> AsyncIterator[ServiceRuntime]:
    await runtime.broker.start()
    try:
        yield runtime
    finally:
        await runtime.broker.stop()


async def eventually(condition: Callable[[], bool], within: float = 30.0) -> None:
    """Wait until `condition()` holds; fail the test after `within` seconds."""
    try:
        async with asyncio.timeout(within):
            while not condition():  # noqa: ASYNC110 - polls state that handlers mutate
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"condition not met within {within} s")


def collect_dead_letters(broker: KafkaBroker, settings: ServiceSettings, into: list[DeadLettered]) -> None:
    @broker.subscriber(
        dead_letter_topic(settings.topic(MAILBOX_CHANGED)),
        group_id=settings.consumer_group("dlt-reader"),
        auto_offset_reset="earliest",
    )
    async def on_dead_letter(letter: DeadLettered) -> None:
        into.append(letter)


def subscribe(
    runtime: ServiceRuntime, handler: Callable[[MailboxChanged], Awaitable[None]], group: str = "worker"
) -> None:
    settings = runtime.settings

    @runtime.broker.subscriber(
        settings.topic(MAILBOX_CHANGED), group_id=settings.consumer_group(group), auto_offset_reset="earliest"
    )
    async def on_mailbox_changed(event: MailboxChanged) -> None:
        await handler(event)


def metric(runtime: ServiceRuntime, name: str, **labels: str) -> float:
    return runtime.registry.get_sample_value(name, labels) or 0.0


async def test_consumer_killed_before_commit_gets_the_message_again(
    service_settings: ServiceSettings, tmp_path: Path
) -> None:
    publisher_runtime = create_runtime(service_settings)
    sent = hint()
    async with running(publisher_runtime):
        await publisher_runtime.publisher.publish(MAILBOX_CHANGED, sent)

    marker = tmp_path / "received"
    env = {
        **os.environ,
        "MARKER_FILE": str(marker),
        "MAILSYNC_SERVICE_NAME": service_settings.service_name,
        "MAILSYNC_KAFKA_BOOTSTRAP_SERVERS": service_settings.kafka_bootstrap_servers,
        "MAILSYNC_KAFKA_TOPIC_PREFIX": service_settings.kafka_topic_prefix,
    }
    script = Path(__file__).with_name("kafka_consumer_process.py")
    completed = await asyncio.to_thread(
        subprocess.run, [sys.executable, str(script)], env=env, timeout=90, capture_output=True, check=False
    )
    assert completed.returncode == -9, completed.stderr.decode()[-2000:]
    assert marker.read_text(encoding="utf-8") == str(sent.event_id)

    received: list[MailboxChanged] = []
    runtime = create_runtime(service_settings)

    async def record(event: MailboxChanged) -> None:
        received.append(event)

    subscribe(runtime, record, group="kill-test")
    async with running(runtime):
        await eventually(lambda: len(received) == 1)
    assert received[0].event_id == sent.event_id


async def test_transient_failures_are_retried_then_processed_once(service_settings: ServiceSettings) -> None:
    runtime = create_runtime(service_settings)
    calls: list[MailboxChanged] = []
    processed: list[MailboxChanged] = []
    dead: list[DeadLettered] = []

    async def flaky(event: MailboxChanged) -> None:
        calls.append(event)
        if len(calls) < 3:
            raise TransientError("provider answered 503", retry_after=0.05)
        processed.append(event)

    subscribe(runtime, flaky)
    collect_dead_letters(runtime.broker, service_settings, dead)
    async with running(runtime):
        sent = hint()
        await runtime.publisher.publish(MAILBOX_CHANGED, sent)
        await eventually(lambda: len(processed) == 1)
        await asyncio.sleep(0.5)
    assert [e.event_id for e in processed] == [sent.event_id]
    assert len(calls) == 3
    assert dead == []
    topic = service_settings.topic(MAILBOX_CHANGED)
    assert metric(runtime, "mailsync_handler_retries_total", service="common-test", topic=topic) == 2


async def test_invalid_payload_is_dead_lettered_and_the_partition_moves_on(
    service_settings: ServiceSettings,
) -> None:
    runtime = create_runtime(service_settings)
    processed: list[MailboxChanged] = []
    dead: list[DeadLettered] = []

    async def record(event: MailboxChanged) -> None:
        processed.append(event)

    subscribe(runtime, record)
    collect_dead_letters(runtime.broker, service_settings, dead)
    topic = service_settings.topic(MAILBOX_CHANGED)
    async with running(runtime):
        key = b"gmail:ada@example.com"
        await runtime.broker.publish(b'{"provider": "yahoo"}', topic=topic, key=key)
        await runtime.broker.publish(b"\xff\xfe not json", topic=topic, key=key)
        good = hint()
        await runtime.publisher.publish(MAILBOX_CHANGED, good)
        await eventually(lambda: len(processed) == 1 and len(dead) == 2)
    assert processed[0].event_id == good.event_id
    assert [letter.payload_bytes() for letter in dead] == [b'{"provider": "yahoo"}', b"\xff\xfe not json"]
    assert all(letter.reason.startswith("invalid_payload") for letter in dead)
    assert all(letter.original_topic == topic and letter.key == key.decode() for letter in dead)
    assert (
        metric(
            runtime,
            "mailsync_dead_lettered_total",
            service="common-test",
            topic=topic,
            reason="invalid_payload",
        )
        == 2
    )


async def test_permanent_and_unexpected_errors_are_dead_lettered_with_their_reason(
    service_settings: ServiceSettings,
) -> None:
    runtime = create_runtime(service_settings)
    dead: list[DeadLettered] = []
    seen: list[MailboxChanged] = []

    async def refuse(event: MailboxChanged) -> None:
        seen.append(event)
        if len(seen) == 1:
            raise PermanentError("unknown_mailbox", "no connection for gmail:ada@example.com")
        raise KeyError("a bug")

    subscribe(runtime, refuse)
    collect_dead_letters(runtime.broker, service_settings, dead)
    async with running(runtime):
        first, second = hint(), hint()
        await runtime.publisher.publish(MAILBOX_CHANGED, first)
        await runtime.publisher.publish(MAILBOX_CHANGED, second)
        await eventually(lambda: len(dead) == 2)
    assert len(seen) == 2, "permanent errors are not retried"
    assert dead[0].reason == "unknown_mailbox: unknown_mailbox: no connection for gmail:ada@example.com"
    assert dead[0].error_type == "mailsync.common.delivery.PermanentError"
    assert MailboxChanged.model_validate_json(dead[0].payload_bytes()).event_id == first.event_id
    assert dead[1].reason.startswith("unexpected_error")
    assert dead[1].error_type == "builtins.KeyError"
    assert dead[0].attempts == 1


async def test_a_dependency_that_stays_down_holds_the_offset_until_it_recovers(
    service_settings: ServiceSettings,
) -> None:
    runtime = create_runtime(service_settings)
    attempts: list[MailboxChanged] = []
    processed: list[MailboxChanged] = []
    dead: list[DeadLettered] = []
    dependency_up = asyncio.Event()

    async def needs_dependency(event: MailboxChanged) -> None:
        attempts.append(event)
        if not dependency_up.is_set():
            raise TransientError("database unavailable", retry_after=0.01)
        processed.append(event)

    subscribe(runtime, needs_dependency)
    collect_dead_letters(runtime.broker, service_settings, dead)
    async with running(runtime):
        sent = hint()
        await runtime.publisher.publish(MAILBOX_CHANGED, sent)
        # More attempts than one delivery allows (3): the message was redelivered, not skipped.
        await eventually(lambda: len(attempts) > 4)
        assert processed == []
        dependency_up.set()
        await eventually(lambda: len(processed) == 1)
        await asyncio.sleep(0.5)
    assert processed[0].event_id == sent.event_id
    assert dead == []


def subscribe_batch(
    runtime: ServiceRuntime, handler: Callable[[list[MailboxChanged]], Awaitable[None]]
) -> None:
    settings = runtime.settings

    @runtime.broker.subscriber(
        settings.topic(MAILBOX_CHANGED),
        group_id=settings.consumer_group("batch-worker"),
        auto_offset_reset="earliest",
        batch=True,
        max_records=50,
    )
    async def on_mailbox_changes(events: list[MailboxChanged]) -> None:
        await handler(events)


async def publish_all(settings: ServiceSettings, events: list[bytes]) -> None:
    """Publish before any consumer starts, on one key, so the consumer fetches them as one batch."""
    runtime = create_runtime(settings)
    async with running(runtime):
        for payload in events:
            await runtime.broker.publish(payload, topic=settings.topic(MAILBOX_CHANGED), key=b"k")


async def test_a_poison_record_in_a_batch_is_dead_lettered_alone_and_the_rest_applied(
    service_settings: ServiceSettings, caplog: pytest.LogCaptureFixture
) -> None:
    good = [hint() for _ in range(6)]
    poison = hint("gmail:poison@example.com")
    payloads = [e.model_dump_json().encode() for e in good[:3]]
    payloads += [b'{"provider": "yahoo"}', poison.model_dump_json().encode()]
    payloads += [e.model_dump_json().encode() for e in good[3:]]
    await publish_all(service_settings, payloads)

    runtime = create_runtime(service_settings)
    batch_sizes: list[int] = []
    applied: set[object] = set()
    dead: list[DeadLettered] = []

    async def apply(events: list[MailboxChanged]) -> None:
        batch_sizes.append(len(events))
        if any(e.mailbox_id == poison.mailbox_id for e in events):
            raise PermanentError("unknown_mailbox", poison.mailbox_id)
        applied.update(e.event_id for e in events)

    subscribe_batch(runtime, apply)
    collect_dead_letters(runtime.broker, service_settings, dead)
    async with running(runtime):
        await eventually(lambda: len(applied) == len(good) and len(dead) == 2)
        await asyncio.sleep(0.5)
    assert applied == {e.event_id for e in good}
    assert sorted(letter.reason.split(":")[0] for letter in dead) == ["invalid_payload", "unknown_mailbox"]
    assert {letter.payload_bytes() for letter in dead} == {payloads[3], payloads[4]}
    isolated = [
        r for r in caplog.records if r.getMessage() == "batch failed; applying its records one by one"
    ]
    assert isolated, "the records were not consumed as a batch"
    assert max(r.__dict__["records"] for r in isolated) > 1
    assert 1 in batch_sizes, "the failed batch was not re-run record by record"


async def test_a_transient_failure_retries_the_whole_batch(service_settings: ServiceSettings) -> None:
    events = [hint() for _ in range(5)]
    await publish_all(service_settings, [e.model_dump_json().encode() for e in events])

    runtime = create_runtime(service_settings)
    calls: list[list[object]] = []
    dead: list[DeadLettered] = []

    async def flaky(batch: list[MailboxChanged]) -> None:
        calls.append([e.event_id for e in batch])
        if len(calls) == 1:
            raise TransientError("database unavailable", retry_after=0.01)

    subscribe_batch(runtime, flaky)
    collect_dead_letters(runtime.broker, service_settings, dead)
    async with running(runtime):
        await eventually(lambda: {i for ids in calls[1:] for i in ids} == {e.event_id for e in events})
        await asyncio.sleep(0.5)
    assert calls[1] == calls[0], "the retry saw a different batch"
    assert dead == []
