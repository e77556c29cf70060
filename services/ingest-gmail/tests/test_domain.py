"""The pure rules: scopes (C2), grant outcomes (C4, C6, C7), renewal spread, notifications, MIME parsing;
the token cipher's key rotation; and the layering (the domain imports no I/O)."""

from __future__ import annotations

import ast
import base64
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailsync.common.token_cipher import TokenCipher, TokenKeyError
from mailsync.ingest_gmail.domain.connections import (
    SCOPE_FULL,
    SCOPE_MODIFY,
    SCOPE_READONLY,
    SCOPE_SEND,
    Connection,
    grant_outcome,
    mailbox_id_for,
    missing_scopes,
    next_watch_renewal,
)
from mailsync.ingest_gmail.domain.messages import (
    direction_of,
    is_before_cutoff,
    is_draft,
    parse_message,
)
from mailsync.ingest_gmail.domain.notifications import (
    MalformedNotificationError,
    check_claims,
    decode_data,
    decode_push_envelope,
)
from mailsync.ingest_gmail.domain.quota import UnitBucket

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _connection(status: str = "active", mailbox: str = "alice@example.com") -> Connection:
    return Connection(
        connection_id="c1",
        subaccount_id="s1",
        user_id="u1",
        mailbox_id=mailbox_id_for(mailbox),
        email_address=mailbox,
        status=status,  # type: ignore[arg-type]  # the literal is checked by the stores, not here
        connected_at=NOW,
        daily_send_limit=500,
    )


def test_mailbox_id_is_the_lower_cased_address() -> None:
    assert mailbox_id_for(" Alice@Example.COM ") == "gmail:alice@example.com"


def test_c2_required_scopes_and_broader_scopes_that_satisfy_them() -> None:
    assert missing_scopes({SCOPE_READONLY, SCOPE_SEND}) == ()
    assert missing_scopes({SCOPE_READONLY}) == (SCOPE_SEND,)
    assert missing_scopes({SCOPE_SEND}) == (SCOPE_READONLY,)
    assert missing_scopes({SCOPE_MODIFY}) == ()
    assert missing_scopes({SCOPE_FULL}) == ()
    assert missing_scopes(set()) == (SCOPE_READONLY, SCOPE_SEND)


def test_c4_c6_c7_grant_outcomes() -> None:
    assert grant_outcome(None, "gmail:alice@example.com").change == "connected"
    assert grant_outcome(_connection("disconnected"), "gmail:alice@example.com").reset_connected_at
    reauth = grant_outcome(_connection("needs_reauth"), "gmail:alice@example.com")
    assert (reauth.change, reauth.reset_connected_at) == ("reauthenticated", False)
    replaced = grant_outcome(_connection(), "gmail:bob@example.com")
    assert replaced.change == "mailbox_replaced"
    assert replaced.reset_connected_at
    assert replaced.previous_mailbox_id == "gmail:alice@example.com"


