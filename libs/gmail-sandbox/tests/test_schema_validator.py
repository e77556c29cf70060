"""The discovery-schema validator used by the fidelity tests must itself reject what Gmail never sends."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.parametrize(
    ("value", "schema", "problem"),
    [
        ({"id": "1", "threadId": "1", "color": "red"}, "Message", "unknown field 'color'"),
        ({"historyId": 5}, "Profile", "expected string"),
        ({"historyId": "abc"}, "Profile", "uint64 string expected"),
        ({"sizeEstimate": "5"}, "Message", "expected integer"),
        ({"payload": {"body": {"data": "not base64!"}}}, "Message", "not base64"),
        ({"labelIds": "INBOX"}, "Message", "expected array"),
        ({"labelFilterBehavior": "sometimes"}, "WatchRequest", "not in"),
    ],
)
def test_validator_rejects(gmail_schema: Any, value: dict[str, Any], schema: str, problem: str) -> None:
    with pytest.raises(AssertionError, match=problem):
        gmail_schema.validate(value, schema)


def test_validator_accepts_a_realistic_message(gmail_schema: Any) -> None:
    gmail_schema.validate(
        {
            "id": "18c2f0a1b2c3d4e5",
            "threadId": "18c2f0a1b2c3d4e5",
            "labelIds": ["INBOX"],
            "historyId": "12345",
            "internalDate": "1700000000000",
            "sizeEstimate": 42,
            "payload": {
                "partId": "",
                "mimeType": "text/plain",
                "headers": [{"name": "To", "value": "a@b"}],
                "body": {"size": 2, "data": "aGk="},
            },
        },
        "Message",
    )
