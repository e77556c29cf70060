"""The console script runs the sandbox alone and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import re
import signal
import ssl
import sys
from pathlib import Path

import aiohttp


async def test_cli_serves_https_with_its_ca_and_stops_on_sigterm(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "mailsync-graph-sandbox"
    process = await asyncio.create_subprocess_exec(
        str(script),
        "--port",
        "0",
        "--http-port",
        "0",
        "--state-dir",
        str(tmp_path),
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    base_url = None
    async with asyncio.timeout(30):
        while base_url is None:
            line = (await process.stderr.readline()).decode()
            assert line, "the sandbox exited early"
            found = re.search(r"graph sandbox on (https://\S+)", line)
            base_url = found.group(1) if found else None
    try:
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{base_url}/_admin/info", ssl=context) as response,
        ):
            assert response.status == 200
            assert (await response.json())["ca_file"] == str(tmp_path / "ca.pem")
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            assert await process.wait() == 0
