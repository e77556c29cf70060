"""The sender killed mid-stream (SIGKILL, no shutdown) and restarted: every command still gets exactly one
result and no email goes out twice (S7, S3). Before resending a send whose outcome is unknown, the sender
looks for its own Message-ID in the Gmail mailbox, or for the journalled Outlook draft's Message-ID among
sent messages (sending the draft if it never went out).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
from services.sender.tests.conftest import (
    ADA,
    ALAN,
    RunningGraph,
    Sending,
    eventually,
    free_port,
    send_email,
)

pytestmark = [pytest.mark.kafka, pytest.mark.mongodb]

COMMANDS = 60


def sender_environment(sending: Sending) -> dict[str, str]:
    """The settings of the in-process fixtures, as the `MAILSYNC_*` variables a deployed sender reads."""
    settings = sending.settings
    values = {
        "kafka_bootstrap_servers": settings.kafka_bootstrap_servers,
        "kafka_topic_prefix": settings.kafka_topic_prefix,
        "mongodb_uri": settings.mongodb_uri.get_secret_value(),
        "mongodb_database": settings.mongodb_database,
        "http_port": str(free_port()),
        "gmail_api_url": settings.gmail_api_url,
        "ingest_gmail_url": settings.ingest_gmail_url,
        "ingest_outlook_url": settings.ingest_outlook_url,
        "internal_api_token": settings.internal_api_token.get_secret_value(),
        "smtp_host": settings.smtp_host,
        "smtp_port": str(settings.smtp_port),
        "send_retry_initial_seconds": "0.05",
        "send_outcome_settle_seconds": "1.0",
        "send_attempt_lease_seconds": "3.0",  # the restarted sender takes the dead one's attempts over
        # Small batches answer commands while later ones are still being sent, so the kill lands mid-stream.
        "send_batch_max_records": "4",
        "log_format": "text",
        "log_level": "WARNING",
    }
    return {**os.environ, **{f"MAILSYNC_{name.upper()}": value for name, value in values.items()}}


@contextmanager
def sender_process(environment: dict[str, str], log: IO[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "mailsync.sender"], env=environment, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


@dataclass(frozen=True)
class Mailbox:
    """The mailbox the crash test sends through, and how to read its sent mail back."""

    address: str
    sent: Callable[[], Awaitable[list[tuple[str, str]]]]
    """(provider message id, Message-ID) of every sent message."""


async def gmail_mailbox(sending: Sending) -> Mailbox:
    # Every Gmail send takes 0.3 s, so the kill lands while sends are in flight.
    await sending.gmail.admin.add_fault("slow", delay_seconds=0.3, path_pattern="messages/send")

    async def sent() -> list[tuple[str, str]]:
        return [(m["id"], m["headers"]["Message-ID"]) for m in await sending.gmail.sent(ADA)]

    return Mailbox(ADA, sent)


async def outlook_mailbox(sending: Sending, environment: dict[str, str], graph: RunningGraph) -> Mailbox:
    environment["MAILSYNC_GRAPH_API_URL"] = graph.base_url
    await graph.admin.add_fault("slow", delay_s=0.3, path_contains="/send", method="POST")

    async def sent() -> list[tuple[str, str]]:
        return [(m["id"], m["internetMessageId"]) for m in await graph.admin.folder(ALAN, "sentitems")]

    return Mailbox(ALAN, sent)


async def test_s7_s3_a_sender_killed_mid_stream_answers_every_command_once_and_sends_nothing_twice(
    sending: Sending, tmp_path: Path
) -> None:
    environment = sender_environment(sending)
    await crash_and_restart(sending, environment, await gmail_mailbox(sending), tmp_path)


async def test_s7_an_outlook_sender_killed_mid_stream_answers_every_command_once_and_sends_nothing_twice(
    sending: Sending, graph: RunningGraph, tmp_path: Path
) -> None:
    environment = sender_environment(sending)
    await crash_and_restart(
        sending, environment, await outlook_mailbox(sending, environment, graph), tmp_path
    )


async def crash_and_restart(
    sending: Sending, environment: dict[str, str], mailbox: Mailbox, tmp_path: Path
) -> None:
    """Send through `mailbox`, SIGKILL the sender while a send is in flight, restart it, check the outcome."""
    log_path = tmp_path / "sender.log"
    with log_path.open("ab") as log:
        with sender_process(environment, log) as first:
            await sending.connect("conn_1", mailbox.address)
            request_ids = [f"req-crash-{n:02d}" for n in range(COMMANDS)]
            for request_id in request_ids:
                await sending.bus.send(send_email(request_id))

            records = sending.database["send_requests"]

            async def mid_send() -> bool:
                answered = len(sending.bus.results)
                return answered >= 10 and await records.count_documents({"state": "attempting"}) > 0

            await eventually(mid_send, 120, "ten answers and a send in flight")
            in_flight = [d["_id"] async for d in records.find({"state": "attempting"})]
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        answered_before_restart = len(sending.bus.results)
        assert answered_before_restart < COMMANDS

        await asyncio.sleep(0.5)  # let in-flight requests of the dead process finish at the sandbox
        with sender_process(environment, log):
            results = await sending.bus.wait_for(request_ids, within=180)

    assert Counter(r.status for r in results.values()) == {"sent": COMMANDS}
    for request_id, answers in sending.bus.results.items():
        assert {a.event_id for a in answers} == {results[request_id].event_id}, request_id
    sent = await mailbox.sent()
    assert len(sent) == COMMANDS
    assert len({message_id for _, message_id in sent}) == COMMANDS
    assert {provider_id for provider_id, _ in sent} == {r.provider_message_id for r in results.values()}
    assert in_flight
    for request_id in in_flight:
        assert results[request_id].status == "sent"
