"""The standalone command: argument parsing and a real start on a free port."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from mailsync.gmail_sandbox.cli import parse_args
from mailsync.gmail_sandbox.clock import ManualClock
from mailsync.gmail_sandbox.mailbox import AccountKind


def test_parse_args() -> None:
    config = parse_args(
        [
            "--port",
            "9999",
            "--mailbox",
            "a@x.example",
            "--mailbox",
            "b@y.example:workspace",
            "--manual-clock",
            "--pubsub-emulator-host",
            "127.0.0.1:8681",
            "--client",
            "id:secret",
        ]
    )
    assert config.port == 9999
    assert [(m.address, m.kind) for m in config.mailboxes] == [
        ("a@x.example", AccountKind.CONSUMER),
        ("b@y.example", AccountKind.WORKSPACE),
    ]
    assert isinstance(config.clock, ManualClock)
    assert config.pubsub_emulator_host == "127.0.0.1:8681"
    assert config.oauth_clients[-1].client_id == "id"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_runs_standalone() -> None:
    port = _free_port()
    script = Path(sys.executable).with_name("mailsync-gmail-sandbox")
    env = {k: v for k, v in os.environ.items() if k != "PUBSUB_EMULATOR_HOST"}
    process = await asyncio.create_subprocess_exec(
        str(script),
        "--port",
        str(port),
        "--mailbox",
        "alice@example.com",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/_admin/mailboxes") as response:
                        body = await response.json()
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("the sandbox did not start")
        assert [m["address"] for m in body["mailboxes"]] == ["alice@example.com"]
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 10)
