"""Structured logging: one JSON object per line, with context fields and no secrets.

Services log through the standard `logging` module and pass context as `extra={...}` (connection, mailbox,
message and request ids). Context that holds for a whole unit of work (the mailbox being synced, the message
being handled) is bound once with `log_context(...)` and joins every line logged inside it, including the
lines of the shared delivery and broker code. `configure_logging` installs a formatter that emits every such
field as a JSON member, with the current `trace_id`/`span_id` so a line leads to its trace.

No secret is written: any field whose name suggests a credential (token, secret, password, authorization,
cookie, code verifier) is replaced by `"[redacted]"` whatever its value, and bearer tokens and credential
query parameters are masked in the message and exception text too, so a careless `extra` or an error that
quotes a request cannot leak an OAuth token.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final, Literal

from mailsync.common.telemetry import current_trace_ids

REDACTED: Final = "[redacted]"

_SECRET_FIELD = re.compile(
    r"token|secret|password|passwd|authorization|cookie|verifier|credential", re.IGNORECASE
)
# Attributes every LogRecord has; anything else on a record came from `extra=` and is context.
_STANDARD_ATTRIBUTES: Final = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None)).keys() | {"message", "asctime", "taskName"}
)
_SECRET_TEXT = re.compile(
    r"(?P<prefix>\bBearer\s+|\b(?:access_token|refresh_token|id_token|client_secret|code|code_verifier"
    r"|password)=|[\"'](?:access_token|refresh_token|id_token|client_secret|password)[\"']\s*:\s*[\"'])"
    r"(?P<secret>[^\s&\"',;]+)",
    re.IGNORECASE,
)
_CONTEXT: ContextVar[dict[str, Any]] = ContextVar("mailsync_log_context", default={})  # noqa: B039 - never mutated


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add `fields` to every line logged inside the block (in this task and the tasks it starts)."""
    token = _CONTEXT.set({**_CONTEXT.get(), **fields})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def scrub(text: str) -> str:
    """`text` with bearer tokens and credential parameters (`access_token=...`, JSON members) masked."""
    return _SECRET_TEXT.sub(lambda m: m.group("prefix") + REDACTED, text)


def redact(fields: dict[str, Any]) -> dict[str, Any]:
    """A copy of `fields` with credential-like keys (at any depth of nested dicts) masked."""
    cleaned: dict[str, Any] = {}
    for key, value in fields.items():
        if _SECRET_FIELD.search(key):
            cleaned[key] = REDACTED
        elif isinstance(value, dict):
            cleaned[key] = redact(value)
        else:
            cleaned[key] = value
    return cleaned


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: time, level, logger, message, service, context, exception."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
            "service": self._service,
            **current_trace_ids(),
        }
        context = {
            **_CONTEXT.get(),
            **{k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRIBUTES},
        }
        document.update(redact(context))
        if record.exc_info:
            document["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(document, default=str, ensure_ascii=False)


def configure_logging(service: str, level: str = "INFO", fmt: Literal["json", "text"] = "json") -> None:
    """Route the root logger to stderr in the chosen format. Idempotent: replaces earlier handlers."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka logs every rebalance and reconnect at INFO; keep the service's own lines readable.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
