"""Structured logs: JSON lines with context, and credentials never written."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from mailsync.common.logs import REDACTED, JsonFormatter, configure_logging, redact


def test_context_fields_become_json_members_and_secrets_are_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("router", "INFO", "json")
    logging.getLogger("mailsync.test").info(
        "token refreshed for %s",
        "ada@example.com",
        extra={
            "connection_id": "conn-1",
            "refresh_token": "1//0g-secret",
            "oauth": {"access_token": "ya29.secret", "expires_in": 3599},
            "Authorization": "Bearer ya29.secret",
        },
    )
    line = capsys.readouterr().err.strip().splitlines()[-1]
    document = json.loads(line)
    assert document["message"] == "token refreshed for ada@example.com"
    assert document["service"] == "router"
    assert document["level"] == "INFO"
    assert document["connection_id"] == "conn-1"
    assert document["refresh_token"] == REDACTED
    assert document["oauth"] == {"access_token": REDACTED, "expires_in": 3599}
    assert document["Authorization"] == REDACTED
    assert "secret" not in line


def test_exceptions_are_included() -> None:
    formatter = JsonFormatter("sender")
    try:
        int("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), exc_info=sys.exc_info())
    document = json.loads(formatter.format(record))
    assert "ValueError: invalid literal for int() with base 10: 'boom'" in document["exception"]


def test_redact_keeps_ordinary_fields() -> None:
    assert redact({"mailbox_id": "m", "client_secret": "s"}) == {"mailbox_id": "m", "client_secret": REDACTED}