def test_watch_renewals_are_daily_and_spread_per_mailbox() -> None:
    day, spread = timedelta(days=1), timedelta(hours=4)
    times = [next_watch_renewal(f"gmail:user{i}@example.com", NOW, day, spread) for i in range(1000)]
    assert all(NOW + day - spread <= t <= NOW + day for t in times)
    minutes = {int((t - NOW).total_seconds() // 60) for t in times}
    assert len(minutes) > 200  # a thousand mailboxes connected together renew over hours, not in one minute
    assert next_watch_renewal("gmail:a@x", NOW, day, spread) == next_watch_renewal(
        "gmail:a@x", NOW, day, spread
    )


def test_notifications_accept_numeric_and_string_history_ids() -> None:
    assert decode_data(b'{"emailAddress": "a@x.example", "historyId": 17}').history_id == 17
    assert decode_data(b'{"emailAddress": "a@x.example", "historyId": "18"}').history_id == 18
    data = base64.urlsafe_b64encode(b'{"emailAddress": "a@x.example", "historyId": 19}').decode().rstrip("=")
    assert decode_push_envelope(f'{{"message": {{"data": "{data}"}}}}'.encode()).history_id == 19
    for bad in (
        b"[]",
        b'{"emailAddress": "a@x.example"}',
        b'{"historyId": 1}',
        b'{"emailAddress": "a@x", "historyId": true}',
    ):
        with pytest.raises(MalformedNotificationError):
            decode_data(bad)


def test_push_claims_need_google_issuer_and_the_push_account() -> None:
    claims = {"iss": "https://accounts.google.com", "email": "push@p.iam", "email_verified": True}
    assert check_claims(claims, service_account="push@p.iam") is None
    assert check_claims({**claims, "iss": "https://evil"}, service_account=None) == "wrong_issuer"
    assert (
        check_claims({**claims, "email_verified": False}, service_account="push@p.iam")
        == "wrong_service_account"
    )


def test_mime_parsing_of_headers_bodies_and_attachments() -> None:
    message = EmailMessage()
    message["From"] = '"Dora Q." <dora@contact.example>'
    message["To"] = "alice@example.com, undisclosed-recipients:;"
    message["Cc"] = "=?utf-8?q?J=C3=BCrgen?= <jurgen@example.de>"
    message["Subject"] = "=?utf-8?q?R=C3=A9sum=C3=A9?="
    message["Message-ID"] = "<m2@contact.example>"
    message["In-Reply-To"] = "<m1@example.com>"
    message["References"] = "<m0@example.com> <m1@example.com>"
    message["Date"] = "Mon, 05 Jan 2026 13:00:00 +0100"
    message["Auto-Submitted"] = "auto-replied"
    message.set_content("plain body")
    message.add_alternative("<p>html body</p>", subtype="html")
    message.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="cv.pdf")
    parsed = parse_message(message.as_bytes())
    assert parsed.from_ is not None
    assert (parsed.from_.email, parsed.from_.name) == ("dora@contact.example", "Dora Q.")
    assert [a.email for a in parsed.to] == ["alice@example.com"]
    assert [(a.email, a.name) for a in parsed.cc] == [("jurgen@example.de", "Jürgen")]
    assert parsed.subject == "Résumé"
    assert (parsed.message_id, parsed.in_reply_to) == ("<m2@contact.example>", "<m1@example.com>")
    assert parsed.references == ("<m0@example.com>", "<m1@example.com>")
    assert parsed.date == datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert parsed.text is not None
    assert parsed.text.strip() == "plain body"
    assert parsed.html is not None
    assert "html body" in parsed.html
    assert [(a.filename, a.content_type, a.content) for a in parsed.attachments] == [
        ("cv.pdf", "application/pdf", b"%PDF-1.4")
    ]
    assert parsed.headers["auto-submitted"] == "auto-replied"


def test_malformed_mime_never_raises() -> None:
    parsed = parse_message(b"From: nobody\r\nSubject: =?bogus?x?y?=\r\nDate: yesterday\r\n\r\n\xff\xfe")
    assert parsed.from_ is None
    assert parsed.date is None


def test_g2_direction_and_c7_cutoff_and_drafts() -> None:
    assert direction_of(("SENT",), None, "alice@example.com") == ("outbound", True)
    assert direction_of(("INBOX",), None, "alice@example.com") == ("inbound", False)
    assert is_draft(("DRAFT",))
    assert not is_draft(("DRAFT", "SENT"))
    cutoff_ms = int(NOW.timestamp() * 1000)
    assert is_before_cutoff(cutoff_ms - 1, NOW)
    assert not is_before_cutoff(cutoff_ms, NOW)


def test_token_cipher_rotates_keys_and_binds_ciphertexts_to_their_connection() -> None:
    old, new = b"o" * 32, b"n" * 32
    sealed = TokenCipher({"k1": old}, "k1").encrypt("refresh-token", bound_to="c1")
    assert b"refresh-token" not in sealed["ct"]
    rotated = TokenCipher({"k1": old, "k2": new}, "k2")
    assert rotated.decrypt(sealed, bound_to="c1") == "refresh-token"
    assert rotated.encrypt("x", bound_to="c1")["kid"] == "k2"
    with pytest.raises(TokenKeyError):
        rotated.decrypt(sealed, bound_to="c2")
    with pytest.raises(TokenKeyError):
        TokenCipher({"k2": new}, "k2").decrypt(sealed, bound_to="c1")
    with pytest.raises(TokenKeyError):
        TokenCipher({}, None).encrypt("x", bound_to="c1")


def test_domain_layer_imports_no_io() -> None:
    domain = Path(__file__).parents[1] / "src" / "mailsync" / "ingest_gmail" / "domain"
    forbidden = (
        "aiohttp",
        "pymongo",
        "gridfs",
        "faststream",
        "aiokafka",
        "google",
        "cryptography",
        "asyncio",
    )
    for path in domain.glob("*.py"):
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
                assert not name.startswith("mailsync.ingest_gmail.adapters"), f"{path.name} imports {name}"


def test_quota_budget_never_exceeds_the_per_user_quota_in_any_minute() -> None:
    bucket = UnitBucket.for_quota(15_000, 0.95, now=0.0)
    clock, spent = 0.0, []  # (time, units) of each call as the pacer lets it through
    for _ in range(12_000):
        clock += bucket.reserve(5, clock)  # a sync issuing messages.get back to back
        spent.append((clock, 5))
    assert clock > 200  # 60,000 units take over four minutes
    start = 0
    window_units = 0
    for end, (at, units) in enumerate(spent):
        window_units += units
        while spent[start][0] <= at - 60:
            window_units -= spent[start][1]
            start += 1
        assert window_units <= 15_000, end
    rate = sum(u for _, u in spent) / clock
    assert rate >= 0.9 * 250  # at least 90% of the quota's 250 units/s
