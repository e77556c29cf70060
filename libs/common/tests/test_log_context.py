"""Log lines carry the context of their unit of work and their trace, and credentials never reach them."""

from __future__ import annotations

import asyncio
import json
import logging
import sys

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from mailsync.common.logs import REDACTED, JsonFormatter, log_context, scrub

FORMATTER = JsonFormatter("ingest-gmail")


def line(message: str, **extra: object) -> dict[str, object]:
    record = logging.LogRecord("mailsync.test", logging.INFO, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    document: dict[str, object] = json.loads(FORMATTER.format(record))
    return document


def test_bound_context_joins_every_line_of_the_block_and_ends_with_it() -> None:
    with log_context(mailbox_id="gmail:ada@example.com"):
        with log_context(connection_id="conn-1"):
            inner = line("message ingested", provider_message_id="m-1")
        outer = line("synced")
    after = line("idle")
    assert inner["mailbox_id"] == "gmail:ada@example.com"
    assert inner["connection_id"] == "conn-1"
    assert inner["provider_message_id"] == "m-1"
    assert outer["mailbox_id"] == "gmail:ada@example.com"
    assert "connection_id" not in outer
    assert "mailbox_id" not in after


async def test_context_is_per_task() -> None:
    async def work(mailbox: str) -> dict[str, object]:
        with log_context(mailbox_id=mailbox):
            await asyncio.sleep(0.01)
            return line("done")

    first, second = await asyncio.gather(work("a"), work("b"))
    assert (first["mailbox_id"], second["mailbox_id"]) == ("a", "b")


def test_a_line_inside_a_span_names_its_trace() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("sync") as span:
        document = line("message ingested")
    context = span.get_span_context()
    assert document["trace_id"] == trace.format_trace_id(context.trace_id)
    assert document["span_id"] == trace.format_span_id(context.span_id)
    assert "trace_id" not in line("outside")


def test_credentials_in_context_message_or_exception_text_are_masked() -> None:
    with log_context(access_token="ya29.context-secret"):
        document = line("refresh failed: POST /token?refresh_token=1//0g-secret&client_id=x")
    assert document["access_token"] == REDACTED
    assert "secret" not in json.dumps(document)
    assert "client_id=x" in str(document["message"])
    try:
        fail('Gmail answered {"access_token": "ya29.exc-secret"} with Bearer ya29.hdr-secret')
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    formatted = FORMATTER.format(record)
    assert "secret" not in formatted
    assert "RuntimeError" in formatted


def fail(message: str) -> None:
    raise RuntimeError(message)


def test_scrub_leaves_ordinary_text_alone() -> None:
    text = "error code: 500 after 3 attempts; decoded code path; token bucket empty"
    assert scrub(text) == text
    assert scrub("Authorization: Bearer abc.def") == f"Authorization: Bearer {REDACTED}"
    assert scrub("code=4/0AX&state=s") == f"code={REDACTED}&state=s"
