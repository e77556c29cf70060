"""The runtime shell every service shares: clients, HTTP health/readiness/metrics, start-up and shutdown.

A service's `create_app(settings)` calls `create_runtime(settings)` for its clients, registers its subscribers
on `runtime.broker` and its routes, then returns `create_service_app(runtime, ...)`. That application:

- serves `GET /healthz` (liveness: the event loop answers), `GET /readyz` (readiness: Kafka and MongoDB answer
  within two seconds; 503 with the failing checks otherwise) and `GET /metrics` (Prometheus text format;
  gauges read at scrape time, such as consumer lag and the service's `runtime.scrape_hooks`, are refreshed
  first);
- traces every other request (`mailsync.common.telemetry.trace_requests`), so a provider's webhook starts the
  trace that follows its effects through Kafka;
- on start-up, runs the service's own setup contexts (indexes, background tasks) and only then starts the
  broker, so no message is consumed before the service can handle it;
- on shutdown (SIGTERM or SIGINT through `run_service`), stops the broker first, which waits up to
  `shutdown_timeout_seconds` for in-flight handlers to finish and commit, then tears the setup contexts down
  in
  reverse order and closes MongoDB last. Work interrupted harder than that is redelivered (at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from pymongo import AsyncMongoClient

from mailsync.common.kafka import EventPublisher, create_broker, refresh_consumer_lag
from mailsync.common.logs import configure_logging
from mailsync.common.metrics import CommonMetrics
from mailsync.common.mongo import Document, create_mongo_client
from mailsync.common.settings import ServiceSettings
from mailsync.common.telemetry import configure_tracing, trace_requests
from mailsync.common.topics_admin import contract_topic_names, ensure_topics

logger = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[bool]]
SetupContext = Callable[[web.Application], AsyncIterator[None]]
ScrapeHook = Callable[[], Awaitable[None]]
"""Refreshes gauges that are read from elsewhere (a database, a client) just before `/metrics` answers."""

_READINESS_TIMEOUT = 2.0
_SCRAPE_TIMEOUT = 2.0


@dataclass(frozen=True)
class ServiceRuntime:
    """The clients a service composes; created unconnected, connected by the application's start-up."""

    settings: ServiceSettings
    registry: CollectorRegistry
    metrics: CommonMetrics
    broker: KafkaBroker
    publisher: EventPublisher
    mongo: AsyncMongoClient[Document]
    scrape_hooks: list[ScrapeHook] = field(default_factory=list)

    @property
    def database_name(self) -> str:
        return self.settings.mongodb_database


RUNTIME = web.AppKey("runtime", ServiceRuntime)


def create_runtime(settings: ServiceSettings) -> ServiceRuntime:
    """Build the registry, metrics, broker, publisher and MongoDB client for one service instance."""
    registry = CollectorRegistry()
    metrics = CommonMetrics.register(registry)
    broker = create_broker(settings, registry=registry, metrics=metrics)
    return ServiceRuntime(
        settings=settings,
        registry=registry,
        metrics=metrics,
        broker=broker,
        publisher=EventPublisher(broker, settings),
        mongo=create_mongo_client(settings),
    )


def create_service_app(
    runtime: ServiceRuntime,
    *,
    setup: Sequence[SetupContext] = (),
    readiness: dict[str, ReadinessCheck] | None = None,
) -> web.Application:
    """An aiohttp application with the shared endpoints and lifecycle; add service routes to it."""
    app = web.Application(middlewares=[trace_requests])
    app[RUNTIME] = runtime
    checks: dict[str, ReadinessCheck] = {
        "kafka": lambda: runtime.broker.ping(timeout=_READINESS_TIMEOUT),
        "mongodb": lambda: _ping_mongo(runtime.mongo),
        **(readiness or {}),
    }

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "service": runtime.settings.service_name})

    async def readyz(_: web.Request) -> web.Response:
        results = dict(
            zip(checks, await asyncio.gather(*(_run_check(c) for c in checks.values())), strict=True)
        )
        ready = all(results.values())
        return web.json_response(
            {"status": "ready" if ready else "not_ready", "checks": results},
            status=200 if ready else 503,
        )

    async def metrics(_: web.Request) -> web.Response:
        hooks = [
            lambda: refresh_consumer_lag(runtime.broker, runtime.metrics, runtime.settings.service_name),
            *runtime.scrape_hooks,
        ]
        await asyncio.gather(*(_run_scrape_hook(hook) for hook in hooks))
        response = web.Response(body=generate_latest(runtime.registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)

    async def mongo_context(_: web.Application) -> AsyncIterator[None]:
        yield
        await runtime.mongo.close()

    async def broker_context(_: web.Application) -> AsyncIterator[None]:
        settings = runtime.settings
        if settings.kafka_ensure_topics:
            await ensure_topics(
                settings.kafka_bootstrap_servers,
                contract_topic_names(settings.kafka_topic_prefix),
                partitions=settings.kafka_topic_partitions,
                replication=1,
            )
        await runtime.broker.start()
        logger.info("service started", extra={"service": runtime.settings.service_name})
        yield
        await runtime.broker.stop()
        logger.info("service stopped consuming", extra={"service": runtime.settings.service_name})

    app.cleanup_ctx.extend([mongo_context, *setup, broker_context])
    return app


async def _ping_mongo(client: AsyncMongoClient[Document]) -> bool:
    await client.admin.command("ping")
    return True


async def _run_scrape_hook(hook: ScrapeHook) -> None:
    try:
        await asyncio.wait_for(hook(), timeout=_SCRAPE_TIMEOUT)
    except Exception:
        logger.warning("a metric could not be refreshed; serving its last value", exc_info=True)


def throttled(hook: ScrapeHook, min_interval_seconds: float) -> ScrapeHook:
    """`hook`, run at most once per `min_interval_seconds` (for refreshes that cost a database query)."""
    last_run = -float("inf")

    async def run() -> None:
        nonlocal last_run
        now = time.monotonic()
        if now - last_run < min_interval_seconds:
            return
        last_run = now
        await hook()

    return run


def background_task(run: Callable[[], Coroutine[Any, Any, None]]) -> SetupContext:
    """A setup context running `run()` as a task while the service runs, cancelled on shutdown."""

    async def context(_: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


CONNECTIONS_GAUGE_SECONDS = 60.0
"""How stale `mailsync_connections` may be: counting connections by state is a database query."""


def connections_gauge(
    count_by_status: Callable[[], Awaitable[Mapping[str, int]]], gauge: Gauge, service: str
) -> ScrapeHook:
    """A scrape hook setting `gauge` (`mailsync_connections`) to the connections per state, at most once a
    minute."""

    async def count() -> None:
        for state, number in (await count_by_status()).items():
            gauge.labels(service, state).set(number)

    return throttled(count, CONNECTIONS_GAUGE_SECONDS)


async def _run_check(check: ReadinessCheck) -> bool:
    try:
        return await asyncio.wait_for(check(), timeout=_READINESS_TIMEOUT)
    except Exception:
        logger.warning("readiness check failed", exc_info=True)
        return False


def run_service(create_app: Callable[[Any], web.Application], settings: ServiceSettings) -> None:
    """Configure logs and serve the app until SIGINT/SIGTERM, then shut down gracefully."""
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    configure_tracing(settings.service_name)
    web.run_app(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        shutdown_timeout=settings.shutdown_timeout_seconds,
        access_log=None,
        print=logger.info,
    )
