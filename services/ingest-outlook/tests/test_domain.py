"""The pure rules of ingest-outlook: scopes (C2), sign-in decisions (C1, C4, C6), C7 cutoff, threading
headers, O3 policy, notification decoding and renewal timing."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailsync.ingest_outlook import domain
from mailsync.ingest_outlook.domain.connections import (
    Connection,
    SignIn,
    change_after_sign_in,
    is_invalid_grant,
    mailbox_id_for,
    missing_scopes,
)
from mailsync.ingest_outlook.domain.messages import (
    AttachmentPolicy,
    body_parts,
    should_ingest,
    threading_headers,
)
from mailsync.ingest_outlook.domain.notifications import MalformedNotificationError, decode_notifications
from mailsync.ingest_outlook.domain.subscriptions import RenewalPolicy, resource_for
from mailsync.ingest_outlook.domain.watchdog import WatchdogPolicy

NOW = datetime(2026, 11, 28, 12, 0, 0, 500_000, tzinfo=UTC)


def _connection(status: str = "active", mailbox: str = "u1") -> Connection:
    return Connection(
        connection_id="oconn_1",
        subaccount_id="sub",
        user_id="usr",
        mailbox_id=mailbox_id_for(mailbox),
        graph_user_id=mailbox,
        email_address="a@x.example",
        status=status,  # type: ignore[arg-type]
        connected_at=NOW,
    )


def test_c2_missing_scopes_are_named_and_broader_uris_count() -> None:
    assert missing_scopes(["https://graph.microsoft.com/Mail.ReadWrite", "mail.send", "User.Read"]) == []
    assert missing_scopes(["Mail.Read", "User.Read", "offline_access"]) == ["Mail.ReadWrite", "Mail.Send"]


@pytest.mark.parametrize(
    ("existing", "signed_in", "expected"),
    [
        (None, "u1", "connected"),
        (_connection("disconnected"), "u1", "connected"),
        (_connection("active"), "u2", "mailbox_replaced"),
        (_connection("needs_reauth"), "u1", "reauthenticated"),
        (_connection("needs_reauth"), "u2", "mailbox_replaced"),
    ],
)
def test_c1_c4_c6_change_after_sign_in(existing: Connection | None, signed_in: str, expected: str) -> None:
    sign_in = SignIn(graph_user_id=signed_in, email_address="a@x.example")
    assert change_after_sign_in(existing, sign_in, "connect") == expected


def test_c6_invalid_grant_is_told_from_outages() -> None:
    assert is_invalid_grant({"error": "invalid_grant", "error_codes": [50173]})
    assert not is_invalid_grant({"error": "temporarily_unavailable"})


def test_c7_only_messages_from_the_connection_second_on_sync() -> None:
    base = {"id": "m", "from": {"emailAddress": {"address": "c@x.example"}}}
    assert should_ingest({**base, "receivedDateTime": "2026-11-28T12:00:00Z"}, NOW)
    assert not should_ingest({**base, "receivedDateTime": "2026-11-28T11:59:59Z"}, NOW)
    assert not should_ingest({**base, "receivedDateTime": "2026-11-28T12:00:01Z", "isDraft": True}, NOW)
    assert not should_ingest({"id": "m", "@removed": {"reason": "deleted"}}, NOW)


def test_threading_headers_come_from_internet_message_headers() -> None:
    in_reply_to, references, kept = threading_headers(
        [
            {"name": "In-Reply-To", "value": "<b@x>"},
            {"name": "References", "value": "<a@x> <b@x>"},
            {"name": "Thread-Index", "value": "AQHZ"},
            {"name": "Received", "value": "ignored"},
        ]
    )
    assert (in_reply_to, references, kept) == ("<b@x>", ("<a@x>", "<b@x>"), {"thread-index": "AQHZ"})


def test_o3_attachment_policy_defaults_to_the_reference() -> None:
    policy = AttachmentPolicy(3 * 1024 * 1024, frozenset({"pdf", "png"}))
    assert policy.allows("Quote.PDF", 1000)
    assert not policy.allows("tool.exe", 10)
    assert not policy.allows("big.pdf", 3 * 1024 * 1024 + 1)
    assert AttachmentPolicy(10, frozenset()).allows("any.bin", 10)


def test_body_parts_follow_the_content_type() -> None:
    assert body_parts({"body": {"contentType": "html", "content": "<p>x</p>"}}) == (None, "<p>x</p>")
    assert body_parts({"body": {"contentType": "text", "content": "x"}}) == ("x", None)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{", "body_not_json"),
        (b"[]", "missing_value"),
        (b'{"value": []}', "empty_value"),
        (b'{"value": [1]}', "item_not_object"),
        (b'{"value": [{"clientState": "x"}]}', "missing_subscription_id"),
    ],
)
def test_malformed_notifications_are_named(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedNotificationError) as raised:
        decode_notifications(body)
    assert raised.value.reason == reason


def test_lifecycle_notifications_decode() -> None:
    [item] = decode_notifications(
        b'{"value": [{"subscriptionId": "s", "clientState": "c", "lifecycleEvent": "missed"}]}'
    )
    assert (item.subscription_id, item.client_state, item.lifecycle_event) == ("s", "c", "missed")


def test_renewals_are_spread_before_expiry() -> None:
    policy = RenewalPolicy(timedelta(minutes=10_070), timedelta(hours=24), timedelta(hours=6))
    expires = policy.expiry(NOW)
    assert expires - NOW < timedelta(minutes=10_080)
    assert policy.renew_at(expires, 0.0) == expires - timedelta(hours=24)
    assert policy.renew_at(expires, 0.5) == expires - timedelta(hours=27)
    assert resource_for("u1", "Inbox") == "users/u1/mailFolders('Inbox')/messages"


def test_domain_layer_does_no_io() -> None:
    """The domain stays pure: no broker, database, HTTP or identity client is imported there."""
    forbidden = ("aiohttp", "aiokafka", "faststream", "pymongo", "gridfs", "msal", "requests", "asyncio")
    for path in Path(domain.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert not name.startswith(forbidden), f"{path.name} imports {name}"
                assert not name.startswith("mailsync.ingest_outlook.adapters"), f"{path.name} imports {name}"


def test_watchdog_is_due_after_the_silence_plus_a_share_of_the_spread() -> None:
    policy = WatchdogPolicy(silence=timedelta(hours=1), spread=timedelta(minutes=10))
    assert policy.due_at(NOW, 0.0) == NOW + timedelta(hours=1)
    assert policy.due_at(NOW, 0.5) == NOW + timedelta(hours=1, minutes=5)
    assert policy.due_at(NOW, 0.999) < NOW + timedelta(hours=1, minutes=10)
