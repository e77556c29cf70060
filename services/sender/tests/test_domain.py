"""The sender's pure rules, one row per SPEC rule id: routing (S1, S2, C4, C5, C6), validation, size policies
(S4), threading headers and subject (S6), Message-IDs (S7) and the quota day (S3)."""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from typing import Any

import pytest

from mailsync.common.contracts import (
    Address,
    AttachmentMeta,
    BlobRef,
    ConnectionStatus,
    MessageBody,
    ReplyContext,
    SendEmail,
    SendFailureReason,
    SendKind,
)
from mailsync.sender.domain import (
    GMAIL_POLICY,
    InvalidCommand,
    MailboxConnection,
    MessageContent,
    Refusal,
    ThroughMailbox,
    ThroughSubaccountProvider,
    build_message,
    choose_route,
    encode,
    invalid_command_result,
    message_id_for,
    parse_command,
    quota_day,
    references_for,
    reply_subject,
    validate_command,
)

GRACE = Address(email="grace@navy.example", name="Grace Hopper")
MB = 1024 * 1024


def command(kind: SendKind = "individual", **overrides: Any) -> SendEmail:
    fields: dict[str, object] = {
        "request_id": "req-1",
        "kind": kind,
        "subaccount_id": "loc_acme",
        "user_id": "usr_ada",
        "to": (GRACE,),
        "subject": "Your quote",
        "body": MessageBody(text="Hello"),
        "requested_at": datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        **overrides,
    }
    return SendEmail.model_validate(fields)


def connection(status: ConnectionStatus = "active", address: str = "ada@acme.example") -> MailboxConnection:
    return MailboxConnection("conn_ada", "loc_acme", "usr_ada", "gmail", f"mbx_{address}", address, status)


@pytest.mark.parametrize(
    ("kind", "state", "expected"),
    [
        pytest.param("individual", "active", ThroughMailbox(connection()), id="S1-individual-active-mailbox"),
        pytest.param("bulk", "active", ThroughSubaccountProvider("S2"), id="S2-bulk-never-the-mailbox"),
        pytest.param(
            "workflow", "active", ThroughSubaccountProvider("S2"), id="S2-workflow-never-the-mailbox"
        ),
        pytest.param("individual", None, ThroughSubaccountProvider("C5"), id="C5-never-connected"),
        pytest.param("individual", "disconnected", ThroughSubaccountProvider("C5"), id="C5-disconnected"),
        pytest.param(
            "bulk", "needs_reauth", ThroughSubaccountProvider("S2"), id="S2-whatever-the-connection"
        ),
    ],
)
def test_routing(kind: SendKind, state: ConnectionStatus | None, expected: object) -> None:
    current = connection(state) if state is not None else None
    assert choose_route(command(kind), current) == expected


def test_c4_routing_follows_the_connections_current_mailbox() -> None:
    switched = connection(address="ada.lovelace@acme.example")
    assert choose_route(command(), switched) == ThroughMailbox(switched)


def test_c6_individual_mail_of_a_connection_needing_reauth_is_refused_not_rerouted() -> None:
    decision = choose_route(command(), connection("needs_reauth"))
    assert isinstance(decision, Refusal)
    assert decision.reason == SendFailureReason.CONNECTION_NEEDS_REAUTH


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        pytest.param({"to": (Address(email="grace,hopper@navy.example"),)}, "to[0].email", id="bad-address"),
        pytest.param({"to": (Address(email="grace@navy."),)}, "to[0].email", id="dangling-dot-domain"),
        pytest.param(
            {"cc": (Address(email="a@b.example", name="A\nBcc: x@y.example"),)}, "cc[0].name", id="name"
        ),
        pytest.param({"subject": "Hi\r\nBcc: x@y.example"}, "subject", id="subject-injection"),
        pytest.param(
            {"reply_context": ReplyContext(in_reply_to="not-a-message-id")}, "in_reply_to", id="reply-id"
        ),
    ],
)
def test_commands_that_would_corrupt_the_message_are_refused(
    overrides: dict[str, Any], fragment: str
) -> None:
    refusal = validate_command(command(**overrides))
    assert refusal is not None
    assert refusal.reason == SendFailureReason.INVALID_COMMAND
    assert fragment in refusal.detail


def test_a_valid_command_passes_validation() -> None:
    assert validate_command(command(cc=(Address(email='"odd.local"@acme.example'),))) is None


