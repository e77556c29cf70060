"""Distributed tracing: one trace from a provider's notification to the stored message, across services.

Every hop of a message is on the W3C trace context (`traceparent`, `tracestate`):

- HTTP: `trace_requests` (installed on every service app) continues the caller's context from the request
  headers, or starts a trace, with one `SERVER` span per request. A Gmail push or a Graph notification
  therefore starts the trace of everything it causes. Health, readiness and metrics probes are not traced.
- Kafka: the broker runs FastStream's `KafkaTelemetryMiddleware`, which writes the context of the publishing
  span into each record's headers and continues it in the consumer's `process` span. A batch subscriber's
  span cannot have every record's trace as its parent: FastStream starts a new trace for the batch with a
  link to each record's span. An event published while handling a batch, with the Kafka key of exactly one
  record of the batch (a send result keyed by the request id of its command), continues that record's trace
  (`BatchRecordTraces`, `continuing`); other events stay in the batch's trace. A batch handler that wants
  any other work in a record's own trace runs it inside `record_span(headers, ...)`.
- Work that starts on its own, such as a pulled Pub/Sub notification, runs inside `root_span(...)`; an
  event published outside any span (a maintenance round's hint) starts its own trace at the publish.

Spans are exported only when the standard OpenTelemetry variables ask for it (`configure_tracing`); without
an SDK installed the API is a no-op that still carries an incoming context through to outgoing records, so a
service without an exporter never breaks a trace that passes through it.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from faststream import BaseMiddleware
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

if TYPE_CHECKING:
    from faststream.message import StreamMessage

logger = logging.getLogger(__name__)

INSTRUMENTATION: Final = "mailsync"
UNTRACED_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})

_TRUE: Final = frozenset({"true", "1", "yes"})


def tracer() -> trace.Tracer:
    """The project's tracer on the global provider (a no-op until a provider is installed)."""
    return trace.get_tracer(INSTRUMENTATION)


def configure_tracing(service_name: str) -> trace.TracerProvider | None:
    """Install `tracer_provider_from_env` as the global tracer provider when the environment asks for one."""
    provider = tracer_provider_from_env(service_name, os.environ)
    if provider is not None:
        trace.set_tracer_provider(provider)
        logger.info("tracing enabled")
    return provider


def tracer_provider_from_env(service_name: str, env: Mapping[str, str]) -> trace.TracerProvider | None:
    """An SDK tracer provider exporting over OTLP/HTTP when the `OTEL_*` variables ask for it, else None.

    Export is on when `OTEL_TRACES_EXPORTER` names `otlp` or `console`, or, with it unset, when an OTLP
    endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). The exporter
    reads its own variables (endpoint, headers, timeout, compression, certificate); the sampler reads
    `OTEL_TRACES_SAMPLER`; `service.name` is `mailsync-<service>` unless `OTEL_SERVICE_NAME` or
    `OTEL_RESOURCE_ATTRIBUTES` set it. `OTEL_SDK_DISABLED=true` turns everything off.
    """
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return None
    exporters = _exporters(env)
    if not exporters:
        return None

    from opentelemetry.sdk.resources import SERVICE_NAME, Resource  # noqa: PLC0415 - only when exporting
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    attributes = {} if "OTEL_SERVICE_NAME" in env else {SERVICE_NAME: f"mailsync-{service_name}"}
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in exporters:
        exporter: SpanExporter
        if name == "console":
            exporter = ConsoleSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )

            exporter = OTLPSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _exporters(env: Mapping[str, str]) -> set[str]:
    configured = env.get("OTEL_TRACES_EXPORTER")
    if configured is None:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return {"otlp"} if endpoint else set()
    names = {name.strip().lower() for name in configured.split(",") if name.strip()}
    unknown = names - {"otlp", "console", "none"}
    if unknown:
        logger.warning("unsupported trace exporters ignored", extra={"exporters": sorted(unknown)})
    return names & {"otlp", "console"}


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def trace_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp middleware: one `SERVER` span per request, continuing the caller's trace context."""
    if request.path in UNTRACED_PATHS:
        return await handler(request)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    with tracer().start_as_current_span(
        f"{request.method} {route}",
        context=propagate.extract(request.headers),
        kind=SpanKind.SERVER,
        attributes={"http.request.method": request.method, "http.route": route, "url.path": request.path},
    ) as span:
        try:
            response = await handler(request)
        except web.HTTPException as error:
            _record_status(span, error.status)
            raise
        _record_status(span, response.status)
        return response


def _record_status(span: Span, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))


@contextmanager
def root_span(name: str, **attributes: str | int) -> Iterator[Span]:
    """A span that starts a trace for work nothing upstream traced (a Pub/Sub pull, a scheduled round)."""
    with tracer().start_as_current_span(
        name, context=trace.set_span_in_context(trace.INVALID_SPAN), kind=SpanKind.CONSUMER
    ) as span:
        span.set_attributes(attributes)
        yield span


@contextmanager
def record_span(headers: Mapping[str, str], name: str, **attributes: str | int) -> Iterator[Span]:
    """Run one record of a consumed batch in the record's own trace, linked to the batch's span.

    `headers` are the record's (for a FastStream batch subscriber: `message.batch_headers[i]`). The span's
    parent is the span that published the record, so the record's work, and everything it publishes, stays
    in the trace of what caused it; the link leads from it to the batch it was consumed in.
    """
    batch = trace.get_current_span().get_span_context()
    links = [Link(batch)] if batch.is_valid else []
    with tracer().start_as_current_span(
        name, context=propagate.extract(headers), kind=SpanKind.CONSUMER, links=links
    ) as span:
        span.set_attributes(attributes)
        yield span


_BATCH_RECORDS: ContextVar[Mapping[bytes, Mapping[str, str]]] = ContextVar(
    "mailsync_batch_records",
    default={},  # noqa: B039 - never mutated
)


class BatchRecordTraces(BaseMiddleware):
    """While a batch is handled, remembers the headers of each record whose key is unique in the batch."""

    async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: StreamMessage[Any]) -> Any:
        records = msg.raw_message
        if not isinstance(records, tuple):
            return await call_next(msg)
        keys = Counter(record.key for record in records)
        unique = {
            record.key: headers
            for record, headers in zip(records, msg.batch_headers, strict=False)
            if record.key is not None and keys[record.key] == 1
        }
        token = _BATCH_RECORDS.set(unique)
        try:
            return await call_next(msg)
        finally:
            _BATCH_RECORDS.reset(token)


@contextmanager
def continuing(key: bytes, name: str) -> Iterator[None]:
    """Inside a batch, run the block in the trace of the batch's one record keyed `key` (if there is one)."""
    headers = _BATCH_RECORDS.get().get(key)
    if headers is None:
        yield
        return
    with record_span(headers, name):
        yield


def current_trace_ids() -> dict[str, str]:
    """`trace_id` and `span_id` of the current span in hex, for logs; empty when nothing is traced."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {
        "trace_id": trace.format_trace_id(context.trace_id),
        "span_id": trace.format_span_id(context.span_id),
    }
