"""D2: the service process killed (SIGKILL) in the middle of a batch and restarted loses nothing: the hint's
offset was not committed, so the restarted process receives it again and resumes from the stored cursor;
messages already published are skipped by the published set (at most the one in flight is repeated)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

import aiohttp
import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.mongodb]

ALICE = "alice@example.com"
CONTACT = "dora@contact.example"


def _spawn(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mailsync.ingest_gmail"],
        env={**os.environ, **env, "MAILSYNC_LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert process.poll() is None, "the service exited"
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.2)
    pytest.fail("service not ready")


async def test_d2_killed_mid_batch_and_restarted_nothing_is_lost(start_harness: Any) -> None:
    harness = await start_harness(in_process=False)
    first = _spawn(harness.env)
    second: subprocess.Popen[bytes] | None = None
    try:
        await _wait_ready(f"{harness.service_url}/readyz", first)
        await harness.connect("sub-1", "user-1", ALICE)
        await harness.admin.add_fault("slow", delay_seconds=0.3, path_pattern="/messages/")
        delivered = [
            await harness.admin.deliver_inbound(ALICE, sender=CONTACT, subject=f"m{i}", text=str(i))
            for i in range(10)
        ]
        await harness.tap.wait_until(lambda: len(harness.tap.messages()) >= 2)
        first.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.wait)
        published_before_kill = len(harness.tap.messages())
        assert published_before_kill < 10  # killed mid-batch
        await harness.admin.clear_faults()

        second = _spawn(harness.env)
        await _wait_ready(f"{harness.service_url}/readyz", second)
        expected = {d["id"] for d in delivered}
        await harness.tap.wait_until(
            lambda: {m.provider_message_id for m in harness.tap.messages()} >= expected, within=90
        )
        ids = [m.provider_message_id for m in harness.tap.messages()]
        assert set(ids) == expected
        assert len(ids) - len(expected) <= 1  # at most the message in flight at the kill is repeated
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                await asyncio.to_thread(process.wait)