def test_s7_an_invalid_payload_with_a_request_id_is_answered_and_without_one_is_not() -> None:
    payload = command().model_dump(mode="json") | {"to": []}
    parsed = parse_command(payload)
    assert isinstance(parsed, InvalidCommand)
    assert parsed.request_id == "req-1"
    result = invalid_command_result(parsed, "req-1", at=datetime(2026, 3, 2, tzinfo=UTC))
    assert (result.status, result.reason, result.subaccount_id) == ("refused", "invalid_command", "loc_acme")
    unanswerable = parse_command({"kind": "bulk", "request_id": "has space"})
    assert isinstance(unanswerable, InvalidCommand)
    assert unanswerable.request_id is None


def attachment(size: int) -> AttachmentMeta:
    blob = BlobRef(store="gridfs", id="b1", size_bytes=size, sha256="0" * 64)
    return AttachmentMeta(filename="a.pdf", content_type="application/pdf", size_bytes=size, blob=blob)


def test_s4_gmail_takes_25_mb_of_attachments_and_not_a_byte_more() -> None:
    assert GMAIL_POLICY.check_attachments((attachment(20 * MB), attachment(5 * MB))) is None
    refusal = GMAIL_POLICY.check_attachments((attachment(20 * MB), attachment(5 * MB + 1)))
    assert refusal is not None
    assert refusal.reason == SendFailureReason.ATTACHMENT_TOO_LARGE
    too_big = GMAIL_POLICY.check_message(36_700_161)
    assert too_big is not None
    assert too_big.reason == SendFailureReason.MESSAGE_TOO_LARGE


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Your quote", "Re: Your quote"),
        ("Re: Your quote", "Re: Your quote"),
        ("RE:Your quote", "RE:Your quote"),
    ],
)
def test_s6_a_reply_subject_has_exactly_one_re(subject: str, expected: str) -> None:
    assert reply_subject(subject) == expected


def test_s6_references_end_with_the_parent_and_hold_no_duplicates() -> None:
    context = ReplyContext(in_reply_to="<b@x>", references=("<a@x>", "<b@x>"))
    assert references_for(context) == ("<a@x>", "<b@x>")
    assert references_for(ReplyContext(in_reply_to="<c@x>", references=("<a@x>",))) == ("<a@x>", "<c@x>")


def test_s6_s7_the_mime_message_carries_threading_headers_and_a_deterministic_message_id() -> None:
    reply = command(
        subject="Your quote",
        bcc=(Address(email="audit@acme.example"),),
        reply_context=ReplyContext(in_reply_to="<b@navy.example>", references=("<a@acme.example>",)),
    )
    message_id = message_id_for("req-1", "send.mailsync.local")
    assert message_id == message_id_for("req-1", "send.mailsync.local") != message_id_for("req-2", "x")
    content = MessageContent(text="Hello", html="<p>Hello</p>", attachments=((attachment(3), b"pdf"),))
    raw = encode(
        build_message(
            reply,
            content,
            sender=Address(email="ada@acme.example", name="Ada"),
            message_id=message_id,
            date=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        )
    )
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert parsed["Subject"] == "Re: Your quote"
    assert parsed["In-Reply-To"] == "<b@navy.example>"
    assert parsed["References"] == "<a@acme.example> <b@navy.example>"
    assert parsed["Message-ID"] == message_id
    assert parsed["Bcc"] == "audit@acme.example"
    assert parsed.get_content_type() == "multipart/mixed"
    assert b"\r\n" in raw


@pytest.mark.parametrize(
    ("now", "day", "resets_at"),
    [
        pytest.param(
            datetime(2026, 3, 2, 7, 59, tzinfo=UTC),
            "2026-03-01",
            datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
            id="PST",
        ),
        pytest.param(
            datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
            "2026-03-02",
            datetime(2026, 3, 3, 8, 0, tzinfo=UTC),
            id="PST-midnight",
        ),
        pytest.param(
            datetime(2026, 7, 1, 12, 0, tzinfo=UTC),
            "2026-07-01",
            datetime(2026, 7, 2, 7, 0, tzinfo=UTC),
            id="PDT",
        ),
    ],
)
def test_s3_the_quota_day_is_the_pacific_calendar_day(now: datetime, day: str, resets_at: datetime) -> None:
    assert quota_day(now).key == day
    assert quota_day(now).resets_at == resets_at
