"""Every service starts on the real broker and database, reports health and readiness, serves metrics, and
stops gracefully on SIGTERM."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from mailsync.devstack.ports import free_port
from mailsync.devstack.stack import Stack
from mailsync.router.app import create_app as create_router_app
from mailsync.router.settings import Settings as RouterSettings

pytestmark = [pytest.mark.kafka, pytest.mark.mongodb]

SERVICES = ["ingest_gmail", "ingest_outlook", "router", "sender"]


def service_env(kafka: str, mongodb: str, prefix: str, port: int) -> dict[str, str]:
    return {
        "MAILSYNC_KAFKA_BOOTSTRAP_SERVERS": kafka,
        "MAILSYNC_MONGODB_URI": mongodb,
        "MAILSYNC_KAFKA_TOPIC_PREFIX": prefix,
        "MAILSYNC_HTTP_PORT": str(port),
        "MAILSYNC_LOG_FORMAT": "json",
    }


@pytest.mark.parametrize("service", SERVICES)
async def test_service_is_ready_on_the_real_stack_and_serves_metrics(
    service: str, kafka_bootstrap_servers: str, mongodb_uri: str, unique_name: Callable[[str], str]
) -> None:
    settings_class: Any = importlib.import_module(f"mailsync.{service}.settings").Settings
    create_app = importlib.import_module(f"mailsync.{service}.app").create_app
    settings = settings_class(
        kafka_bootstrap_servers=kafka_bootstrap_servers,
        mongodb_uri=mongodb_uri,
        kafka_topic_prefix=unique_name("t") + ".",
        mongodb_database=unique_name("db"),
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        health = await client.get("/healthz")
        assert health.status == 200
        assert (await health.json())["service"] == service.replace("_", "-")

        ready = await client.get("/readyz")
        assert ready.status == 200, await ready.text()
        assert await ready.json() == {"status": "ready", "checks": {"kafka": True, "mongodb": True}}

        metrics = await client.get("/metrics")
        assert metrics.status == 200
        assert "mailsync_dead_lettered_total" in await metrics.text()


async def test_readiness_fails_when_the_database_goes_away(
    kafka_bootstrap_servers: str, unique_name: Callable[[str], str]
) -> None:
    """A service whose MongoDB stops answering reports not ready (503) and says which check failed."""
    with Stack() as own:
        own.start(["mongodb"])
        settings = RouterSettings(
            kafka_bootstrap_servers=kafka_bootstrap_servers,
            mongodb_uri=own.mongodb_uri,  # type: ignore[arg-type]  # pydantic wraps it in SecretStr
            kafka_topic_prefix=unique_name("t") + ".",
        )
        async with TestClient(TestServer(create_router_app(settings))) as client:
            assert (await client.get("/readyz")).status == 200
            own.stop()
            ready = await client.get("/readyz")
            assert ready.status == 503
            assert await ready.json() == {"status": "not_ready", "checks": {"kafka": True, "mongodb": False}}


@pytest.mark.parametrize("service", SERVICES)
async def test_service_process_stops_gracefully_on_sigterm(
    service: str, kafka_bootstrap_servers: str, mongodb_uri: str, unique_name: Callable[[str], str]
) -> None:
    port = free_port()
    env = {**os.environ, **service_env(kafka_bootstrap_servers, mongodb_uri, unique_name("t") + ".", port)}
    process = subprocess.Popen(  # noqa: ASYNC220, S603 - the service under test, waited for below
        [sys.executable, "-m", f"mailsync.{service}"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        started = time.monotonic()
        await wait_ready(f"http://127.0.0.1:{port}/readyz", process, within=60)
        startup = time.monotonic() - started
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(process.communicate, timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr[-3000:]
    messages = [json.loads(line)["message"] for line in stderr.splitlines() if line.startswith("{")]
    assert "service started" in messages
    assert "service stopped consuming" in messages
    assert startup < 60


async def wait_ready(url: str, process: subprocess.Popen[str], within: float) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"service exited with {process.returncode} before it was ready")
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.2)
    pytest.fail(f"{url} not ready within {within} s")
