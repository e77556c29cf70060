"""The console script runs the sandbox alone, names the hosts it is given in its certificate, and stops
cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from mailsync.graph_sandbox import cli

SCRIPT = Path(sys.executable).parent / "mailsync-graph-sandbox"


@contextlib.asynccontextmanager
async def running_cli(state_dir: Path, *options: str) -> AsyncIterator[str]:
    """The console script on free ports; yields its HTTPS origin, then stops it with SIGTERM (exit 0)."""
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "--port",
        "0",
        "--http-port",
        "0",
        "--state-dir",
        str(state_dir),
        *options,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    base_url = None
    try:
        async with asyncio.timeout(30):
            while base_url is None:
                line = (await process.stderr.readline()).decode()
                assert line, "the sandbox exited early"
                found = re.search(r"graph sandbox on (https://\S+)", line)
                base_url = found.group(1) if found else None
        yield base_url
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            assert await process.wait() == 0


async def test_cli_serves_https_with_its_ca_and_stops_on_sigterm(tmp_path: Path) -> None:
    async with running_cli(tmp_path) as base_url:
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{base_url}/_admin/info", ssl=context) as response,
        ):
            assert response.status == 200
            assert (await response.json())["ca_file"] == str(tmp_path / "ca.pem")


async def test_tls_hostname_names_the_sandbox_for_clients_verifying_that_name(tmp_path: Path) -> None:
    """A container calling ``https://graph-sandbox:8086`` checks the certificate against ``graph-sandbox``:
    the client here connects to loopback but verifies (and sends as SNI) each name in turn."""
    async with running_cli(
        tmp_path, "--tls-hostname", "graph-sandbox", "--tls-hostname", "10.20.30.40"
    ) as base_url:
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        async with aiohttp.ClientSession() as session:
            for name in ("graph-sandbox", "10.20.30.40", "localhost"):
                async with session.get(
                    f"{base_url}/_admin/info", ssl=context, server_hostname=name
                ) as response:
                    assert response.status == 200, name
            for name in ("ingest-outlook", "graph-sandbox.example", "10.20.30.41"):
                with pytest.raises(aiohttp.ClientConnectorCertificateError) as failure:
                    await session.get(f"{base_url}/_admin/info", ssl=context, server_hostname=name)
                assert isinstance(failure.value.certificate_error, ssl.SSLCertVerificationError), name
                assert "mismatch" in failure.value.certificate_error.verify_message, name


async def test_without_tls_hostname_the_certificate_names_only_loopback(tmp_path: Path) -> None:
    async with running_cli(tmp_path) as base_url:
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(f"{base_url}/_admin/info", ssl=context, server_hostname="graph-sandbox")


@pytest.mark.parametrize("name", ["", "graph sandbox", "grâph-sandbox", "-graph", "graph..sandbox"])
def test_tls_hostname_rejects_what_is_neither_a_dns_name_nor_an_ip_address(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([f"--tls-hostname={name}"])
    assert exited.value.code == 2
    assert "not a DNS name or IP address" in capsys.readouterr().err


async def test_a_default_aiohttp_session_trusts_the_sandbox_when_ssl_cert_file_names_its_ca(
    tmp_path: Path,
) -> None:
    """How the compose file's sender, which has no CA setting, trusts ``https://graph-sandbox:8086``:
    aiohttp's default context is ``ssl.create_default_context()``, whose bundle ``SSL_CERT_FILE`` replaces."""
    probe = (
        "import asyncio, sys, aiohttp\n"
        "async def main():\n"
        "    async with aiohttp.ClientSession() as session, session.get(\n"
        "        sys.argv[1], server_hostname='graph-sandbox'\n"
        "    ) as response:\n"
        "        print(response.status)\n"
        "asyncio.run(main())\n"
    )
    async with running_cli(tmp_path, "--tls-hostname", "graph-sandbox") as base_url:
        outcomes = []
        for environment in ({"SSL_CERT_FILE": str(tmp_path / "ca.pem")}, {}):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                probe,
                f"{base_url}/_admin/info",
                env={"PATH": os.environ.get("PATH", ""), **environment},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            async with asyncio.timeout(30):
                out, err = await process.communicate()
            outcomes.append((process.returncode, out.decode().strip(), err.decode()))
    assert outcomes[0][:2] == (0, "200"), outcomes[0][2]
    assert outcomes[1][0] != 0
    assert "CERTIFICATE_VERIFY_FAILED" in outcomes[1][2]
